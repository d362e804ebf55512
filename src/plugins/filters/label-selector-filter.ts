/**
 * `label-selector-filter` (deprecated alias `by-label-selector`) — keeps endpoints whose
 * labels match a Kubernetes label selector.
 *
 * Parameters (a `metav1.LabelSelector`; both optional, ANDed; an empty selector keeps all):
 * - `matchLabels`: `{key: value}`; every pair must match exactly.
 * - `matchExpressions`: `[{key, operator, values?}]` with `operator` ∈ `In`, `NotIn` (values
 *   required, non-empty), `Exists`, `DoesNotExist` (values must be empty). `NotIn` keeps
 *   endpoints without the label, as in Kubernetes.
 *
 * Source: reference/epp.md §3.2 (llm-d-router `framework/plugins/scheduling/filter/bylabel/selector.go`,
 * parameters decoded as `metav1.LabelSelector`); selector semantics from Kubernetes
 * `apimachinery/pkg/labels`.
 */
import { z } from "zod";
import { decodeParams, ParamsError } from "../../framework/config/params.js";
import type { Filter, PluginFactory } from "../../framework/plugin.js";
import type { Endpoint, InferenceRequest } from "../../framework/types.js";

export const LABEL_SELECTOR_FILTER_TYPE = "label-selector-filter";
/** Deprecated type name of {@link LABEL_SELECTOR_FILTER_TYPE}. */
export const BY_LABEL_SELECTOR_TYPE = "by-label-selector";

const requirementSchema = z
  .object({
    key: z.string().min(1),
    operator: z.enum(["In", "NotIn", "Exists", "DoesNotExist"]),
    values: z.array(z.string()).optional(),
  })
  .strict();

const selectorSchema = z
  .object({
    matchLabels: z.record(z.string(), z.string()).optional(),
    matchExpressions: z.array(requirementSchema).optional(),
  })
  .strict();

/** A label selector requirement. */
export interface LabelRequirement {
  key: string;
  operator: "In" | "NotIn" | "Exists" | "DoesNotExist";
  values: ReadonlySet<string>;
}

/** Kubernetes label selector (matchLabels ∧ matchExpressions). */
export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: { key: string; operator: LabelRequirement["operator"]; values?: string[] }[];
}

/** True when `labels` satisfy every requirement. */
export function matchesRequirements(
  labels: Record<string, string>,
  reqs: readonly LabelRequirement[],
): boolean {
  for (const r of reqs) {
    const v = labels[r.key];
    switch (r.operator) {
      case "In":
        if (v === undefined || !r.values.has(v)) return false;
        break;
      case "NotIn":
        if (v !== undefined && r.values.has(v)) return false;
        break;
      case "Exists":
        if (v === undefined) return false;
        break;
      case "DoesNotExist":
        if (v !== undefined) return false;
        break;
    }
  }
  return true;
}

/**
 * Compiles a selector into requirements.
 * @throws ParamsError when `In`/`NotIn` has no values or `Exists`/`DoesNotExist` has values.
 */
export function compileSelector(sel: LabelSelector): LabelRequirement[] {
  const reqs: LabelRequirement[] = [];
  for (const [key, value] of Object.entries(sel.matchLabels ?? {})) {
    reqs.push({ key, operator: "In", values: new Set([value]) });
  }
  (sel.matchExpressions ?? []).forEach((e, i) => {
    const values = e.values ?? [];
    if ((e.operator === "In" || e.operator === "NotIn") && values.length === 0) {
      throw new ParamsError(`matchExpressions[${i}].values`, `must be non-empty for operator ${e.operator}`);
    }
    if ((e.operator === "Exists" || e.operator === "DoesNotExist") && values.length > 0) {
      throw new ParamsError(`matchExpressions[${i}].values`, `must be empty for operator ${e.operator}`);
    }
    reqs.push({ key: e.key, operator: e.operator, values: new Set(values) });
  });
  return reqs;
}

/** Keeps endpoints whose labels match the selector. */
export class LabelSelectorFilter implements Filter {
  private readonly reqs: LabelRequirement[];
  /** the selector as configured (printed by `llmd config check`) */
  readonly parameters: LabelSelector;
  constructor(
    readonly name: string,
    selector: LabelSelector,
    readonly type: string = LABEL_SELECTOR_FILTER_TYPE,
  ) {
    this.reqs = compileSelector(selector);
    this.parameters = selector;
  }
  filter(_request: InferenceRequest, endpoints: Endpoint[]): Endpoint[] {
    if (this.reqs.length === 0) return endpoints.slice();
    return endpoints.filter((ep) => matchesRequirements(ep.metadata.labels, this.reqs));
  }
}

/** Factory of `label-selector-filter`. @throws ParamsError naming the offending field. */
export const labelSelectorFilterFactory: PluginFactory = (name, params) =>
  new LabelSelectorFilter(name, decodeParams(selectorSchema, params));

/** Factory of the deprecated `by-label-selector` (same semantics, its own type name). */
export const byLabelSelectorFilterFactory: PluginFactory = (name, params) =>
  new LabelSelectorFilter(name, decodeParams(selectorSchema, params), BY_LABEL_SELECTOR_TYPE);
