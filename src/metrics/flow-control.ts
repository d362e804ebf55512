/**
 * Flow-control Prometheus metrics (`llm_d_epp_flow_control_*`), with the deprecated
 * `inference_extension_flow_control_*` twins emitted alongside for the families GIE had.
 * {@link createFlowControlMetrics} returns an object that is the engine's
 * `FlowControlObserver` (pass it as `observer` to `createAdmission`).
 *
 * | metric | type | labels |
 * |---|---|---|
 * | `flow_control_request_queue_duration_seconds` (+twin) | histogram | fairness_id, priority, outcome |
 * | `flow_control_queue_size` (+twin) | gauge, requests | fairness_id, priority |
 * | `flow_control_queue_bytes` (+twin) | gauge, bytes | fairness_id, priority |
 * | `flow_control_pool_saturation` | gauge, fraction | stage (`prefill`, `decode`, `effective`) |
 * | `flow_control_requests_total` | counter | outcome |
 * | `flow_control_dispatch_cycle_duration_seconds` (+twin) | histogram | — |
 * | `flow_control_request_enqueue_duration_seconds` (+twin) | histogram | outcome (`Queued` or a final outcome) |
 *
 * `fairness_id` is capped at 1000 distinct values (later ones read `other`).
 * Source: reference/epp.md §6, §7 (llm-d-router `docs/metrics.md`, `pkg/epp/metrics/metrics.go`).
 */
import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import type { FlowControlObserver } from "../flowcontrol/controller.js";
import type { QueueOutcome } from "../flowcontrol/outcomes.js";
import type { FlowKey } from "../framework/flow-control.js";
import { LabelCapper } from "./epp.js";
import { EPP_PREFIX, LABEL_FAIRNESS_ID, LABEL_PRIORITY } from "./epp-names.js";

/** Prefix of the deprecated twins. */
export const FLOW_CONTROL_DEPRECATED_PREFIX = "inference_extension_";

export const FLOW_CONTROL_REQUEST_QUEUE_DURATION_SECONDS = `${EPP_PREFIX}flow_control_request_queue_duration_seconds`;
export const FLOW_CONTROL_REQUEST_QUEUE_DURATION_SECONDS_DEPRECATED = `${FLOW_CONTROL_DEPRECATED_PREFIX}flow_control_request_queue_duration_seconds`;
export const FLOW_CONTROL_QUEUE_SIZE = `${EPP_PREFIX}flow_control_queue_size`;
export const FLOW_CONTROL_QUEUE_SIZE_DEPRECATED = `${FLOW_CONTROL_DEPRECATED_PREFIX}flow_control_queue_size`;
export const FLOW_CONTROL_QUEUE_BYTES = `${EPP_PREFIX}flow_control_queue_bytes`;
export const FLOW_CONTROL_QUEUE_BYTES_DEPRECATED = `${FLOW_CONTROL_DEPRECATED_PREFIX}flow_control_queue_bytes`;
export const FLOW_CONTROL_POOL_SATURATION = `${EPP_PREFIX}flow_control_pool_saturation`;
export const FLOW_CONTROL_REQUESTS_TOTAL = `${EPP_PREFIX}flow_control_requests_total`;
export const FLOW_CONTROL_DISPATCH_CYCLE_DURATION_SECONDS = `${EPP_PREFIX}flow_control_dispatch_cycle_duration_seconds`;
export const FLOW_CONTROL_DISPATCH_CYCLE_DURATION_SECONDS_DEPRECATED = `${FLOW_CONTROL_DEPRECATED_PREFIX}flow_control_dispatch_cycle_duration_seconds`;
export const FLOW_CONTROL_REQUEST_ENQUEUE_DURATION_SECONDS = `${EPP_PREFIX}flow_control_request_enqueue_duration_seconds`;
export const FLOW_CONTROL_REQUEST_ENQUEUE_DURATION_SECONDS_DEPRECATED = `${FLOW_CONTROL_DEPRECATED_PREFIX}flow_control_request_enqueue_duration_seconds`;

/** Label keys of this family. */
export const LABEL_OUTCOME = "outcome";
export const LABEL_STAGE = "stage";

/** Queue-time buckets, seconds (1 ms … 1 h; flow control waits up to the TTL, 60 s by default). */
const QUEUE_BUCKETS = [
  0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 3600,
];
/** Engine-overhead buckets, seconds (10 µs … 100 ms). */
const CYCLE_BUCKETS = [0.00001, 0.00005, 0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.1];

