/**
 * `llmd router` — the OpenAI-compatible gateway with the EPP built in.
 */
import type { Command } from "commander";
import { watchDiscoveryFile } from "../datalayer/discovery-file.js";
import { MetricsScraper } from "../datalayer/scraper.js";
import { EndpointStore } from "../datalayer/store.js";
import { ROUTER_PORT } from "../framework/ports.js";
import type { EndpointMetadata } from "../framework/types.js";
import { logger } from "../log.js";
import { startRouter } from "../router/server.js";
import { configView, createEppRuntime } from "./epp-runtime.js";

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
    .option("--discovery-file <file>", "endpoints file (llm-d file-discovery format), reloaded on change")
    .option("--endpoint <host:port[,label=value]>", "a model server (repeatable)", collect, [])
    .option("--refresh-metrics-interval <ms>", "metrics scrape interval, ms", "50")
    .option("--max-body-bytes <bytes>", "request body limit, bytes", String(8 * 1024 * 1024))
    .action(async (a) => {
      const epp = createEppRuntime(a.eppConfig);
      const store = new EndpointStore();
      const log = logger.child({ component: "router" });
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
      const scraper = new MetricsScraper(store, { intervalMs: Number(a.refreshMetricsInterval) });
      scraper.start();
      const router = await startRouter({
        host: a.host,
        port: Number(a.port),
        store,
        director: epp.director,
        buildRequest: epp.buildRequest,
        metrics: epp.metrics,
        maxBodyBytes: Number(a.maxBodyBytes),
        configView: configView(epp.config),
      });
      log.info({ url: router.url, endpoints: store.all().length }, "router listening");
      const shutdown = async () => {
        stopWatch();
        await scraper.stop();
        await router.close();
        process.exit(0);
      };
      process.once("SIGINT", () => void shutdown());
      process.once("SIGTERM", () => void shutdown());
    });
}
