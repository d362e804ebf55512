/**
 * The `flowControl:` section of an EndpointPickerConfig as typed engine options: durations
 * (`60s`, `200ms`, `1m30s`; a bare number = ms) become ms, byte quantities (`1G`, `512Mi`,
 * a bare number = bytes) become bytes, and defaults are filled in.
 *
 * Source: reference/epp.md §6 "Config" (llm-d-router `apix/config/v1alpha1/endpointpickerconfig_types.go`).
 */
import { parseDurationMs } from "../framework/duration.js";
import { z } from "zod";
import { describeZodIssue } from "../framework/config/params.js";
import { ConfigError } from "../framework/errors.js";

/** Defaults (reference/epp.md §2.3, §6). */
export const FLOW_CONTROL_CONFIG_DEFAULTS = {
  /** ms */
  defaultRequestTTLMs: 60_000,
  /** bytes (1G) */
  bandMaxBytes: 1_000_000_000,
  bandMaxRequests: 5000,
  fairnessPolicyRef: "global-strict-fairness-policy",
  orderingPolicyRef: "fcfs-ordering-policy",
  usageLimitPolicyPluginRef: "static-usage-limit-policy",
  saturationDetectorRef: "utilization-detector",
} as const;

/** One priority band (or a template for bands created on demand). */
export interface BandConfig {
  /** priority of the band; undefined for the default templates */
  priority?: number;
  /** bytes queued in the band before `RejectedCapacity` (default 1G = 10^9) */
  maxBytes: number;
  /** requests queued in the band before `RejectedCapacity` (default 5000) */
  maxRequests: number;
  fairnessPolicyRef: string;
  orderingPolicyRef: string;
}

/** Typed flow-control options. */
export interface FlowControlConfig {
  /** global queued-bytes limit; `Infinity` = unlimited (default; 0 also means unlimited) */
  maxBytes: number;
  /** global queued-requests limit; `Infinity` = unlimited (default; 0 also means unlimited) */
  maxRequests: number;
  /** ms a request may wait in the queue; 0 = no TTL eviction (default 60 000) */
  defaultRequestTTLMs: number;
  /**
   * ms a request that arrived while its candidate list was empty may wait for endpoints to
   * appear; 0 = such requests are rejected at once (`RejectedNoEndpoints`).
   * Default: `defaultRequestTTLMs`.
   */
  noEndpointRequestTTLMs: number;
  /** template of bands created on demand for priorities ≥ 0 without a configured band */
  defaultPriorityBand: BandConfig;
  /** template for priorities < 0 without a configured band (default: `defaultPriorityBand`) */
  defaultNegativePriorityBand: BandConfig;
  /** configured bands (unique priorities) */
  priorityBands: (BandConfig & { priority: number })[];
  usageLimitPolicyPluginRef: string;
  saturationDetectorRef: string;
  /** evict in-flight priority < 0 requests while higher-priority requests are held (default false) */
  enableEviction: boolean;
}

/** Go durations (`60s`, `200ms`) or ms; one parser for the whole project. */
export { parseDurationMs };

const QUANTITY_FACTOR: Record<string, number> = {
  "": 1,
  k: 1e3,
  K: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};

/**
 * Parses a Kubernetes-style byte quantity: `1G` = 10^9, `512Mi` = 512·2^20, `1e6`, `1000`
 * (`K` is accepted as `k`).
 * @returns bytes ≥ 0 (rounded up to an integer)
 * @throws Error on anything else
 */
