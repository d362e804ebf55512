/**
 * `llmd epp` — the EPP behind Envoy / agentgateway / Istio as an ext_proc gRPC server
 * (reference/epp.md §1), running the same EPP core as `llmd router` (`createEppRuntime`) and
 * the shared request pipeline (`src/requestcontrol/pipeline.ts`).
 *
 * Ports (llm-d `pkg/epp/server/options.go`): ext_proc `--grpc-port` 9002, gRPC health
 * `--grpc-health-port` 9003, Prometheus `--metrics-port` 9090. `--secure-serving` (default
 * true) serves TLS with a self-signed certificate generated at start (no `openssl` needed),
 * or the `tls.crt`/`tls.key` of `--cert-path`. Discovery: `--discovery-file`, `--endpoint`,
 * or Kubernetes with `--pool-name`/`--pool-namespace` (InferencePool + Pods +
 * InferenceObjective/InferenceModelRewrite). `--body-based-routing` runs the body-based router
 * (§8) instead of the EPP on the same port.
 */
import { once } from "node:events";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { KubeConfig } from "@kubernetes/client-node";
import type { Command } from "commander";
import { watchDiscoveryFile } from "../datalayer/discovery-file.js";
import type { KubernetesDiscovery } from "../datalayer/k8s/discovery.js";
import { EndpointStore } from "../datalayer/store.js";
import { EPP_METRICS_PORT, EXTPROC_PORT, GRPC_HEALTH_PORT } from "../framework/ports.js";
import { logger } from "../log.js";
import { updatePoolGauges } from "../requestcontrol/pipeline.js";
import { createEppRuntime, startDataLayer } from "./epp-runtime.js";
import { parseEndpointFlag } from "./router.js";

/** Options of {@link runEpp} (the CLI flags, parsed). */
export interface EppOptions {
  /** listen address of all three servers (default `0.0.0.0`) */
  host?: string;
  grpcPort: number;
  grpcHealthPort: number;
  metricsPort: number;
  secureServing: boolean;
  certPath?: string;
  configFile?: string;
  discoveryFile?: string;
  endpoints?: string[];
  poolName?: string;
  poolNamespace?: string;
  poolGroup?: string;
  /** kubeconfig file; default: in-cluster service account, else `$KUBECONFIG`/`~/.kube/config` */
  kubeconfig?: string;
  /** a KubeConfig built by the caller (tests) */
  kubeConfigObject?: KubeConfig;
  refreshMetricsIntervalMs?: number;
  disableEndpointSubsetFilter?: boolean;
  bodyBasedRouting?: boolean;
}

/** A running `llmd epp`. */
export interface RunningEpp {
  grpcPort: number;
  healthPort: number;
  metricsPort: number;
  store: EndpointStore;
  /** PEM certificate served when TLS is on */
  certPem?: string;
  close(): Promise<void>;
}

const log = logger.child({ component: "epp" });

/**
 * Starts the ext_proc, health and metrics servers with the chosen discovery.
 * @throws Error when no discovery is given (EPP mode), a flag is malformed, a config or
 *   certificate cannot be read, or a port cannot be bound
 */
export async function runEpp(o: EppOptions): Promise<RunningEpp> {
  // gRPC and the Kubernetes client load here, not at CLI start (every `llmd` command imports this file).
  const [{ startHealthServer }, { startExtProcServer }, { extProcCredentials }] = await Promise.all([
    import("../extproc/health.js"),
    import("../extproc/server.js"),
    import("../extproc/tls.js"),
  ]);
  const host = o.host ?? "0.0.0.0";
  const runtime = createEppRuntime(o.configFile);
  const tls = extProcCredentials({ secureServing: o.secureServing, certPath: o.certPath });
  const store = new EndpointStore();
  const poolName = o.poolName ?? "epp";
  const stops: (() => Promise<void> | void)[] = [];
  try {
    return await startAll();
  } catch (e) {
    for (const stop of stops.reverse()) await stop();
    throw e;
  }

  async function startAll(): Promise<RunningEpp> {
    let ready: () => boolean = () => true;
    let policies: KubernetesDiscovery["policies"] | undefined;

    if (!o.bodyBasedRouting) {
      const statics = o.endpoints ?? [];
      if (o.discoveryFile) {
        const stop = watchDiscoveryFile(o.discoveryFile, (eps) => store.replaceAll(eps), {
          watch: true,
          onError: (e) =>
            log.error({ err: e.message }, "discovery file reload failed; keeping the previous pool"),
        });
        stops.push(stop);
      }
      statics.forEach((v, i) => {
        store.upsert(parseEndpointFlag(v, i));
      });
      if (!o.discoveryFile && statics.length === 0) {
        if (!o.poolName)
          throw new Error("no discovery: give --pool-name (Kubernetes), --discovery-file or --endpoint");
        const { KubeConfig } = await import("@kubernetes/client-node");
        const kc = o.kubeConfigObject ?? new KubeConfig();
        if (!o.kubeConfigObject) {
          if (o.kubeconfig) kc.loadFromFile(o.kubeconfig);
          else kc.loadFromDefault();
        }
        const { KubernetesDiscovery } = await import("../datalayer/k8s/discovery.js");
        const disc = new KubernetesDiscovery({
          kubeConfig: kc,
          poolName: o.poolName,
          namespace:
            o.poolNamespace ??
            process.env.POD_NAMESPACE ??
            kc.getContextObject(kc.getCurrentContext())?.namespace ??
            "default",
          poolGroup: o.poolGroup,
          store,
        });
        disc.start();
        stops.push(() => disc.stop());
        ready = () => disc.synced();
        policies = disc.policies;
      }
      const dataLayer = startDataLayer(runtime, store, { tickMs: o.refreshMetricsIntervalMs ?? 50 });
      stops.push(() => dataLayer.close());
    }

    const ext = await startExtProcServer({
      host,
      port: o.grpcPort,
      credentials: tls.credentials,
      mode: o.bodyBasedRouting ? "bbr" : "epp",
      runtime,
      store,
      policies,
      disableSubsetFilter: o.disableEndpointSubsetFilter,
    });
    stops.push(() => ext.close());
    const health = await startHealthServer({ host, port: o.grpcHealthPort, ready });
    stops.push(() => health.close());
    const metricsServer: Server = createServer((req, res) => {
      if ((req.url ?? "").split("?")[0] !== "/metrics") {
        res.writeHead(404).end();
        return;
      }
      updatePoolGauges(runtime.metrics, store, poolName);
      runtime.metrics.metricsText().then(
        (text) => {
          res.writeHead(200, { "content-type": runtime.metrics.registry.contentType });
          res.end(text);
        },
        (e: Error) => {
          res.writeHead(500).end(e.message);
        },
      );
    });
    metricsServer.listen(o.metricsPort, host);
    await once(metricsServer, "listening");
    stops.push(
      () =>
        new Promise<void>((r) => {
          metricsServer.closeAllConnections();
          metricsServer.close(() => r());
        }),
    );
    log.info(
      {
        grpcPort: ext.port,
        healthPort: health.port,
        metricsPort: (metricsServer.address() as AddressInfo).port,
        tls: tls.source,
        mode: o.bodyBasedRouting ? "body-based-routing" : "epp",
      },
      "llmd epp listening",
    );
    return {
      grpcPort: ext.port,
      healthPort: health.port,
      metricsPort: (metricsServer.address() as AddressInfo).port,
      store,
      certPem: tls.certPem,
      async close() {
        for (const s of stops.reverse()) await s();
      },
    };
  }
}

