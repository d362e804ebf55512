/**
 * Test helpers of the flow-control engine: fake endpoints and requests, a gate whose saturation
 * the test sets, a budget gate, and a controller harness with a manual clock and a manual
 * dispatch trigger. Test-only: imports the policy plugins; not used by production code.
 */
import type { SaturationDetector } from "../framework/flow-control.js";
import {
  type Endpoint,
  type EndpointMetrics,
  emptyMetrics,
  type InferenceRequest,
} from "../framework/types.js";
import { EdfOrderingPolicy } from "../plugins/flow-control/edf-ordering-policy.js";
import { FcfsOrderingPolicy } from "../plugins/flow-control/fcfs-ordering-policy.js";
import { GlobalStrictFairnessPolicy } from "../plugins/flow-control/global-strict-fairness-policy.js";
import { RoundRobinFairnessPolicy } from "../plugins/flow-control/round-robin-fairness-policy.js";
import { StaticUsageLimitPolicy } from "../plugins/flow-control/static-usage-limit-policy.js";
import { ManualClock } from "./clock.js";
import { parseFlowControlConfig } from "./config.js";
import { FlowController, type FlowControlObserver, type FlowControlResult } from "./controller.js";

/** An endpoint with the given metrics. */
export function fakeEndpoint(id: string, metrics: Partial<EndpointMetrics> = {}): Endpoint {
  return {
    metadata: {
      id,
      name: id,
      namespace: "default",
      address: "10.0.0.1",
      port: 8000,
      hostPort: `${id}:8000`,
      labels: {},
    },
    metrics: { ...emptyMetrics(), ...metrics },
    models: new Set(["m"]),
    attributes: new Map(),
  };
}

let reqSeq = 0;
/** A request of `fairnessId` at `priority`, `bytes` long. */
export function fakeRequest(fairnessId: string, priority = 0, bytes = 100): InferenceRequest {
  reqSeq++;
  return {
    requestId: `req-${reqSeq}`,
    incomingModel: "m",
    targetModel: "m",
    path: "/v1/completions",
    body: {},
    headers: {},
    objectives: { priority },
    fairnessId,
    requestSizeBytes: bytes,
    attributes: new Map(),
  };
}

/** A detector whose saturation the test sets (`value`); counts calls. Filter = identity. */
export class FixedDetector implements SaturationDetector {
  readonly type = "fixed-detector";
  readonly name = "fixed-detector";
  calls = 0;
  constructor(public value = 0) {}
  saturation(candidates: Endpoint[]): number {
    this.calls++;
    return candidates.length === 0 ? 1 : this.value;
  }
  filter(_r: InferenceRequest, e: Endpoint[]): Endpoint[] {
    return e;
  }
}

/** A detector that lets exactly `budget` more requests through (each 0-reading is one dispatch). */
export class BudgetDetector implements SaturationDetector {
  readonly type = "budget-detector";
  readonly name = "budget-detector";
  constructor(public budget = 0) {}
  saturation(candidates: Endpoint[]): number {
    if (candidates.length === 0 || this.budget <= 0) return 1;
    this.budget--;
    return 0;
  }
  filter(_r: InferenceRequest, e: Endpoint[]): Endpoint[] {
    return e;
  }
}

/** A settled-or-not view of an `enqueueAndWait` promise. */
export interface Tracked {
  request: InferenceRequest;
  result?: FlowControlResult;
}

/** Lets pending promise reactions run (awaits the event loop, never a timer). */
export const flush = (): Promise<void> => new Promise((r) => setImmediate(r));

/** A controller with a manual clock and a manual dispatch trigger (`kicks` counts scheduled runs). */
export function harness(
  opts: {
    section?: Record<string, unknown>;
    detector?: SaturationDetector;
    retryIntervalMs?: number;
    observer?: FlowControlObserver;
    threshold?: number;
  } = {},
) {
  const clock = new ManualClock();
  const detector = opts.detector ?? new FixedDetector(0);
  let kicks = 0;
  let scheduled: (() => void) | undefined;
  const fc = new FlowController({
    config: parseFlowControlConfig(opts.section ?? {}),
    detector,
    usageLimit: new StaticUsageLimitPolicy("static-usage-limit-policy", opts.threshold ?? 1.0),
    fairnessPolicies: new Map<string, GlobalStrictFairnessPolicy | RoundRobinFairnessPolicy>([
      ["global-strict-fairness-policy", new GlobalStrictFairnessPolicy()],
      ["round-robin-fairness-policy", new RoundRobinFairnessPolicy()],
    ]),
    orderingPolicies: new Map<string, FcfsOrderingPolicy | EdfOrderingPolicy>([
      ["fcfs-ordering-policy", new FcfsOrderingPolicy()],
      ["edf-ordering-policy", new EdfOrderingPolicy()],
    ]),
    clock,
    schedule: (run) => {
      kicks++;
      scheduled = run;
    },
    retryIntervalMs: opts.retryIntervalMs ?? 0,
    observer: opts.observer,
  });
  const endpoints: Endpoint[] = [fakeEndpoint("e0")];
  const done: Tracked[] = [];
  /** enqueues and records the result (and completion order in `done`) */
  const enqueue = (
    request: InferenceRequest,
    signal?: AbortSignal,
    candidates?: () => Endpoint[],
    ttlMs?: number,
  ): Tracked => {
    const t: Tracked = { request };
    const o = ttlMs === undefined ? {} : { ttlMs };
    void fc.enqueueAndWait(request, candidates ?? (() => endpoints), signal, o).then((r) => {
      t.result = r;
      done.push(t);
    });
    return t;
  };
  return {
    fc,
    clock,
    detector,
    endpoints,
    done,
    enqueue,
    get kicks() {
      return kicks;
    },
    /** runs the dispatch pass scheduled by the last kick, if any; returns whether one ran */
    runScheduled(): boolean {
      const r = scheduled;
      scheduled = undefined;
      r?.();
      return r !== undefined;
    },
  };
}
