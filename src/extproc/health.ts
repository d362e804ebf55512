/**
 * gRPC health service of `llmd epp` (`grpc.health.v1.Health`, reference/epp.md §1.1; llm-d
 * `cmd/epp/runner/health.go`): services `liveness` (always SERVING while the process runs),
 * `readiness` and `envoy.service.ext_proc.v3.ExternalProcessor` (both SERVING when the
 * `ready()` callback says the datastore is synced), `""` (overall = readiness).
 * Unknown service names → gRPC `NOT_FOUND` on Check, `SERVICE_UNKNOWN` on Watch.
 */
import * as grpc from "@grpc/grpc-js";
import { bindServer } from "./server.js";
import { loadProtos } from "./proto.js";

/** Health service names (reference/epp.md §1.1). */
export const HEALTH_SERVICES = {
  liveness: "liveness",
  readiness: "readiness",
  extProc: "envoy.service.ext_proc.v3.ExternalProcessor",
} as const;

/** Options of {@link startHealthServer}. */
export interface HealthOptions {
  host?: string;
  /** port; 0 = a free one (CLI default 9003) */
  port: number;
  /** readiness: datastore synced (e.g. InferencePool listed) */
  ready: () => boolean;
  credentials?: grpc.ServerCredentials;
  /** how often Watch re-evaluates readiness, ms (default 1000) */
  watchIntervalMs?: number;
}

/** A running health server. */
export interface RunningHealth {
  port: number;
  close(): Promise<void>;
}

type Status = "SERVING" | "NOT_SERVING" | "SERVICE_UNKNOWN";

/**
 * Starts the gRPC health server.
 * @throws Error when the port cannot be bound
 */
export async function startHealthServer(opts: HealthOptions): Promise<RunningHealth> {
  const { Health } = loadProtos();
  const statusOf = (service: string): Status | undefined => {
    if (service === HEALTH_SERVICES.liveness) return "SERVING";
    if (service === HEALTH_SERVICES.readiness || service === HEALTH_SERVICES.extProc || service === "")
      return opts.ready() ? "SERVING" : "NOT_SERVING";
    return undefined;
  };
  const server = new grpc.Server();
  const timers = new Set<NodeJS.Timeout>();
  server.addService(Health.service, {
    Check(
      call: grpc.ServerUnaryCall<{ service: string }, { status: Status }>,
      cb: grpc.sendUnaryData<{ status: Status }>,
    ) {
      const s = statusOf(call.request.service);
      if (s === undefined)
        cb({ code: grpc.status.NOT_FOUND, details: `unknown service ${call.request.service}` });
      else cb(null, { status: s });
    },
    Watch(call: grpc.ServerWritableStream<{ service: string }, { status: Status }>) {
      let last: Status | undefined;
      const tick = () => {
        const s = statusOf(call.request.service) ?? "SERVICE_UNKNOWN";
        if (s !== last) {
          last = s;
          call.write({ status: s });
        }
      };
      tick();
      const t = setInterval(tick, opts.watchIntervalMs ?? 1000);
      timers.add(t);
      call.on("cancelled", () => {
        clearInterval(t);
        timers.delete(t);
      });
    },
  });
  const host = opts.host ?? "0.0.0.0";
  const port = await bindServer(
    server,
    `${host}:${opts.port}`,
    opts.credentials ?? grpc.ServerCredentials.createInsecure(),
  );
  return {
    port,
    async close() {
      for (const t of timers) clearInterval(t);
      timers.clear();
      server.forceShutdown();
    },
  };
}