const collect = (v: string, prev: string[]) => [...prev, v];
const bool = (v: string): boolean => {
  if (/^(true|1|yes)$/i.test(v)) return true;
  if (/^(false|0|no)$/i.test(v)) return false;
  throw new Error(`expected true or false, got ${v}`);
};

/** Adds `llmd epp` to the CLI. */
export function registerEpp(program: Command): void {
  program
    .command("epp")
    .description(
      "run the Endpoint Picker as an Envoy ext_proc gRPC server (behind Envoy, agentgateway or Istio)",
    )
    .option("--grpc-port <port>", "ext_proc gRPC port", String(EXTPROC_PORT))
    .option("--grpc-health-port <port>", "gRPC health port", String(GRPC_HEALTH_PORT))
    .option("--metrics-port <port>", "Prometheus metrics port", String(EPP_METRICS_PORT))
    .option("--host <host>", "listen address", "0.0.0.0")
    .option("--secure-serving <bool>", "serve ext_proc over TLS (self-signed unless --cert-path)", "true")
    .option("--cert-path <dir>", "folder with tls.crt and tls.key")
    .option("--config-file <file>", "EndpointPickerConfig YAML (default: built-in default config)")
    .option("--pool-name <name>", "InferencePool to serve (Kubernetes discovery)")
    .option(
      "--pool-namespace <ns>",
      "namespace of the InferencePool (default: $POD_NAMESPACE, else the kubeconfig's)",
    )
    .option("--pool-group <group>", "InferencePool API group", "inference.networking.k8s.io")
    .option("--kubeconfig <file>", "kubeconfig (default: in-cluster, else $KUBECONFIG or ~/.kube/config)")
    .option("--discovery-file <file>", "endpoints file (llm-d file-discovery format), reloaded on change")
    .option("--endpoint <host:port[,label=value]>", "a model server (repeatable)", collect, [])
    .option("--refresh-metrics-interval <ms>", "metrics scrape interval, ms", "50")
    .option("--disable-endpoint-subset-filter", "ignore the proxy's subset hint")
    .option(
      "--body-based-routing",
      "run the body-based router (model → X-Gateway-Model-Name) instead of the EPP",
    )
    .action(async (a) => {
      const epp = await runEpp({
        host: a.host,
        grpcPort: Number(a.grpcPort),
        grpcHealthPort: Number(a.grpcHealthPort),
        metricsPort: Number(a.metricsPort),
        secureServing: bool(a.secureServing),
        certPath: a.certPath,
        configFile: a.configFile,
        discoveryFile: a.discoveryFile,
        endpoints: a.endpoint,
        poolName: a.poolName,
        poolNamespace: a.poolNamespace,
        poolGroup: a.poolGroup,
        kubeconfig: a.kubeconfig,
        refreshMetricsIntervalMs: Number(a.refreshMetricsInterval),
        disableEndpointSubsetFilter: Boolean(a.disableEndpointSubsetFilter),
        bodyBasedRouting: Boolean(a.bodyBasedRouting),
      });
      const shutdown = async () => {
        await epp.close();
        process.exit(0);
      };
      process.once("SIGINT", () => void shutdown());
      process.once("SIGTERM", () => void shutdown());
    });
}
