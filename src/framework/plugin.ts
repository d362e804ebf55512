/**
 * Plugin interfaces of the EPP, registry types and the loaded-config shape.
 *
 * Modelled on llm-d-router `pkg/epp/framework/interface/{plugin,scheduling,requestcontrol}`
 * (reference/epp.md §2.1–2.2). Scheduling plugins (filters, scorers, pickers, profile
 * handlers) are pure and synchronous: no I/O, no timers. Request-control plugins may be
 * async (data producers have a timeout, 400 ms by default).
 *
 * A plugin implements one or more of the interfaces below; capability is detected with the
 * `is*` guards (by method presence), as Go does with type assertions.
 */
import type { Endpoint, InferenceRequest, ProfileRunResult, ScoredEndpoint, SchedulingResult } from "./types.js";

/** Every plugin has a type (registry key) and a name (unique in a config; defaults to the type). */
export interface Plugin {
  readonly type: string;
  readonly name: string;
}

/** Filters endpoints; returning an empty list fails the profile (429 `rejected-saturated`). */
export interface Filter extends Plugin {
  filter(request: InferenceRequest, endpoints: Endpoint[]): Endpoint[];
}

/** Scorer category (reference/epp.md §2.1). */
export type ScorerCategory = "Affinity" | "Distribution" | "Balance";

/**
 * Scores endpoints in [0,1] (values outside are clamped by the scheduler). An endpoint the
 * scorer omits from the map gets 0 from it.
 */
export interface Scorer extends Plugin {
  readonly category: ScorerCategory;
  score(request: InferenceRequest, endpoints: Endpoint[]): Map<Endpoint, number>;
}

/** Picks the target endpoints from the weighted scores. */
export interface Picker extends Plugin {
  pick(request: InferenceRequest, scored: ScoredEndpoint[]): ProfileRunResult;
}

/** A scorer reference inside a profile, with its float weight (default 1.0). */
export interface WeightedScorer {
  scorer: Scorer;
  weight: number;
}

/** One scheduling profile: filters in order → weighted scorers → picker. */
export interface SchedulerProfile {
  readonly name: string;
  readonly filters: Filter[];
  readonly scorers: WeightedScorer[];
  readonly picker: Picker;
}

/**
 * Chooses which profiles run (called in a loop until it returns none) and combines their
 * results (reference/epp.md §2.1 `ProfileHandler`).
 */
export interface ProfileHandler extends Plugin {
  /**
   * @param profiles all configured profiles by name
   * @param results results so far (null = that profile failed)
   * @returns profiles to run next; empty to stop
   */
  pickProfiles(
    request: InferenceRequest,
    profiles: ReadonlyMap<string, SchedulerProfile>,
    results: Readonly<Record<string, ProfileRunResult | null>>,
  ): SchedulerProfile[];
  /** Combines the results; throws (an `EppError`) when the request cannot be served. */
  processResults(request: InferenceRequest, results: Record<string, ProfileRunResult | null>): SchedulingResult;
}

/**
 * Produces per-request data before scheduling (tokens, prefix-match info, load). Failures and
 * timeouts are logged, never fatal (reference/epp.md §1.3).
 */
export interface DataProducer extends Plugin {
  produce(request: InferenceRequest, endpoints: Endpoint[]): void | Promise<void>;
  /** ms; default 400 */
  readonly produceTimeoutMs?: number;
}

/** Runs after scheduling, before the request is sent (headers, index inserts, load accounting). */
export interface PreRequest extends Plugin {
  preRequest(request: InferenceRequest, result: SchedulingResult): void;
}

/** Usage reported by the model server's response. Token counts. */
export interface ResponseUsage {
  promptTokens: number;
  completionTokens: number;
  cachedTokens: number;
}

/** What a response hook sees of the response. */
export interface ResponseInfo {
  /** HTTP status from the upstream */
  status: number;
  /** endpoint that served the request */
  endpoint: Endpoint;
  /** usage, when the response carried it */
  usage?: ResponseUsage;
  /** true once the response is complete; set in ResponseComplete */
  endOfStream: boolean;
  /** why the request ended when it did not complete normally */
  terminationCause?: "client-disconnect" | "upstream-error" | "evicted";
}

/** Called when the response headers arrive. */
export interface ResponseReceived extends Plugin {
  responseReceived(request: InferenceRequest, response: ResponseInfo): void;
}

