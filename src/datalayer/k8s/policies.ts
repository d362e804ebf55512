/**
 * In-memory InferenceObjective and InferenceModelRewrite store (`llm-d.ai/v1alpha2`,
 * reference/epp.md §5.3) implementing the pipeline's `RequestPolicies`:
 * - objectives by name; `spec.priority` unset ⇒ priority 0 (the request builder applies it);
 *   only objects whose `spec.poolRef.name` is this pool count;
 * - model rewrites: among this pool's InferenceModelRewrites, a rule whose `matches` contains
 *   `{model: {type: Exact, value: <model>}}` beats a catch-all rule (empty `matches`); between
 *   objects of equal precedence the **oldest** (`metadata.creationTimestamp`, then name) wins;
 *   inside an object the **first** matching rule; the target is drawn **weighted-random** over
 *   `targets` (weights all-or-none; all unset → uniform).
 */
import type { RequestPolicies } from "../../requestcontrol/pipeline.js";

/** `llm-d.ai/v1alpha2` InferenceObjective (fields read). */
export interface InferenceObjective {
  metadata?: { name?: string; namespace?: string; creationTimestamp?: string | Date };
  spec?: { priority?: number | null; poolRef?: { name?: string; group?: string; kind?: string } };
}

/** `llm-d.ai/v1alpha2` InferenceModelRewrite (fields read). */
export interface InferenceModelRewrite {
  metadata?: { name?: string; namespace?: string; creationTimestamp?: string | Date };
  spec?: {
    poolRef?: { name?: string; group?: string; kind?: string };
    rules?: {
      matches?: { model?: { type?: string; value?: string } }[];
      targets?: { modelRewrite?: string; weight?: number | null }[];
    }[];
  };
}

type Rule = NonNullable<NonNullable<InferenceModelRewrite["spec"]>["rules"]>[number];

const created = (o: { metadata?: { creationTimestamp?: string | Date; name?: string } }): number => {
  const t = o.metadata?.creationTimestamp;
  const ms = t instanceof Date ? t.getTime() : t ? Date.parse(t) : Number.NaN;
  return Number.isFinite(ms) ? ms : Number.POSITIVE_INFINITY;
};
const olderFirst = (a: InferenceModelRewrite, b: InferenceModelRewrite): number =>
  created(a) - created(b) || (a.metadata?.name ?? "").localeCompare(b.metadata?.name ?? "");

/** Objectives and model rewrites of one pool (see file header). */
export class PolicyStore implements RequestPolicies {
  private readonly objectives = new Map<string, InferenceObjective>();
  private readonly rewrites = new Map<string, InferenceModelRewrite>();

  /**
   * @param poolName objects whose `spec.poolRef.name` differs are ignored
   * @param random source in [0,1) for the weighted draw
   */
  constructor(
    private readonly poolName: string,
    private readonly random: () => number = Math.random,
  ) {}

  private mine(o: { spec?: { poolRef?: { name?: string } } }): boolean {
    return o.spec?.poolRef?.name === this.poolName;
  }

  /** Replaces all objectives (after a list). */
  replaceObjectives(items: InferenceObjective[]): void {
    this.objectives.clear();
    for (const o of items) this.upsertObjective(o);
  }
  /** Adds or updates one objective (watch event). */
  upsertObjective(o: InferenceObjective): void {
    const name = o.metadata?.name;
    if (!name) return;
    if (this.mine(o)) this.objectives.set(name, o);
    else this.objectives.delete(name);
  }
  /** Removes one objective. */
  deleteObjective(o: InferenceObjective): void {
    if (o.metadata?.name) this.objectives.delete(o.metadata.name);
  }

  /** Replaces all model rewrites (after a list). */
  replaceRewrites(items: InferenceModelRewrite[]): void {
    this.rewrites.clear();
    for (const r of items) this.upsertRewrite(r);
  }
  /** Adds or updates one model rewrite. */
  upsertRewrite(r: InferenceModelRewrite): void {
    const name = r.metadata?.name;
    if (!name) return;
    if (this.mine(r)) this.rewrites.set(name, r);
    else this.rewrites.delete(name);
  }
  /** Removes one model rewrite. */
  deleteRewrite(r: InferenceModelRewrite): void {
    if (r.metadata?.name) this.rewrites.delete(r.metadata.name);
  }

  /** Objective names known, sorted. */
  objectiveNames(): string[] {
    return [...this.objectives.keys()].sort();
  }

  /** The objective's priority (`undefined` priority = unset ⇒ 0 at the caller); undefined when unknown. */
  objective(name: string): { priority?: number } | undefined {
    const o = this.objectives.get(name);
    if (!o) return undefined;
    const p = o.spec?.priority;
    return typeof p === "number" ? { priority: p } : {};
  }

  /** The rule that applies to `model`, or undefined (exact beats catch-all; oldest object; first rule). */
  matchRule(model: string): Rule | undefined {
    const objs = [...this.rewrites.values()].sort(olderFirst);
    for (const o of objs) {
      for (const rule of o.spec?.rules ?? []) {
        if (
          (rule.matches ?? []).some((m) => (m.model?.type ?? "Exact") === "Exact" && m.model?.value === model)
        )
          return rule;
      }
    }
    for (const o of objs) {
      for (const rule of o.spec?.rules ?? []) if ((rule.matches ?? []).length === 0) return rule;
    }
    return undefined;
  }

  /** The rewritten model, drawn weighted-random over the rule's targets; undefined when none applies. */
  rewriteModel(model: string): string | undefined {
    const rule = this.matchRule(model);
    const targets = (rule?.targets ?? []).filter(
      (t) => typeof t.modelRewrite === "string" && t.modelRewrite !== "",
    );
    if (targets.length === 0) return undefined;
    const weighted = targets.every((t) => typeof t.weight === "number");
    const weights = targets.map((t) => (weighted ? Math.max(0, t.weight as number) : 1));
    const total = weights.reduce((a, b) => a + b, 0);
    if (total <= 0) return targets[0]!.modelRewrite;
    let x = this.random() * total;
    for (let i = 0; i < targets.length; i++) {
      x -= weights[i]!;
      if (x < 0) return targets[i]!.modelRewrite;
    }
    return targets[targets.length - 1]!.modelRewrite;
  }
}