/** Flow-control metrics: the engine observer plus a text dump for tests. */
export interface FlowControlMetrics extends FlowControlObserver {
  readonly registry: Registry;
}

/**
 * Registers every flow-control metric (and the deprecated twins) on `registry` — the router
 * passes its EPP registry (`EppMetrics.registry`).
 * @throws Error (prom-client) when a metric of the same name is already registered
 */
export function createFlowControlMetrics(registry: Registry): FlowControlMetrics {
  const regs = [registry];
  const fairness = new LabelCapper();
  const flowLabels = [LABEL_FAIRNESS_ID, LABEL_PRIORITY];
  const hist = (name: string, help: string, labelNames: string[], buckets: number[]) =>
    new Histogram({ name, help, labelNames, buckets, registers: regs });
  const gauge = (name: string, help: string, labelNames: string[]) =>
    new Gauge({ name, help, labelNames, registers: regs });

  const queueDur = [
    FLOW_CONTROL_REQUEST_QUEUE_DURATION_SECONDS,
    FLOW_CONTROL_REQUEST_QUEUE_DURATION_SECONDS_DEPRECATED,
  ].map((n) =>
    hist(
      n,
      "Time requests spent in the flow-control queue, seconds",
      [...flowLabels, LABEL_OUTCOME],
      QUEUE_BUCKETS,
    ),
  );
  const queueSize = [FLOW_CONTROL_QUEUE_SIZE, FLOW_CONTROL_QUEUE_SIZE_DEPRECATED].map((n) =>
    gauge(n, "Requests queued in flow control", flowLabels),
  );
  const queueBytes = [FLOW_CONTROL_QUEUE_BYTES, FLOW_CONTROL_QUEUE_BYTES_DEPRECATED].map((n) =>
    gauge(n, "Bytes queued in flow control", flowLabels),
  );
  const saturation = gauge(
    FLOW_CONTROL_POOL_SATURATION,
    "Pool saturation read by flow control (fraction; 1.0 = saturated)",
    [LABEL_STAGE],
  );
  const total = new Counter({
    name: FLOW_CONTROL_REQUESTS_TOTAL,
    help: "Requests finalized by flow control, by outcome",
    labelNames: [LABEL_OUTCOME],
    registers: regs,
  });
  const cycle = [
    FLOW_CONTROL_DISPATCH_CYCLE_DURATION_SECONDS,
    FLOW_CONTROL_DISPATCH_CYCLE_DURATION_SECONDS_DEPRECATED,
  ].map((n) => hist(n, "Duration of one flow-control dispatch pass, seconds", [], CYCLE_BUCKETS));
  const enqueue = [
    FLOW_CONTROL_REQUEST_ENQUEUE_DURATION_SECONDS,
    FLOW_CONTROL_REQUEST_ENQUEUE_DURATION_SECONDS_DEPRECATED,
  ].map((n) =>
    hist(
      n,
      "Duration of the enqueue step (admission checks + insert), seconds",
      [LABEL_OUTCOME],
      CYCLE_BUCKETS,
    ),
  );

  const fl = (k: FlowKey) => ({
    [LABEL_FAIRNESS_ID]: fairness.map(k.fairnessId),
    [LABEL_PRIORITY]: String(k.priority),
  });
  return {
    registry,
    requestFinished(key: FlowKey, outcome: QueueOutcome, queueSeconds: number): void {
      const l = { ...fl(key), [LABEL_OUTCOME]: outcome };
      for (const h of queueDur) h.observe(l, queueSeconds);
      total.inc({ [LABEL_OUTCOME]: outcome });
    },
    enqueueDuration(_key: FlowKey, outcome: QueueOutcome | "Queued", seconds: number): void {
      for (const h of enqueue) h.observe({ [LABEL_OUTCOME]: outcome }, seconds);
    },
    queueChanged(key: FlowKey, size: number, bytes: number): void {
      const l = fl(key);
      for (const g of queueSize) g.set(l, size);
      for (const g of queueBytes) g.set(l, bytes);
    },
    poolSaturation(stage: "prefill" | "decode" | "effective", value: number): void {
      saturation.set({ [LABEL_STAGE]: stage }, value);
    },
    dispatchCycle(seconds: number): void {
      for (const h of cycle) h.observe(seconds);
    },
  };
}
