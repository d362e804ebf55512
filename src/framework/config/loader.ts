/**
 * `EndpointPickerConfig` loader: strict decoding, plugin instantiation in dependency order,
 * default injections and validation (reference/epp.md §2.3; llm-d-router
 * `pkg/epp/config/loader/{configloader,defaults,validation}.go`).
 */
import { readFileSync } from "node:fs";
import { parseDocument } from "yaml";
import { logger } from "../../log.js";
import { ConfigError } from "../errors.js";
import {
  isFilter,
  isPicker,
  isProfileHandler,
  isScorer,
  type Filter,
  type LoadedConfig,
  type Picker,
  type Plugin,
  type PluginHandle,
  type PluginRegistry,
  type ProfileHandler,
  type SchedulerProfile,
  type WeightedScorer,
} from "../plugin.js";
import { describeZodIssue, joinPath, ParamsError } from "./params.js";
import {
  API_VERSION,
  CONFIG_KIND,
  type EndpointPickerConfigDoc,
  endpointPickerConfigSchema,
  LEGACY_API_VERSION,
} from "./schema.js";

/** Type of the profile handler injected when there is one profile and no handler. */
export const DEFAULT_PROFILE_HANDLER_TYPE = "single-profile-handler";
/** Type of the picker injected into profiles that lack one. */
export const DEFAULT_PICKER_TYPE = "max-score-picker";
/** Name of the profile created when the config has no `schedulingProfiles`. */
export const DEFAULT_PROFILE_NAME = "default";
/** Default parsers, in order (reference/epp.md §1.9, §2.3). */
export const DEFAULT_PARSERS = ["openai-parser", "anthropic-parser", "vllmhttp-parser", "passthrough-parser"];
/** Default data-layer source and extractor (reference/epp.md §2.3, §5.2). */
export const DEFAULT_METRICS_SOURCE = "metrics-data-source";
export const DEFAULT_METRICS_EXTRACTOR = "core-metrics-extractor";
/** Flow-control defaults (reference/epp.md §2.3, §6). */
export const FLOW_CONTROL_DEFAULTS = {
  defaultRequestTTL: "60s",
  fairnessPolicyRef: "global-strict-fairness-policy",
  orderingPolicyRef: "fcfs-ordering-policy",
  usageLimitPolicyPluginRef: "static-usage-limit-policy",
  saturationDetector: "utilization-detector",
  bandMaxBytes: "1G",
  bandMaxRequests: 5000,
  enableEviction: false,
} as const;
/** Known feature gates and their defaults (reference/epp.md §2.3). */
export const KNOWN_FEATURE_GATES: Readonly<Record<string, boolean>> = {
  flowControl: false,
  haPopulateNonLeaderDatastore: true,
};

/**
 * The built-in default config, used when no config text is given: `queue-scorer` weight 2,
 * `kv-cache-utilization-scorer` weight 2, `prefix-cache-scorer` weight 3; the loader adds
 * `max-score-picker` and `single-profile-handler` (reference/epp.md §2.3 "CLI").
 */
export const DEFAULT_CONFIG_TEXT = `apiVersion: ${API_VERSION}
kind: ${CONFIG_KIND}
plugins:
- type: queue-scorer
- type: kv-cache-utilization-scorer
- type: prefix-cache-scorer
schedulingProfiles:
- name: ${DEFAULT_PROFILE_NAME}
  plugins:
  - pluginRef: queue-scorer
    weight: 2
  - pluginRef: kv-cache-utilization-scorer
    weight: 2
  - pluginRef: prefix-cache-scorer
    weight: 3
`;

/** Options of {@link loadConfig}. */
export interface LoadConfigOptions {
  /** receives warnings (deprecated types/fields); default: the process logger at `warn` */
  warn?: (message: string) => void;
  /** known feature gates and their defaults; default {@link KNOWN_FEATURE_GATES} */
  featureGates?: Readonly<Record<string, boolean>>;
}

