/**
 * `llmd router` — the OpenAI-compatible gateway with the EPP built in.
 */
import { readFileSync } from "node:fs";
import type { Command } from "commander";
import { watchDiscoveryFile } from "../datalayer/discovery-file.js";
import { EndpointStore } from "../datalayer/store.js";
import { ROUTER_PORT } from "../framework/ports.js";
import type { EndpointMetadata } from "../framework/types.js";
import { logger } from "../log.js";
import { startRouter } from "../router/server.js";
import { loadCertDir, selfSigned } from "../router/tls.js";
import { configView, createEppRuntime, kvEventsView, startDataLayer } from "./epp-runtime.js";

const collect = (v: string, prev: string[]) => [...prev, v];

/**
 * Parses `--endpoint host:port[,label=value...]` into endpoint metadata.
 * @throws Error on a malformed value
 */
export function parseEndpointFlag(value: string, index: number): EndpointMetadata {
  const [hostPort, ...labelParts] = value.split(",");
  const m = /^([^:]+):(\d+)$/.exec(hostPort ?? "");
  if (!m) throw new Error(`--endpoint ${value}: expected host:port[,label=value...]`);
  const labels: Record<string, string> = {};
  for (const p of labelParts) {
    const eq = p.indexOf("=");
    if (eq <= 0) throw new Error(`--endpoint ${value}: label "${p}" is not key=value`);
    labels[p.slice(0, eq)] = p.slice(eq + 1);
  }
  const port = Number(m[2]);
  const name = `endpoint-${index}`;
  return {
    id: `default/${name}`,
    name,
    namespace: "default",
    address: m[1]!,
    port,
    hostPort: `${m[1]}:${port}`,
    labels,
  };
}

/**
 * API keys from `--api-keys-file` (one per line, `#` comments) and the `LLMD_API_KEYS`
 * environment variable (comma-separated). Empty = no authentication.
 * @throws Error when the file cannot be read
 */
export function loadApiKeys(file: string | undefined, env = process.env.LLMD_API_KEYS): string[] {
  const keys: string[] = [];
  if (file) {
    for (const line of readFileSync(file, "utf8").split("\n")) {
      const k = line.replace(/#.*/, "").trim();
      if (k) keys.push(k);
    }
  }
  for (const k of (env ?? "").split(",")) if (k.trim()) keys.push(k.trim());
  return keys;
}

/** Adds `llmd router` to the CLI. */
export function registerRouter(program: Command): void {
  program
    .command("router")
    .description(
      "run the OpenAI-compatible router with the EPP built in, over a static pool of model servers",
    )
    .option("--port <port>", "listen port", String(ROUTER_PORT))
    .option("--host <host>", "listen address", "127.0.0.1")
    .option("--epp-config <file>", "EndpointPickerConfig YAML (default: built-in default config)")
    .option("--objectives-file <file>", "InferenceObjective YAML: priorities for x-llm-d-inference-objective")
    .option("--discovery-file <file>", "endpoints file (llm-d file-discovery format), reloaded on change")
    .option("--endpoint <host:port[,label=value]>", "a model server (repeatable)", collect, [])
    .option("--refresh-metrics-interval <ms>", "metrics scrape interval, ms", "50")
    .option("--max-body-bytes <bytes>", "request body limit, bytes", String(8 * 1024 * 1024))
    .option("--max-header-bytes <bytes>", "request header limit, bytes", String(16 * 1024))
    .option("--request-timeout <ms>", "time allowed to receive a whole request, ms", "120000")
    .option("--max-attempts <n>", "upstream attempts per request (fallback to the next candidate)", "3")
    .option("--fail-open", "if scheduling fails, send to any ready endpoint (default: FailClose)", false)
    .option(
      "--api-keys-file <file>",
      "bearer tokens accepted on /v1/* (also env LLMD_API_KEYS, comma-separated)",
    )
    .option("--secure-serving", "serve HTTPS (self-signed unless --cert-path)", false)
    .option("--cert-path <dir>", "directory with tls.crt and tls.key (implies HTTPS)")
    .option("--drain-timeout <ms>", "on SIGTERM, time to let in-flight requests finish, ms", "30000")
    .action(async (a) => {
      const log = logger.child({ component: "router" });
      const epp = createEppRuntime({ configFile: a.eppConfig, objectivesFile: a.objectivesFile });
      const store = new EndpointStore();
      let stopWatch = () => {};
      if (a.discoveryFile) {
        stopWatch = watchDiscoveryFile(a.discoveryFile, (eps) => store.replaceAll(eps), {
          watch: true,
          onError: (e) =>
            log.error({ err: e.message }, "discovery file reload failed; keeping the previous pool"),
        });
      }
      (a.endpoint as string[]).forEach((v, i) => {
        store.upsert(parseEndpointFlag(v, i));
      });
      if (store.all().length === 0) throw new Error("no endpoints: give --discovery-file or --endpoint");
      const dataLayer = startDataLayer(epp, store, {
        tickMs: Number(a.refreshMetricsInterval),
        onPollError: () => {},
      });
      const apiKeys = loadApiKeys(a.apiKeysFile);
      const tls = a.certPath
        ? loadCertDir(a.certPath)
        : a.secureServing
          ? selfSigned("llmd-router")
          : undefined;
      const router = await startRouter({
        host: a.host,
        port: Number(a.port),
        store,
        runtime: epp,
        policies: epp.policies,
        maxBodyBytes: Number(a.maxBodyBytes),
        maxHeaderBytes: Number(a.maxHeaderBytes),
        requestTimeoutMs: Number(a.requestTimeout),
        maxAttempts: Number(a.maxAttempts),
        failOpen: a.failOpen,
        apiKeys,
        tls,
        configView: configView(epp.config, epp.admission),
        kvEventsView: () => kvEventsView(dataLayer),
      });
      log.info(
        {
          url: router.url,
          endpoints: store.all().length,
          auth: apiKeys.length > 0,
          admission: epp.admission.mode,
        },
        "router listening",
      );
      let stopping = false;
      const shutdown = async (sig: string) => {
        if (stopping) return;
        stopping = true;
        log.info({ signal: sig, inFlight: router.inFlight() }, "draining");
        stopWatch();
        await router.close(Number(a.drainTimeout));
        epp.admission.shutdown();
        await dataLayer.close();
        process.exit(0);
      };
      process.on("SIGINT", () => void shutdown("SIGINT"));
      process.on("SIGTERM", () => void shutdown("SIGTERM"));
    });
}
