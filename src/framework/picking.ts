/**
 * Helpers shared by the picker plugins (reference/epp.md §3.4): the common
 * `maxNumOfEndpoints` parameter, an injectable RNG, the shuffle used for random tie-breaks and
 * taking the first N endpoints.
 */
import { z } from "zod";
import type { Endpoint, ScoredEndpoint } from "./types.js";

/** Uniform random number in [0,1). */
export type Rng = () => number;

/** `parameters` of every picker: `maxNumOfEndpoints` (integer ≥ 1, default 1). */
export const pickerParamsSchema = z
  .object({ maxNumOfEndpoints: z.number().int().min(1).default(1) })
  .strict();

/** Fisher–Yates shuffle in place. */
export function shuffleInPlace<T>(items: T[], rng: Rng): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    const t = items[i]!;
    items[i] = items[j]!;
    items[j] = t;
  }
  return items;
}

/** The endpoints of the first `n` scored candidates (fewer when there are fewer). */
export function firstEndpoints(scored: readonly ScoredEndpoint[], n: number): Endpoint[] {
  const k = Math.min(n, scored.length);
  const out: Endpoint[] = new Array(k);
  for (let i = 0; i < k; i++) out[i] = scored[i]!.endpoint;
  return out;
}