/**
 * Loads an `EndpointPickerConfig` YAML text into ready-to-run plugins and profiles.
 *
 * `text` null, empty or blank → {@link DEFAULT_CONFIG_TEXT}. The returned
 * {@link LoadedConfig.resolved} is the full config with every default filled in.
 *
 * @throws ConfigError whose message starts with the offending field path, e.g.
 *   `plugins[2].parameters.foo: unknown field`, `plugins[0].type: unknown plugin type "x" …`,
 *   `apiVersion: unsupported …`, `schedulingProfiles[0].plugins[1].pluginRef: undefined plugin "x"`.
 */
export function loadConfig(
  text: string | null,
  registry: PluginRegistry,
  opts: LoadConfigOptions = {},
): LoadedConfig {
  const warn = opts.warn ?? ((m: string) => logger.warn({ component: "config" }, m));
  const src = text === null || text.trim() === "" ? DEFAULT_CONFIG_TEXT : text;
  const doc = decode(src);
  return new Resolver(doc, registry, warn, opts.featureGates ?? KNOWN_FEATURE_GATES).run();
}

/**
 * Reads and loads a config file.
 * @throws ConfigError when the file cannot be read (message names the path) or the config is invalid.
 */
export function loadConfigFile(
  path: string,
  registry: PluginRegistry,
  opts: LoadConfigOptions = {},
): LoadedConfig {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new ConfigError(`cannot read config file ${path}: ${(e as Error).message}`);
  }
  return loadConfig(text, registry, opts);
}

/** YAML → strictly validated document. */
function decode(src: string): EndpointPickerConfigDoc {
  const yamlDoc = parseDocument(src, { uniqueKeys: true, prettyErrors: false });
  if (yamlDoc.errors.length > 0) {
    const e = yamlDoc.errors[0]!;
    const line = e.linePos?.[0] ? ` (line ${e.linePos[0].line}, column ${e.linePos[0].col})` : "";
    throw new ConfigError(`invalid YAML${line}: ${e.message.split("\n")[0]}`);
  }
  const raw: unknown = yamlDoc.toJS();
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
    throw new ConfigError("config: expected a mapping with apiVersion, kind, plugins, …");
  }
  const r = endpointPickerConfigSchema.safeParse(raw);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    const { field, problem } = describeZodIssue(issue);
    throw new ConfigError(field === "" ? `config: ${problem}` : `${field}: ${problem}`);
  }
  return r.data;
}

/** Levenshtein distance, for "did you mean" suggestions. */
function editDistance(a: string, b: string): number {
  const prev = new Array<number>(b.length + 1);
  for (let j = 0; j <= b.length; j++) prev[j] = j;
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0]!;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = prev[j]!;
      prev[j] = Math.min(prev[j]! + 1, prev[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = tmp;
    }
  }
  return prev[b.length]!;
}

/** Up to 3 registered types close to `type` (edit distance or shared stem). */
export function closeTypes(type: string, known: readonly string[]): string[] {
  const stem = type.replace(/-(filter|scorer|picker|handler|producer)$/, "");
  return known
    .map((k) => ({ k, d: editDistance(type, k) }))
    .filter(
      ({ k, d }) => d <= Math.max(2, Math.floor(type.length / 3)) || (stem.length >= 4 && k.includes(stem)),
    )
    .sort((x, y) => x.d - y.d || x.k.localeCompare(y.k))
    .slice(0, 3)
    .map(({ k }) => k);
}

/** The `produces`/`consumes` data keys a plugin declares (empty when it declares none). */
function keysOf(p: Plugin, field: "produces" | "consumes"): readonly string[] {
  const v = (p as unknown as Record<string, unknown>)[field];
  return Array.isArray(v) ? (v.filter((x) => typeof x === "string") as string[]) : [];
}

/**
 * A plugin's decoded parameters with defaults, when it exposes them as a plain-object
 * `parameters` property (convention for `resolved`); undefined otherwise.
 */
