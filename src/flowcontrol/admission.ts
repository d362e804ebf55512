/**
 * Admission: the step of the Director between the request-header plugins and candidate
 * screening (reference/epp.md §1.3 step 4, §6).
 *
 * - Gate off (default) → {@link LegacyAdmission}: a sheddable request (`priority < 0`) is
 *   rejected with 429 `rejected-saturated` ("system saturated, sheddable request dropped") when
 *   the saturation detector reads ≥ 1.0 on its candidates; everything else passes.
 * - Gate on (`featureGates: [flowControl]`) → {@link FlowControlAdmission}: every request waits
 *   in the {@link FlowController} until dispatched; other outcomes throw their `EppError`.
 *
 * {@link createAdmission} builds the right one from a loaded config, resolving the plugin refs
 * of the `flowControl:` section (configured plugins by name; unconfigured default refs such as
 * `utilization-detector` are instantiated from the registry with default parameters).
 */
import { ConfigError, EppError } from "../framework/errors.js";
import {
  type FairnessPolicy,
  isFairnessPolicy,
  isOrderingPolicy,
  isSaturationDetector,
  isUsageLimitPolicy,
  type OrderingPolicy,
  type SaturationDetector,
} from "../framework/flow-control.js";
import type { LoadedConfig, Plugin, PluginHandle, PluginRegistry } from "../framework/plugin.js";
import type { Endpoint, InferenceRequest } from "../framework/types.js";
import { type Clock, systemClock } from "./clock.js";
import { type FlowControlConfig, parseFlowControlConfig } from "./config.js";
import {
  type CandidatesProvider,
  FlowController,
  type FlowControlObserver,
  type FlowControlResult,
} from "./controller.js";
import { LEGACY_SATURATED_MESSAGE } from "./outcomes.js";

/** Name of the feature gate that turns the flow-control engine on. */
export const FLOW_CONTROL_GATE = "flowControl";

/** The admission step the Director runs before scheduling. */
export interface Admission {
  readonly mode: "legacy" | "flow-control";
  /** the detector used for admission decisions */
  readonly detector: SaturationDetector;
  /**
   * Admits the request or throws.
   * @param candidates the request's candidate endpoints (a provider is re-read while queued)
   * @param signal aborted when the client disconnects (flow control: 503 `rejected-context-cancelled`)
   * @returns ms spent queued (0 in legacy mode)
   * @throws EppError with the drop reason of the outcome (reference/epp.md §6 "Outcomes → HTTP")
   */
  admit(
    request: InferenceRequest,
    candidates: Endpoint[] | CandidatesProvider,
    signal?: AbortSignal,
  ): Promise<number>;
  /**
   * A dispatched request ended (response complete, upstream failure, or scheduling failed
   * after admission): capacity may have freed. Pass the request so a concurrency detector drops
   * its pending reservation.
   */
  onRequestDone(request?: InferenceRequest): void;
  /** Endpoint metrics were refreshed: re-check saturation for queued requests. */
  kick(): void;
  /** Rejects everything queued with 503 `rejected-shutting-down`, and every later request. */
  shutdown(): void;
  /**
   * Gate on with `enableEviction`: fires when flow control evicts this dispatched sheddable
   * request; `signal.reason` is the `EppError` (429, drop reason `evicted`) to answer with.
   * Undefined otherwise.
   */
  evictionSignal(request: InferenceRequest): AbortSignal | undefined;
}

/** Legacy admission (gate off). */
export class LegacyAdmission implements Admission {
  readonly mode = "legacy" as const;
  private closed = false;
  constructor(
    readonly detector: SaturationDetector,
    private readonly clock: Clock = systemClock,
    private readonly observer?: Pick<FlowControlObserver, "poolSaturation">,
  ) {}
  async admit(request: InferenceRequest, candidates: Endpoint[] | CandidatesProvider): Promise<number> {
    if (this.closed) {
      throw new EppError("ServiceUnavailable", "flow control is shutting down", "rejected-shutting-down");
    }
    if (request.objectives.priority >= 0) return 0;
    const list = typeof candidates === "function" ? candidates() : candidates;
    const sat = this.detector.saturation(list, this.clock.now());
    this.observer?.poolSaturation("effective", sat);
    if (sat >= 1.0) throw new EppError("ResourceExhausted", LEGACY_SATURATED_MESSAGE, "rejected-saturated");
    return 0;
  }
  onRequestDone(request?: InferenceRequest): void {
    if (request) this.detector.release?.(request);
  }
  evictionSignal(_request: InferenceRequest): AbortSignal | undefined {
    return undefined;
  }
  kick(): void {}
  shutdown(): void {
    this.closed = true;
  }
}