export function parseQuantityBytes(v: string | number): number {
  if (typeof v === "number") {
    if (!Number.isFinite(v) || v < 0) throw new Error(`invalid byte quantity ${v}`);
    return Math.ceil(v);
  }
  const m = /^(\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)(k|K|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$/.exec(v.trim());
  if (!m) throw new Error(`invalid byte quantity ${JSON.stringify(v)} (use e.g. 1G, 512Mi, 1000000)`);
  return Math.ceil(Number(m[1]) * QUANTITY_FACTOR[m[2] ?? ""]!);
}

const duration = z.union([z.string().min(1), z.number()]);
const quantity = z.union([z.string().min(1), z.number()]);
const bandShape = {
  priority: z.number().int().optional(),
  maxBytes: quantity.optional(),
  maxRequests: z.number().int().nonnegative().optional(),
  fairnessPolicyRef: z.string().min(1).optional(),
  orderingPolicyRef: z.string().min(1).optional(),
};
const bandSchema = z.object(bandShape).strict();
const sectionSchema = z
  .object({
    maxBytes: quantity.optional(),
    maxRequests: z.number().int().nonnegative().optional(),
    defaultRequestTTL: duration.optional(),
    noEndpointRequestTTL: duration.optional(),
    defaultPriorityBand: bandSchema.optional(),
    defaultNegativePriorityBand: bandSchema.optional(),
    priorityBands: z.array(z.object({ ...bandShape, priority: z.number().int() }).strict()).nullish(),
    usageLimitPolicyPluginRef: z.string().min(1).optional(),
    saturationDetector: z
      .object({ pluginRef: z.string().min(1) })
      .strict()
      .optional(),
    enableEviction: z.boolean().optional(),
  })
  .strict();

type RawBand = z.infer<typeof bandSchema>;

/**
 * Decodes a `flowControl:` section — raw from the YAML or the loader's
 * `LoadedConfig.resolved.flowControl` — into {@link FlowControlConfig}.
 *
 * @param raw the section (`undefined`/`null` = all defaults)
 * @param deprecatedDetectorRef the deprecated top-level `saturationDetector.pluginRef`, used
 *   when the section names none
 * @throws ConfigError naming the field, e.g. `flowControl.defaultRequestTTL: invalid duration "x"`,
 *   `flowControl.priorityBands[1].priority: duplicate priority 10`
 */
export function parseFlowControlConfig(raw: unknown, deprecatedDetectorRef?: string): FlowControlConfig {
  const r = sectionSchema.safeParse(raw ?? {});
  if (!r.success) {
    const { field, problem } = describeZodIssue(r.error.issues[0]!);
    throw new ConfigError(`flowControl${field === "" ? "" : `.${field}`}: ${problem}`);
  }
  const s = r.data;
  const at = (f: string, fn: () => number): number => {
    try {
      return fn();
    } catch (e) {
      throw new ConfigError(`flowControl.${f}: ${(e as Error).message}`);
    }
  };
  const unlimited = (n: number) => (n === 0 ? Number.POSITIVE_INFINITY : n);
  const band = (b: RawBand | undefined, where: string, base?: BandConfig): BandConfig => ({
    ...(b?.priority !== undefined ? { priority: b.priority } : {}),
    maxBytes:
      b?.maxBytes !== undefined && b.maxBytes !== 0 && b.maxBytes !== "0"
        ? at(`${where}.maxBytes`, () => parseQuantityBytes(b.maxBytes!))
        : (base?.maxBytes ?? FLOW_CONTROL_CONFIG_DEFAULTS.bandMaxBytes),
    maxRequests:
      b?.maxRequests !== undefined && b.maxRequests !== 0
        ? b.maxRequests
        : (base?.maxRequests ?? FLOW_CONTROL_CONFIG_DEFAULTS.bandMaxRequests),
    fairnessPolicyRef:
      b?.fairnessPolicyRef ?? base?.fairnessPolicyRef ?? FLOW_CONTROL_CONFIG_DEFAULTS.fairnessPolicyRef,
    orderingPolicyRef:
      b?.orderingPolicyRef ?? base?.orderingPolicyRef ?? FLOW_CONTROL_CONFIG_DEFAULTS.orderingPolicyRef,
  });
  const ttl =
    s.defaultRequestTTL !== undefined
      ? at("defaultRequestTTL", () => parseDurationMs(s.defaultRequestTTL!))
      : FLOW_CONTROL_CONFIG_DEFAULTS.defaultRequestTTLMs;
  const noEp =
    s.noEndpointRequestTTL !== undefined
      ? at("noEndpointRequestTTL", () => parseDurationMs(s.noEndpointRequestTTL!))
      : ttl;
  const def = band(s.defaultPriorityBand, "defaultPriorityBand");
  const neg = s.defaultNegativePriorityBand
    ? band(s.defaultNegativePriorityBand, "defaultNegativePriorityBand", def)
    : def;
  const seen = new Map<number, number>();
  const bands = (s.priorityBands ?? []).map((b, i) => {
    const prev = seen.get(b.priority);
    if (prev !== undefined) {
      throw new ConfigError(
        `flowControl.priorityBands[${i}].priority: duplicate priority ${b.priority} (also priorityBands[${prev}])`,
      );
    }
    seen.set(b.priority, i);
    return { ...band(b, `priorityBands[${i}]`, b.priority < 0 ? neg : def), priority: b.priority };
  });
  return {
    maxBytes:
      s.maxBytes !== undefined ? unlimited(at("maxBytes", () => parseQuantityBytes(s.maxBytes!))) : Infinity,
    maxRequests: s.maxRequests !== undefined ? unlimited(s.maxRequests) : Number.POSITIVE_INFINITY,
    defaultRequestTTLMs: ttl,
    noEndpointRequestTTLMs: noEp,
    defaultPriorityBand: def,
    defaultNegativePriorityBand: neg,
    priorityBands: bands,
    usageLimitPolicyPluginRef:
      s.usageLimitPolicyPluginRef ?? FLOW_CONTROL_CONFIG_DEFAULTS.usageLimitPolicyPluginRef,
    saturationDetectorRef:
      s.saturationDetector?.pluginRef ??
      deprecatedDetectorRef ??
      FLOW_CONTROL_CONFIG_DEFAULTS.saturationDetectorRef,
    enableEviction: s.enableEviction ?? false,
  };
}