function decodedParameters(p: Plugin): Record<string, unknown> | undefined {
  const v = (p as unknown as Record<string, unknown>).parameters;
  return v !== null && typeof v === "object" && !Array.isArray(v)
    ? (v as Record<string, unknown>)
    : undefined;
}

/** Collects every string value inside raw parameters. */
function stringsIn(v: unknown, out: Set<string>): void {
  if (typeof v === "string") out.add(v);
  else if (Array.isArray(v)) for (const x of v) stringsIn(x, out);
  else if (v !== null && typeof v === "object") for (const x of Object.values(v)) stringsIn(x, out);
}

interface Entry {
  index: number;
  name: string;
  type: string;
  params: unknown;
}

/** One loading pass; holds the intermediate state. */
class Resolver {
  private readonly instances = new Map<string, Plugin>();
  private readonly order: Plugin[] = [];
  /** profiles as printed in `resolved` (injected picker and default weights included) */
  private resolvedProfiles: Record<string, unknown>[] = [];
  /** plugin name → raw parameters for `resolved` (undefined for none) */
  private readonly rawParams = new Map<string, unknown>();

  constructor(
    private readonly doc: EndpointPickerConfigDoc,
    private readonly registry: PluginRegistry,
    private readonly warn: (m: string) => void,
    private readonly knownGates: Readonly<Record<string, boolean>>,
  ) {}

  run(): LoadedConfig {
    const doc = this.doc;
    if (doc.apiVersion !== API_VERSION && doc.apiVersion !== LEGACY_API_VERSION) {
      throw new ConfigError(
        `apiVersion: unsupported ${JSON.stringify(doc.apiVersion)} (expected ${API_VERSION} or the deprecated ${LEGACY_API_VERSION})`,
      );
    }
    if (doc.apiVersion === LEGACY_API_VERSION) {
      this.warn(`apiVersion ${LEGACY_API_VERSION} is deprecated; use ${API_VERSION}`);
    }
    if (doc.kind !== CONFIG_KIND) {
      throw new ConfigError(`kind: unsupported ${JSON.stringify(doc.kind)} (expected ${CONFIG_KIND})`);
    }
    const gates = this.featureGates();
    const entries = this.entries();
    this.instantiate(entries);
    this.injectDefaultProducers();
    const profileSpecs = this.profileSpecs();
    const handler = this.profileHandler(profileSpecs.length);
    const profiles = this.buildProfiles(profileSpecs);
    const enabled = new Set(Object.keys(gates).filter((g) => gates[g]));
    const resolved = this.resolved(gates);
    return { plugins: [...this.order], profiles, profileHandler: handler, featureGates: enabled, resolved };
  }

  private featureGates(): Record<string, boolean> {
    const gates: Record<string, boolean> = { ...this.knownGates };
    (this.doc.featureGates ?? []).forEach((g, i) => {
      const m = /^([A-Za-z0-9_.-]+)(?:=(true|false))?$/.exec(g.trim());
      if (!m)
        throw new ConfigError(
          `featureGates[${i}]: invalid ${JSON.stringify(g)} (expected "name" or "name=true|false")`,
        );
      const name = m[1]!;
      if (!Object.hasOwn(this.knownGates, name)) {
        throw new ConfigError(
          `featureGates[${i}]: unknown feature gate ${JSON.stringify(name)} (known: ${Object.keys(this.knownGates).join(", ")})`,
        );
      }
      gates[name] = m[2] !== "false";
    });
    return gates;
  }

  /** Plugin entries with names; checks types and duplicate names. */
  private entries(): Entry[] {
    const entries: Entry[] = [];
    const byName = new Map<string, number>();
    const unknown: string[] = [];
    const known = this.registry.types();
    (this.doc.plugins ?? []).forEach((spec, index) => {
      const name = spec.name ?? spec.type;
      const prev = byName.get(name);
      if (prev !== undefined) {
        throw new ConfigError(
          `plugins[${index}].name: duplicate plugin name ${JSON.stringify(name)} (also plugins[${prev}])`,
        );
      }
      byName.set(name, index);
      if (this.registry.get(spec.type) === undefined) {
        const close = closeTypes(spec.type, known);
        unknown.push(
          `plugins[${index}].type: unknown plugin type ${JSON.stringify(spec.type)}` +
            (close.length > 0 ? ` (did you mean ${close.map((c) => JSON.stringify(c)).join(", ")}?)` : ""),
        );
      }
      entries.push({ index, name, type: spec.type, params: spec.parameters ?? undefined });
    });
    if (unknown.length > 0) throw new ConfigError(unknown.join("; "));
    return entries;
  }

