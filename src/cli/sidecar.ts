/**
 * `llmd sidecar` — P/D sidecar in front of a decode model server, a drop-in for llm-d's
 * `pd-sidecar` (flags as `pkg/sidecar/proxy/options.go`, reference/epp.md §4.3).
 */
import type { Command } from "commander";
import { watchDiscoveryFile } from "../datalayer/discovery-file.js";
import { SIDECAR_MODEL_SERVER_PORT, SIDECAR_PORT } from "../framework/ports.js";
import { logger } from "../log.js";
import { type PrefillAllowList, startSidecar } from "../sidecar/server.js";
import { loadCertDir, selfSigned } from "../router/tls.js";
import { parseDurationMs } from "../framework/duration.js";

const collect = (v: string, prev: string[]) => [...prev, v];
const stages = (v: string | undefined) =>
  new Set(
    (v ?? "")
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean),
  );

/** An allow-list of prefill hosts, updated from a discovery file and fixed entries. */
export class HostAllowList implements PrefillAllowList {
  private hosts = new Set<string>();
  constructor(private readonly fixed: string[] = []) {
    this.set([]);
  }
  /** Replaces the discovered hosts (fixed entries stay). */
  set(discovered: string[]): void {
    this.hosts = new Set([...this.fixed.map((h) => h.split(":")[0]!), ...discovered]);
  }
  allows(host: string): boolean {
    return this.hosts.has(host);
  }
}

/** Adds `llmd sidecar` to the CLI. */
export function registerSidecar(program: Command): void {
  program
    .command("sidecar")
    .description("P/D sidecar in front of a decode model server (drop-in for llm-d's pd-sidecar)")
    .option("--port <port>", "listen port", String(SIDECAR_PORT))
    .option("--host <host>", "listen address", "127.0.0.1")
    .option("--vllm-port <port>", "port of the local decode model server (alias --model-server-port)")
    .option(
      "--model-server-port <port>",
      "port of the local decode model server",
      String(SIDECAR_MODEL_SERVER_PORT),
    )
    .option("--model-server-host <host>", "host of the local decode model server", "127.0.0.1")
    .option("--kv-connector <name>", "KV connector protocol: nixlv2", "nixlv2")
    .option("--prefill-max-retries <n>", "retries of the prefill leg on 502/503/504", "0")
    .option(
      "--prefill-retry-backoff <duration>",
      "backoff before the first prefill retry (e.g. 200ms)",
      "200ms",
    )
    .option("--enable-prefiller-sampling", "pick a random prefiller from a comma-separated header", false)
    .option(
      "--enable-ssrf-protection",
      "only allow prefill targets from the pool (discovery file / --allow-prefiller)",
      false,
    )
    .option(
      "--discovery-file <file>",
      "pool endpoints file (llm-d file-discovery format): SSRF allow-list source",
    )
    .option("--allow-prefiller <host>", "an allowed prefill host (repeatable)", collect, [])
    .option("--secure-proxy", "serve HTTPS (self-signed unless --cert-path)", false)
    .option("--cert-path <dir>", "directory with tls.crt and tls.key")
    .option("--enable-tls <stages>", "use TLS towards these upstream stages: prefiller,decoder", "")
    .option("--tls-insecure-skip-verify <stages>", "skip certificate verification for these stages", "")
    .action(async (a) => {
      const log = logger.child({ component: "sidecar" });
      const tlsStages = stages(a.enableTls);
      const skip = stages(a.tlsInsecureSkipVerify);
      let allowList: HostAllowList | undefined;
      let stopWatch = () => {};
      if (a.enableSsrfProtection) {
        allowList = new HostAllowList(a.allowPrefiller);
        if (a.discoveryFile) {
          const list = allowList;
          stopWatch = watchDiscoveryFile(a.discoveryFile, (eps) => list.set(eps.map((e) => e.address)), {
            watch: true,
            onError: (e) =>
              log.error({ err: e.message }, "discovery file reload failed; keeping the previous allow-list"),
          });
        } else if (a.allowPrefiller.length === 0) {
          log.warn(
            "SSRF protection is on but no --discovery-file or --allow-prefiller: every P/D request will be refused",
          );
        }
      }
      const tls = a.secureProxy
        ? a.certPath
          ? loadCertDir(a.certPath)
          : selfSigned("llmd-sidecar")
        : a.certPath
          ? loadCertDir(a.certPath)
          : undefined;
      const port = Number(a.vllmPort ?? a.modelServerPort);
      const sc = await startSidecar({
        host: a.host,
        port: Number(a.port),
        modelServerUrl: `${tlsStages.has("decoder") ? "https" : "http"}://${a.modelServerHost}:${port}`,
        kvConnector: a.kvConnector,
        prefillMaxRetries: Number(a.prefillMaxRetries),
        prefillRetryBackoffMs: parseDurationMs(a.prefillRetryBackoff),
        enablePrefillerSampling: a.enablePrefillerSampling,
        allowList,
        tls,
        prefillerTls: tlsStages.has("prefiller"),
        decoderTls: tlsStages.has("decoder"),
        tlsInsecureSkipVerify: skip.size > 0,
      });
      log.info({ url: sc.url, modelServerPort: port }, "sidecar listening");
      const shutdown = async () => {
        stopWatch();
        await sc.close();
        process.exit(0);
      };
      process.once("SIGINT", () => void shutdown());
      process.once("SIGTERM", () => void shutdown());
    });
}