/** Called for the first streamed chunk (and optionally later ones). */
export interface ResponseStreaming extends Plugin {
  responseStreaming(request: InferenceRequest, response: ResponseInfo): void;
}

/** Called once when the response completed or terminated. */
export interface ResponseComplete extends Plugin {
  responseComplete(request: InferenceRequest, response: ResponseInfo): void;
}

export const isFilter = (p: Plugin): p is Filter => typeof (p as Filter).filter === "function";
export const isScorer = (p: Plugin): p is Scorer => typeof (p as Scorer).score === "function";
export const isPicker = (p: Plugin): p is Picker => typeof (p as Picker).pick === "function";
export const isProfileHandler = (p: Plugin): p is ProfileHandler =>
  typeof (p as ProfileHandler).pickProfiles === "function" && typeof (p as ProfileHandler).processResults === "function";
export const isDataProducer = (p: Plugin): p is DataProducer => typeof (p as DataProducer).produce === "function";
export const isPreRequest = (p: Plugin): p is PreRequest => typeof (p as PreRequest).preRequest === "function";
export const isResponseReceived = (p: Plugin): p is ResponseReceived =>
  typeof (p as ResponseReceived).responseReceived === "function";
export const isResponseStreaming = (p: Plugin): p is ResponseStreaming =>
  typeof (p as ResponseStreaming).responseStreaming === "function";
export const isResponseComplete = (p: Plugin): p is ResponseComplete =>
  typeof (p as ResponseComplete).responseComplete === "function";

/** What a plugin factory can reach: other plugins by name (for `pluginRef` parameters). */
export interface PluginHandle {
  /** A plugin instantiated earlier (dependencies come first); undefined if unknown. */
  plugin(name: string): Plugin | undefined;
  /** Adds a plugin created on the fly (e.g. an auto-created default producer). */
  addPlugin(plugin: Plugin): void;
  /** All plugins so far. */
  allPlugins(): Plugin[];
}

/**
 * Creates a plugin from its config entry. `params` is the raw `parameters` value
 * (undefined when absent); the factory decodes it strictly and throws a `ConfigError`
 * naming the unknown or invalid field.
 */
export type PluginFactory = (name: string, params: unknown, handle: PluginHandle) => Plugin;

/** The result of loading an EndpointPickerConfig: ready-to-run plugins and profiles. */
export interface LoadedConfig {
  /** every instantiated plugin, in instantiation order (configured and injected) */
  plugins: Plugin[];
  profiles: Map<string, SchedulerProfile>;
  profileHandler: ProfileHandler;
  /** enabled feature gates, e.g. `flowControl` */
  featureGates: Set<string>;
  /** the resolved config with every default filled in, for `llmd config check` */
  resolved: Record<string, unknown>;
}

/** Options of a registration. */
export interface RegisterOptions {
  /** registered under a deprecated type name; the loader warns and names the replacement */
  deprecatedReplacement?: string;
  /**
   * Names of other plugins this plugin's raw `parameters` refer to (llm-d's `pluginRef`-tagged
   * fields). The loader instantiates them first and fails when one is not defined.
   */
  pluginRefs?: (params: unknown) => string[];
  /**
   * Data keys this type produces by default (llm-d `RegisterAsDefaultProducer`): when a loaded
   * plugin `consumes` one of them and no plugin `produces` it, the loader creates this type
   * with default parameters, named after the type.
   */
  defaultProducerFor?: readonly string[];
}

/** Registry of plugin factories by type name (llm-d `fwkplugin.Register`). */
export interface PluginRegistry {
  /** Registers a factory; a second registration of the same type throws. */
  register(type: string, factory: PluginFactory, opts?: RegisterOptions): void;
  /** The factory of a type, or undefined. */
  get(type: string): { factory: PluginFactory; opts: RegisterOptions } | undefined;
  /** All registered type names, sorted. */
  types(): string[];
}

/**
 * Decides whether a request is disaggregated into prefill + decode, given the endpoint the
 * decode profile picked (`prefix-based-pd-decider`, `always-disagg-pd-decider`;
 * reference/epp.md §3.1). Pure and synchronous like every scheduling plugin.
 */
export interface PdDecider extends Plugin {
  disaggregate(request: InferenceRequest, decodeEndpoint: Endpoint): boolean;
}

export const isPdDecider = (p: Plugin): p is PdDecider => typeof (p as PdDecider).disaggregate === "function";