  /** Topological order of `pluginRef` dependencies (stable: config order among ready plugins). */
  private dependencyOrder(entries: Entry[]): Entry[] {
    const byName = new Map(entries.map((e) => [e.name, e]));
    const tagged = new Map<string, Set<string>>();
    const all = new Map<string, Set<string>>();
    for (const e of entries) {
      const d = new Set<string>();
      const reg = this.registry.get(e.type)!;
      if (reg.opts.pluginRefs) {
        let refs: string[];
        try {
          refs = reg.opts.pluginRefs(e.params);
        } catch (err) {
          throw this.wrapFactoryError(e, err);
        }
        for (const r of refs) {
          if (!byName.has(r)) {
            throw new ConfigError(
              `plugins[${e.index}].parameters: pluginRef ${JSON.stringify(r)} is not a defined plugin`,
            );
          }
          d.add(r);
        }
      }
      d.delete(e.name);
      tagged.set(e.name, d);
      // Untagged references: any string parameter naming another configured plugin. These are
      // soft edges: dropped when they would make a cycle.
      const soft = new Set(d);
      const strs = new Set<string>();
      stringsIn(e.params, strs);
      for (const x of strs) if (byName.has(x) && x !== e.name) soft.add(x);
      all.set(e.name, soft);
    }
    const order = (deps: Map<string, Set<string>>): Entry[] | string[] => {
      const done = new Set<string>();
      const out: Entry[] = [];
      while (out.length < entries.length) {
        const next = entries.find(
          (e) => !done.has(e.name) && [...deps.get(e.name)!].every((d) => done.has(d)),
        );
        if (next === undefined) return entries.filter((e) => !done.has(e.name)).map((e) => e.name);
        done.add(next.name);
        out.push(next);
      }
      return out;
    };
    const withSoft = order(all);
    if (withSoft.length === 0 || typeof withSoft[0] !== "string") return withSoft as Entry[];
    const strict = order(tagged);
    if (strict.length === 0 || typeof strict[0] !== "string") return strict as Entry[];
    throw new ConfigError(
      `plugins: dependency cycle among ${(strict as string[]).map((n) => JSON.stringify(n)).join(", ")}`,
    );
  }

  /** configured entries not instantiated yet, by name */
  private readonly pending = new Map<string, Entry>();
  /** entries being instantiated (cycle detection for lazy instantiation) */
  private readonly inProgress = new Set<string>();
  /** errors that already name their location */
  private readonly located = new WeakSet<object>();

  /**
   * The handle given to factories. `plugin(name)` instantiates a configured plugin that has not
   * been instantiated yet, so a factory that looks up another plugin by name always finds it
   * (dependency order without a `pluginRef` declaration).
   */
  private handle(): PluginHandle {
    return {
      plugin: (name) => {
        const p = this.instances.get(name);
        if (p !== undefined) return p;
        const e = this.pending.get(name);
        if (e === undefined || this.inProgress.has(name)) return undefined;
        this.instantiateEntry(e);
        return this.instances.get(name);
      },
      addPlugin: (p) => this.add(p, undefined),
      allPlugins: () => [...this.order],
    };
  }

  private add(p: Plugin, rawParams: unknown): void {
    if (this.instances.has(p.name) || this.pending.has(p.name)) {
      throw new ConfigError(`plugins: a plugin named ${JSON.stringify(p.name)} already exists`);
    }
    this.instances.set(p.name, p);
    this.order.push(p);
    this.rawParams.set(p.name, rawParams);
  }

