/**
 * `utilization-detector` — the default saturation detector; also a Filter.
 *
 * Per endpoint: `s = max(waitingQueueSize / queueDepthThreshold, kvCacheUsagePercent / kvCacheUtilThreshold)`.
 * An endpoint whose metrics are stale (`now − updateTime > metricsStalenessThreshold`, or never
 * scraped) counts as fully saturated (`s = 1.0`). Pool saturation = the **average** of `s`
 * over the candidates; an empty candidate list reads 1.0.
 *
 * As a Filter: drops stale endpoints and endpoints with
 * `waitingQueueSize ≥ queueDepthThreshold·(1+headroom)` or
 * `kvCacheUsagePercent ≥ min(kvCacheUtilThreshold·(1+headroom), 1.0)`; when every endpoint would
 * be dropped it returns the original list (fail-open).
 *
 * Parameters:
 * - `queueDepthThreshold` (requests waiting, number > 0, default 5)
 * - `kvCacheUtilThreshold` (fraction 0..1, > 0, default 0.8)
 * - `metricsStalenessThreshold` (duration, `200ms` / `2s` / number of ms, default 200 ms)
 * - `headroom` (fraction ≥ 0, default 0.0; only widens the Filter limits)
 *
 * Source: reference/epp.md §5.2 (staleness), §6 "Saturation detectors" (llm-d-router
 * `framework/plugins/flowcontrol/saturationdetector/utilization`).
 */
import { z } from "zod";
import { decodeParams } from "../../framework/config/params.js";
import type { SaturationDetector } from "../../framework/flow-control.js";
import type { PluginFactory } from "../../framework/plugin.js";
import type { Endpoint, InferenceRequest } from "../../framework/types.js";

export const UTILIZATION_DETECTOR_TYPE = "utilization-detector";

/** Defaults (reference/epp.md §6). */
export const UTILIZATION_DEFAULTS = {
  queueDepthThreshold: 5,
  kvCacheUtilThreshold: 0.8,
  metricsStalenessThresholdMs: 200,
  headroom: 0,
} as const;

const DURATION_UNIT_MS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/** Go duration (`200ms`, `1.5s`, `1m30s`) or a number of ms → ms; undefined when invalid. */
function durationMs(v: string | number): number | undefined {
  if (typeof v === "number") return Number.isFinite(v) && v >= 0 ? v : undefined;
  const s = v.trim();
  if (/^\d+(\.\d+)?$/.test(s)) return Number(s);
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/y;
  let total = 0;
  let pos = 0;
  for (let m = re.exec(s); m !== null; m = re.exec(s)) {
    total += Number(m[1]) * DURATION_UNIT_MS[m[2]!]!;
    pos = re.lastIndex;
  }
  return pos === s.length && pos > 0 ? total : undefined;
}

const schema = z
  .object({
    queueDepthThreshold: z.number().positive().default(UTILIZATION_DEFAULTS.queueDepthThreshold),
    kvCacheUtilThreshold: z.number().positive().max(1).default(UTILIZATION_DEFAULTS.kvCacheUtilThreshold),
    metricsStalenessThreshold: z
      .union([z.string().min(1), z.number()])
      .optional()
      .transform((v, ctx) => {
        if (v === undefined) return UTILIZATION_DEFAULTS.metricsStalenessThresholdMs;
        const ms = durationMs(v);
        if (ms === undefined) {
          ctx.addIssue({
            code: "custom",
            message: `invalid duration ${JSON.stringify(v)} (use e.g. 200ms, 2s)`,
          });
          return z.NEVER;
        }
        return ms;
      }),
    headroom: z.number().nonnegative().default(UTILIZATION_DEFAULTS.headroom),
  })
  .strict();

/** Decoded parameters; `metricsStalenessThreshold` in ms. */
export interface UtilizationDetectorParams {
  queueDepthThreshold: number;
  kvCacheUtilThreshold: number;
  /** ms */
  metricsStalenessThreshold: number;
  headroom: number;
}

/** Utilization-based saturation detector and filter (see file header). */
export class UtilizationDetector implements SaturationDetector {
  readonly type = UTILIZATION_DETECTOR_TYPE;
  readonly params: UtilizationDetectorParams;

  /**
   * @param now clock used by `filter` (which has no `now` argument), ms since the epoch;
   *   default `Date.now`
   */
  constructor(
    readonly name: string = UTILIZATION_DETECTOR_TYPE,
    params: Partial<UtilizationDetectorParams> = {},
    private readonly now: () => number = Date.now,
  ) {
    this.params = {
      queueDepthThreshold: params.queueDepthThreshold ?? UTILIZATION_DEFAULTS.queueDepthThreshold,
      kvCacheUtilThreshold: params.kvCacheUtilThreshold ?? UTILIZATION_DEFAULTS.kvCacheUtilThreshold,
      metricsStalenessThreshold:
        params.metricsStalenessThreshold ?? UTILIZATION_DEFAULTS.metricsStalenessThresholdMs,
      headroom: params.headroom ?? UTILIZATION_DEFAULTS.headroom,
    };
  }

  /** True when the endpoint's metrics are older than the staleness threshold (or never scraped). */
  isStale(ep: Endpoint, now: number): boolean {
    const t = ep.metrics.updateTime;
    return t <= 0 || now - t > this.params.metricsStalenessThreshold;
  }

  /** Saturation of one endpoint (fraction; 1.0 when stale). */
  endpointSaturation(ep: Endpoint, now: number): number {
    if (this.isStale(ep, now)) return 1;
    const m = ep.metrics;
    return Math.max(
      m.waitingQueueSize / this.params.queueDepthThreshold,
      m.kvCacheUsagePercent / this.params.kvCacheUtilThreshold,
    );
  }

  saturation(candidates: Endpoint[], now: number): number {
    if (candidates.length === 0) return 1;
    let sum = 0;
    for (const ep of candidates) sum += this.endpointSaturation(ep, now);
    return sum / candidates.length;
  }

  filter(_request: InferenceRequest, endpoints: Endpoint[]): Endpoint[] {
    const now = this.now();
    const f = 1 + this.params.headroom;
    const queueLimit = this.params.queueDepthThreshold * f;
    const kvLimit = Math.min(this.params.kvCacheUtilThreshold * f, 1);
    const kept = endpoints.filter(
      (ep) =>
        !this.isStale(ep, now) &&
        ep.metrics.waitingQueueSize < queueLimit &&
        ep.metrics.kvCacheUsagePercent < kvLimit,
    );
    return kept.length === 0 ? endpoints : kept;
  }
}

/** Factory. @throws ParamsError naming the offending parameter. */
export const utilizationDetectorFactory: PluginFactory = (name, params) =>
  new UtilizationDetector(name, decodeParams(schema, params));
