/**
 * `by-label` (deprecated; use `label-selector-filter`) — keeps endpoints whose label `label`
 * has one of `validValues`.
 *
 * Parameters:
 * - `label` (string, required): label key.
 * - `validValues` (string[], default `[]`): accepted values.
 * - `allowsNoLabel` (bool, default `false`): keep endpoints that lack the label.
 * At least one of `validValues` non-empty or `allowsNoLabel: true` is required (otherwise the
 * filter would drop everything).
 *
 * Source: reference/epp.md §3.2 (llm-d-router `framework/plugins/scheduling/filter/bylabel/bylabel.go`).
 */
import { z } from "zod";
import { decodeParams, ParamsError } from "../../framework/config/params.js";
import type { Filter, PluginFactory } from "../../framework/plugin.js";
import type { Endpoint, InferenceRequest } from "../../framework/types.js";

export const BY_LABEL_TYPE = "by-label";

const schema = z
  .object({
    label: z.string().min(1),
    validValues: z.array(z.string()).default([]),
    allowsNoLabel: z.boolean().default(false),
  })
  .strict();

/** Keeps endpoints with `label` ∈ `validValues` (or without the label when `allowsNoLabel`). */
export class ByLabelFilter implements Filter {
  readonly type = BY_LABEL_TYPE;
  private readonly valid: ReadonlySet<string>;
  /** decoded parameters, defaults included (printed by `llmd config check`) */
  readonly parameters: { label: string; validValues: string[]; allowsNoLabel: boolean };
  constructor(
    readonly name: string,
    readonly label: string,
    validValues: readonly string[],
    readonly allowsNoLabel: boolean,
  ) {
    this.valid = new Set(validValues);
    this.parameters = { label, validValues: [...validValues], allowsNoLabel };
  }
  filter(_request: InferenceRequest, endpoints: Endpoint[]): Endpoint[] {
    const out: Endpoint[] = [];
    for (const ep of endpoints) {
      const v = ep.metadata.labels[this.label];
      if (v === undefined ? this.allowsNoLabel : this.valid.has(v)) out.push(ep);
    }
    return out;
  }
}

/** Factory. @throws ParamsError naming the offending field. */
export const byLabelFilterFactory: PluginFactory = (name, params) => {
  const p = decodeParams(schema, params);
  if (p.validValues.length === 0 && !p.allowsNoLabel) {
    throw new ParamsError("validValues", "must be non-empty unless allowsNoLabel is true");
  }
  return new ByLabelFilter(name, p.label, p.validValues, p.allowsNoLabel);
};