  private wrapFactoryError(e: Entry, err: unknown): ConfigError {
    if (err instanceof ConfigError && this.located.has(err)) return err;
    const at = `plugins[${e.index}]`;
    let out: ConfigError;
    if (err instanceof ParamsError) {
      out = new ConfigError(`${joinPath(`${at}.parameters`, err.field)}: ${err.problem}`);
    } else {
      const msg = err instanceof Error ? err.message : String(err);
      out = new ConfigError(`${at} (${e.type} ${JSON.stringify(e.name)}): ${msg}`);
    }
    this.located.add(out);
    return out;
  }

  private instantiate(entries: Entry[]): void {
    const ordered = this.dependencyOrder(entries);
    for (const e of ordered) this.pending.set(e.name, e);
    for (const e of ordered) if (this.pending.has(e.name)) this.instantiateEntry(e);
  }

  private instantiateEntry(e: Entry): void {
    this.pending.delete(e.name);
    this.inProgress.add(e.name);
    const reg = this.registry.get(e.type)!;
    if (reg.opts.deprecatedReplacement) {
      this.warn(
        `plugins[${e.index}].type: ${JSON.stringify(e.type)} is deprecated; use ${JSON.stringify(reg.opts.deprecatedReplacement)}`,
      );
    }
    let p: Plugin;
    try {
      p = reg.factory(e.name, e.params, this.handle());
    } catch (err) {
      throw this.wrapFactoryError(e, err);
    } finally {
      this.inProgress.delete(e.name);
    }
    if (this.instances.has(e.name)) {
      throw new ConfigError(
        `plugins[${e.index}].name: a plugin named ${JSON.stringify(e.name)} already exists`,
      );
    }
    this.instances.set(e.name, p);
    this.order.push(p);
    this.rawParams.set(e.name, e.params);
  }

  /**
   * Creates missing default producers: a plugin `consumes` a data key no plugin `produces`, and
   * a registered type is the default producer of that key (reference/epp.md §2.3). Repeats
   * until nothing is missing (a created producer may consume keys itself).
   */
  private injectDefaultProducers(): void {
    const defaults = new Map<string, string>();
    for (const t of this.registry.types()) {
      for (const key of this.registry.get(t)!.opts.defaultProducerFor ?? [])
        if (!defaults.has(key)) defaults.set(key, t);
    }
    for (let guard = 0; guard < 64; guard++) {
      const produced = new Set<string>();
      for (const p of this.order) for (const k of keysOf(p, "produces")) produced.add(k);
      let missing: { key: string; by: Plugin } | undefined;
      for (const p of this.order) {
        for (const k of keysOf(p, "consumes")) {
          if (!produced.has(k) && defaults.has(k)) {
            missing = { key: k, by: p };
            break;
          }
        }
        if (missing) break;
      }
      if (missing === undefined) return;
      const type = defaults.get(missing.key)!;
      const p = this.inject(
        type,
        `producer of ${JSON.stringify(missing.key)} (consumed by ${JSON.stringify(missing.by.name)})`,
      );
      if (!keysOf(p, "produces").includes(missing.key)) {
        throw new ConfigError(
          `plugins: default producer ${JSON.stringify(type)} does not produce ${JSON.stringify(missing.key)}`,
        );
      }
    }
    throw new ConfigError("plugins: default producer injection did not converge");
  }

  /** Instantiates an injected default plugin (or reuses an existing one with that name and type). */
  private inject(type: string, what: string): Plugin {
    const existing = this.instances.get(type);
    if (existing !== undefined) {
      if (existing.type !== type) {
        throw new ConfigError(
          `plugins: cannot inject the default ${what}: the name ${JSON.stringify(type)} is taken by a ${JSON.stringify(existing.type)} plugin`,
        );
      }
      return existing;
    }
    const reg = this.registry.get(type);
    if (reg === undefined)
      throw new ConfigError(`plugins: the default ${what} type ${JSON.stringify(type)} is not registered`);
    const p = reg.factory(type, undefined, this.handle());
    this.add(p, undefined);
    return p;
  }

