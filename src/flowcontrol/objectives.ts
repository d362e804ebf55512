/**
 * InferenceObjectives: name → priority, selected per request by the header
 * `x-llm-d-inference-objective` (alias `x-gateway-inference-objective`). Loaded from a YAML
 * file here; the Kubernetes CRD watcher feeds the same {@link ObjectiveStore} with
 * `upsert`/`remove`.
 *
 * Object shape (CRD `inferenceobjectives.llm-d.ai`, reference/epp.md §5.3):
 * ```yaml
 * apiVersion: llm-d.ai/v1alpha2            # legacy inference.networking.x-k8s.io/v1alpha2 accepted
 * kind: InferenceObjective
 * metadata: {name: critical, namespace: default}
 * spec: {priority: 10, poolRef: {name: my-pool}}   # priority unset ⇒ 0; < 0 = sheddable
 * ```
 * A file holds a YAML list of objects, several `---` documents, or a `kind: List` with `items`.
 */
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";
import { z } from "zod";
import { describeZodIssue } from "../framework/config/params.js";
import { ConfigError } from "../framework/errors.js";
import { headerWithAlias, OBJECTIVE, OBJECTIVE_ALIAS } from "../framework/headers.js";

/** Current API version of InferenceObjective. */
export const OBJECTIVE_API_VERSION = "llm-d.ai/v1alpha2";
/** Legacy API version, still read. */
export const OBJECTIVE_LEGACY_API_VERSION = "inference.networking.x-k8s.io/v1alpha2";
export const OBJECTIVE_KIND = "InferenceObjective";

/** One InferenceObjective as stored. */
export interface InferenceObjective {
  name: string;
  namespace: string;
  /** int32; unset in the object ⇒ 0 */
  priority: number;
  poolRef: { name: string; group?: string; kind?: string };
}

const INT32_MIN = -(2 ** 31);
const INT32_MAX = 2 ** 31 - 1;

const objectSchema = z.object({
  apiVersion: z.string(),
  kind: z.string(),
  metadata: z.object({ name: z.string().min(1), namespace: z.string().optional() }).passthrough(),
  spec: z
    .object({
      priority: z.number().int().min(INT32_MIN).max(INT32_MAX).nullish(),
      poolRef: z
        .object({ name: z.string().min(1), group: z.string().optional(), kind: z.string().optional() })
        .strict(),
    })
    .strict(),
  status: z.unknown().optional(),
});

/**
 * Decodes one InferenceObjective object.
 * @param at path used in error messages, e.g. `objectives[2]`
 * @throws ConfigError naming the field (`objectives[2].spec.poolRef: required field missing …`)
 */
export function decodeObjective(raw: unknown, at = "objective"): InferenceObjective {
  const r = objectSchema.safeParse(raw);
  if (!r.success) {
    const { field, problem } = describeZodIssue(r.error.issues[0]!);
    throw new ConfigError(`${at}${field === "" ? "" : `.${field}`}: ${problem}`);
  }
  const o = r.data;
  if (o.apiVersion !== OBJECTIVE_API_VERSION && o.apiVersion !== OBJECTIVE_LEGACY_API_VERSION) {
    throw new ConfigError(
      `${at}.apiVersion: unsupported ${JSON.stringify(o.apiVersion)} (expected ${OBJECTIVE_API_VERSION})`,
    );
  }
  if (o.kind !== OBJECTIVE_KIND) {
    throw new ConfigError(`${at}.kind: unsupported ${JSON.stringify(o.kind)} (expected ${OBJECTIVE_KIND})`);
  }
  return {
    name: o.metadata.name,
    namespace: o.metadata.namespace ?? "default",
    priority: o.spec.priority ?? 0,
    poolRef: o.spec.poolRef,
  };
}

/**
 * Parses a YAML text of InferenceObjectives (list, multi-document or `kind: List`).
 * @throws ConfigError on invalid YAML or an invalid object (names the index and field)
 */
export function parseObjectivesYaml(text: string): InferenceObjective[] {
  const docs = parseAllDocuments(text, { uniqueKeys: true });
  const raws: unknown[] = [];
  for (const d of Array.isArray(docs) ? docs : [docs]) {
    if (d.errors.length > 0)
      throw new ConfigError(`objectives: invalid YAML: ${d.errors[0]!.message.split("\n")[0]}`);
    const v: unknown = d.toJS();
    if (v === null || v === undefined) continue;
    if (Array.isArray(v)) raws.push(...v);
    else if (typeof v === "object" && (v as { kind?: unknown }).kind === "List")
      raws.push(...(((v as { items?: unknown[] }).items ?? []) as unknown[]));
    else raws.push(v);
  }
  return raws.map((r, i) => decodeObjective(r, `objectives[${i}]`));
}

/** Objectives by name; `priorityOf` is what the Director calls per request. */
export class ObjectiveStore {
  private readonly byName = new Map<string, InferenceObjective>();

  /** @param poolName when set, objectives whose `poolRef.name` differs are ignored */
  constructor(readonly poolName?: string) {}

  /**
   * Priority of the objective `name`; 0 when the name is undefined/empty or unknown
   * (reference/epp.md §1.3 step 2).
   */
  priorityOf(name: string | undefined): number {
    if (name === undefined || name === "") return 0;
    return this.byName.get(name)?.priority ?? 0;
  }

  /** Priority selected by a request's lower-cased headers (objective header, then its alias). */
  priorityForHeaders(headers: Readonly<Record<string, string | undefined>>): number {
    return this.priorityOf(headerWithAlias(headers, OBJECTIVE, OBJECTIVE_ALIAS));
  }

  /** The objective `name`, if known. */
  get(name: string): InferenceObjective | undefined {
    return this.byName.get(name);
  }

  /**
   * Same as {@link get}: the shape of `RequestPolicies.objective` / `ObjectiveLookup` of
   * `src/requestcontrol`, so the store can be passed there directly.
   */
  objective(name: string): InferenceObjective | undefined {
    return this.byName.get(name);
  }

  /**
   * Adds or replaces an objective (keyed by name).
   * @returns false when ignored because it belongs to another pool
   */
  upsert(obj: InferenceObjective): boolean {
    if (this.poolName !== undefined && obj.poolRef.name !== this.poolName) return false;
    this.byName.set(obj.name, { ...obj, poolRef: { ...obj.poolRef } });
    return true;
  }

  /** Removes the objective `name`; returns whether it existed. */
  remove(name: string): boolean {
    return this.byName.delete(name);
  }

  /** Every objective, sorted by name. */
  list(): InferenceObjective[] {
    return [...this.byName.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  /** Replaces the whole content (a file reload): upserts `objs`, removes the others. */
  replaceAll(objs: readonly InferenceObjective[]): void {
    this.byName.clear();
    for (const o of objs) this.upsert(o);
  }
}

/**
 * Loads an objectives file into `store` (replacing its content).
 * @throws ConfigError when the file cannot be read (names the path) or is invalid
 */
export function loadObjectivesFile(
  path: string,
  store: ObjectiveStore = new ObjectiveStore(),
): ObjectiveStore {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new ConfigError(`cannot read objectives file ${path}: ${(e as Error).message}`);
  }
  let objs: InferenceObjective[];
  try {
    objs = parseObjectivesYaml(text);
  } catch (e) {
    throw new ConfigError(`${path}: ${(e as Error).message}`);
  }
  store.replaceAll(objs);
  return store;
}