/** Flow-control admission (gate on): a thin wrapper over {@link FlowController}. */
export class FlowControlAdmission implements Admission {
  readonly mode = "flow-control" as const;
  constructor(
    readonly controller: FlowController,
    readonly detector: SaturationDetector,
  ) {}
  async admit(
    request: InferenceRequest,
    candidates: Endpoint[] | CandidatesProvider,
    signal?: AbortSignal,
  ): Promise<number> {
    const r: FlowControlResult = await this.controller.enqueueAndWait(request, candidates, signal);
    if (r.error) throw r.error;
    return r.queueTimeMs;
  }
  onRequestDone(request?: InferenceRequest): void {
    this.controller.onRequestDone(request);
  }
  kick(): void {
    this.controller.kick();
  }
  shutdown(): void {
    this.controller.shutdown();
  }
  evictionSignal(request: InferenceRequest): AbortSignal | undefined {
    return this.controller.evictionSignal(request);
  }
}

/** Options of {@link createAdmission}. */
export interface CreateAdmissionOptions {
  /** default {@link systemClock} */
  clock?: Clock;
  /** metrics sink, e.g. `createFlowControlMetrics(registry)` */
  observer?: FlowControlObserver;
  /** dispatch trigger (tests); default `queueMicrotask` */
  schedule?: (run: () => void) => void;
  /** ms between re-checks while blocked (default 50) */
  retryIntervalMs?: number;
}

/** What {@link createAdmission} built. */
export interface BuiltAdmission {
  admission: Admission;
  config: FlowControlConfig;
  /** plugins instantiated here because the config referred to a default type it did not configure */
  createdPlugins: Plugin[];
}

/**
 * Builds admission from a loaded EndpointPickerConfig: reads `loaded.resolved.flowControl`
 * (with the deprecated top-level `saturationDetector` already folded in by the loader) and the
 * `flowControl` feature gate.
 *
 * @param registry used to instantiate default plugin types that the config does not define
 * @throws ConfigError when a ref names no plugin, or a plugin of the wrong kind, or the section is invalid
 */
export function createAdmission(
  loaded: LoadedConfig,
  registry: PluginRegistry,
  opts: CreateAdmissionOptions = {},
): BuiltAdmission {
  const raw = loaded.resolved.flowControl as Record<string, unknown> | undefined;
  const config = parseFlowControlConfig(raw);
  const created: Plugin[] = [];
  const handle: PluginHandle = {
    plugin: (name) => loaded.plugins.find((p) => p.name === name) ?? created.find((p) => p.name === name),
    addPlugin: (p) => {
      created.push(p);
    },
    allPlugins: () => [...loaded.plugins, ...created],
  };
  const resolve = <T extends Plugin>(
    ref: string,
    guard: (p: Plugin) => p is T,
    what: string,
    at: string,
  ): T => {
    let p = handle.plugin(ref);
    if (p === undefined) {
      const reg = registry.get(ref);
      if (reg === undefined) throw new ConfigError(`${at}: undefined plugin ${JSON.stringify(ref)}`);
      p = reg.factory(ref, undefined, handle);
      created.push(p);
    }
    if (!guard(p)) throw new ConfigError(`${at}: plugin ${JSON.stringify(ref)} (${p.type}) is not a ${what}`);
    return p;
  };
  const detector = resolve(
    config.saturationDetectorRef,
    isSaturationDetector,
    "saturation detector",
    "flowControl.saturationDetector.pluginRef",
  );
  const clock = opts.clock ?? systemClock;
  if (!loaded.featureGates.has(FLOW_CONTROL_GATE)) {
    return {
      admission: new LegacyAdmission(detector, clock, opts.observer),
      config,
      createdPlugins: created,
    };
  }
  const usageLimit = resolve(
    config.usageLimitPolicyPluginRef,
    isUsageLimitPolicy,
    "usage limit policy",
    "flowControl.usageLimitPolicyPluginRef",
  );
  const fairness = new Map<string, FairnessPolicy>();
  const ordering = new Map<string, OrderingPolicy>();
  const bands = [
    { b: config.defaultPriorityBand, at: "flowControl.defaultPriorityBand" },
    { b: config.defaultNegativePriorityBand, at: "flowControl.defaultNegativePriorityBand" },
    ...config.priorityBands.map((b, i) => ({ b, at: `flowControl.priorityBands[${i}]` })),
  ];
  for (const { b, at } of bands) {
    if (!fairness.has(b.fairnessPolicyRef))
      fairness.set(
        b.fairnessPolicyRef,
        resolve(b.fairnessPolicyRef, isFairnessPolicy, "fairness policy", `${at}.fairnessPolicyRef`),
      );
    if (!ordering.has(b.orderingPolicyRef))
      ordering.set(
        b.orderingPolicyRef,
        resolve(b.orderingPolicyRef, isOrderingPolicy, "ordering policy", `${at}.orderingPolicyRef`),
      );
  }
  const controller = new FlowController({
    config,
    detector,
    usageLimit,
    fairnessPolicies: fairness,
    orderingPolicies: ordering,
    clock,
    schedule: opts.schedule,
    retryIntervalMs: opts.retryIntervalMs,
    observer: opts.observer,
  });
  return { admission: new FlowControlAdmission(controller, detector), config, createdPlugins: created };
}