  /** Profile specs, or the injected `default` profile with every filter/scorer/picker. */
  private profileSpecs(): { name: string; refs: { pluginRef: string; weight?: number }[]; at: string }[] {
    const specs = this.doc.schedulingProfiles ?? [];
    if (specs.length === 0) {
      const refs = this.order
        .filter((p) => isFilter(p) || isScorer(p) || isPicker(p))
        .map((p) => ({ pluginRef: p.name }));
      return [{ name: DEFAULT_PROFILE_NAME, refs, at: "schedulingProfiles[0]" }];
    }
    const seen = new Map<string, number>();
    return specs.map((s, i) => {
      const prev = seen.get(s.name);
      if (prev !== undefined) {
        throw new ConfigError(
          `schedulingProfiles[${i}].name: duplicate profile name ${JSON.stringify(s.name)} (also schedulingProfiles[${prev}])`,
        );
      }
      seen.set(s.name, i);
      return { name: s.name, refs: (s.plugins ?? []).map((r) => ({ ...r })), at: `schedulingProfiles[${i}]` };
    });
  }

  private profileHandler(profileCount: number): ProfileHandler {
    const handlers = this.order.filter(isProfileHandler);
    if (handlers.length > 1) {
      throw new ConfigError(
        `plugins: only one profile handler is allowed, found ${handlers.length}: ${handlers.map((h) => JSON.stringify(h.name)).join(", ")}`,
      );
    }
    let handler = handlers[0];
    if (handler === undefined) {
      if (profileCount !== 1) {
        throw new ConfigError(
          `plugins: a profile handler is required with ${profileCount} scheduling profiles`,
        );
      }
      const p = this.inject(DEFAULT_PROFILE_HANDLER_TYPE, "profile handler");
      if (!isProfileHandler(p))
        throw new ConfigError(`${DEFAULT_PROFILE_HANDLER_TYPE} is not a profile handler`);
      handler = p;
    }
    if (handler.type === DEFAULT_PROFILE_HANDLER_TYPE && profileCount !== 1) {
      throw new ConfigError(
        `plugins: ${DEFAULT_PROFILE_HANDLER_TYPE} ${JSON.stringify(handler.name)} needs exactly one scheduling profile, found ${profileCount}`,
      );
    }
    return handler;
  }

  private buildProfiles(
    specs: { name: string; refs: { pluginRef: string; weight?: number }[]; at: string }[],
  ): Map<string, SchedulerProfile> {
    const profiles = new Map<string, SchedulerProfile>();
    this.resolvedProfiles = [];
    let sharedPicker: Picker | undefined;
    for (const spec of specs) {
      const filters: Filter[] = [];
      const scorers: WeightedScorer[] = [];
      let picker: Picker | undefined;
      const refsOut: Record<string, unknown>[] = [];
      const seen = new Set<string>();
      spec.refs.forEach((r, j) => {
        const at = `${spec.at}.plugins[${j}]`;
        const p = this.instances.get(r.pluginRef);
        if (p === undefined) {
          throw new ConfigError(`${at}.pluginRef: undefined plugin ${JSON.stringify(r.pluginRef)}`);
        }
        if (seen.has(r.pluginRef)) {
          throw new ConfigError(
            `${at}.pluginRef: plugin ${JSON.stringify(r.pluginRef)} is referenced twice in this profile`,
          );
        }
        seen.add(r.pluginRef);
        if (!isFilter(p) && !isScorer(p) && !isPicker(p)) {
          // upstream's SchedulerProfile.AddPlugins ignores such plugins; we say so
          this.warn(
            `${at}.pluginRef: plugin ${JSON.stringify(r.pluginRef)} (${p.type}) is not a filter, scorer or picker; ignored in profile ${JSON.stringify(spec.name)}`,
          );
          if (r.weight !== undefined) {
            throw new ConfigError(
              `${at}.weight: weight is only allowed for scorers; ${JSON.stringify(r.pluginRef)} (${p.type}) is not a scorer`,
            );
          }
          refsOut.push({ pluginRef: r.pluginRef });
          return;
        }
        if (r.weight !== undefined && !isScorer(p)) {
          throw new ConfigError(
            `${at}.weight: weight is only allowed for scorers; ${JSON.stringify(r.pluginRef)} (${p.type}) is not a scorer`,
          );
        }
        if (isFilter(p)) filters.push(p);
        if (isScorer(p)) scorers.push({ scorer: p, weight: r.weight ?? 1.0 });
        if (isPicker(p)) {
          if (picker !== undefined) {
            throw new ConfigError(
              `${at}.pluginRef: profile ${JSON.stringify(spec.name)} already has picker ${JSON.stringify(picker.name)}`,
            );
          }
          picker = p;
        }
        refsOut.push(
          isScorer(p) ? { pluginRef: r.pluginRef, weight: r.weight ?? 1.0 } : { pluginRef: r.pluginRef },
        );
      });
      if (picker === undefined) {
        if (sharedPicker === undefined) {
          const existing = this.order.find((p) => p.type === DEFAULT_PICKER_TYPE && isPicker(p));
          const p = existing ?? this.inject(DEFAULT_PICKER_TYPE, "picker");
          if (!isPicker(p)) throw new ConfigError(`${DEFAULT_PICKER_TYPE} is not a picker`);
          sharedPicker = p;
        }
        picker = sharedPicker;
        refsOut.push({ pluginRef: picker.name });
      }
      profiles.set(spec.name, { name: spec.name, filters, scorers, picker });
      this.resolvedProfiles.push({ name: spec.name, plugins: refsOut });
    }
    return profiles;
  }

  /** Checks that a user-given `pluginRef` outside `plugins`/profiles names a defined plugin. */
  private checkRef(at: string, name: string): void {
    if (!this.instances.has(name)) throw new ConfigError(`${at}: undefined plugin ${JSON.stringify(name)}`);
  }

  private resolved(gates: Record<string, boolean>): Record<string, unknown> {
    const doc = this.doc;
    // request handler (deprecated top-level `parser` folds in)
    let parsers = doc.requestHandler?.parsers?.map((p) => p.pluginRef);
    for (const [i, p] of (parsers ?? []).entries())
      this.checkRef(`requestHandler.parsers[${i}].pluginRef`, p);
    if (doc.parser) {
      this.warn("parser is deprecated; use requestHandler.parsers");
      this.checkRef("parser.pluginRef", doc.parser.pluginRef);
      if (parsers === undefined || parsers.length === 0) parsers = [doc.parser.pluginRef];
    }
    if (parsers === undefined || parsers.length === 0) parsers = [...DEFAULT_PARSERS];

    // flow control (deprecated top-level `saturationDetector` folds in)
    const fc = doc.flowControl ?? {};
    if (fc.usageLimitPolicyPluginRef)
      this.checkRef("flowControl.usageLimitPolicyPluginRef", fc.usageLimitPolicyPluginRef);
    if (fc.saturationDetector)
      this.checkRef("flowControl.saturationDetector.pluginRef", fc.saturationDetector.pluginRef);
    let detector = fc.saturationDetector?.pluginRef;
    if (doc.saturationDetector) {
      this.warn("saturationDetector is deprecated; use flowControl.saturationDetector");
      this.checkRef("saturationDetector.pluginRef", doc.saturationDetector.pluginRef);
      detector ??= doc.saturationDetector.pluginRef;
    }
    const band = (b: Record<string, unknown> | undefined, at: string) => {
      if (typeof b?.fairnessPolicyRef === "string")
        this.checkRef(`${at}.fairnessPolicyRef`, b.fairnessPolicyRef);
      if (typeof b?.orderingPolicyRef === "string")
        this.checkRef(`${at}.orderingPolicyRef`, b.orderingPolicyRef);
      return {
        ...b,
        maxBytes: b?.maxBytes ?? FLOW_CONTROL_DEFAULTS.bandMaxBytes,
        maxRequests: b?.maxRequests ?? FLOW_CONTROL_DEFAULTS.bandMaxRequests,
        fairnessPolicyRef: b?.fairnessPolicyRef ?? FLOW_CONTROL_DEFAULTS.fairnessPolicyRef,
        orderingPolicyRef: b?.orderingPolicyRef ?? FLOW_CONTROL_DEFAULTS.orderingPolicyRef,
      };
    };
    const ttl = fc.defaultRequestTTL ?? FLOW_CONTROL_DEFAULTS.defaultRequestTTL;
    const flowControl: Record<string, unknown> = {
      ...(fc.maxBytes !== undefined ? { maxBytes: fc.maxBytes } : {}),
      ...(fc.maxRequests !== undefined ? { maxRequests: fc.maxRequests } : {}),
      defaultRequestTTL: ttl,
      noEndpointRequestTTL: fc.noEndpointRequestTTL ?? ttl,
      defaultPriorityBand: band(fc.defaultPriorityBand, "flowControl.defaultPriorityBand"),
      ...(fc.defaultNegativePriorityBand
        ? {
            defaultNegativePriorityBand: band(
              fc.defaultNegativePriorityBand,
              "flowControl.defaultNegativePriorityBand",
            ),
          }
        : {}),
      priorityBands: (fc.priorityBands ?? []).map((b, i) => band(b, `flowControl.priorityBands[${i}]`)),
      usageLimitPolicyPluginRef:
        fc.usageLimitPolicyPluginRef ?? FLOW_CONTROL_DEFAULTS.usageLimitPolicyPluginRef,
      saturationDetector: { pluginRef: detector ?? FLOW_CONTROL_DEFAULTS.saturationDetector },
      enableEviction: fc.enableEviction ?? FLOW_CONTROL_DEFAULTS.enableEviction,
    };

    // data layer
    const dl = doc.dataLayer ?? {};
    const sources = (dl.sources ?? []).map((s, i) => {
      this.checkRef(`dataLayer.sources[${i}].pluginRef`, s.pluginRef);
      for (const [j, x] of (s.extractors ?? []).entries()) {
        this.checkRef(`dataLayer.sources[${i}].extractors[${j}].pluginRef`, x.pluginRef);
      }
      return {
        pluginRef: s.pluginRef,
        extractors: (s.extractors ?? []).map((x) => ({ pluginRef: x.pluginRef })),
      };
    });
    if (dl.discovery) this.checkRef("dataLayer.discovery.pluginRef", dl.discovery.pluginRef);
    if (dl.crossReplicaSyncerPluginRef)
      this.checkRef("dataLayer.crossReplicaSyncerPluginRef", dl.crossReplicaSyncerPluginRef);
    const injectDefaults = dl.injectDefaults ?? true;
    const hasMetricsSource = sources.some((s) => {
      const p = this.instances.get(s.pluginRef);
      return s.pluginRef === DEFAULT_METRICS_SOURCE || p?.type === DEFAULT_METRICS_SOURCE;
    });
    if (injectDefaults && !hasMetricsSource) {
      sources.push({
        pluginRef: DEFAULT_METRICS_SOURCE,
        extractors: [{ pluginRef: DEFAULT_METRICS_EXTRACTOR }],
      });
    }
    const dataLayer: Record<string, unknown> = { ...dl, injectDefaults, sources };

    return {
      apiVersion: API_VERSION,
      kind: CONFIG_KIND,
      featureGates: Object.entries(gates).map(([g, on]) => `${g}=${on}`),
      plugins: this.order.map((p) => {
        const params = decodedParameters(p) ?? this.rawParams.get(p.name);
        return params === undefined
          ? { name: p.name, type: p.type }
          : { name: p.name, type: p.type, parameters: params };
      }),
      schedulingProfiles: this.resolvedProfiles,
      dataLayer,
      flowControl,
      requestHandler: { parsers: parsers.map((p) => ({ pluginRef: p })) },
    };
  }
}
