/**
 * `prefix-cache-scorer` — scores endpoints by how much of the prompt's prefix they probably
 * hold in their KV cache, from the {@link PrefixCacheMatchInfo} a prefix producer wrote on
 * each endpoint. Category: Affinity.
 *
 *     score = matchLengthWeight · min(1, matchedTokens / matchLengthScaleTokens)²
 *           + (1 − matchLengthWeight) · (matchBlocks / totalBlocks)
 *
 * with `matchedTokens = matchBlocks · blockSizeTokens`; `totalBlocks = 0` gives a ratio of 0;
 * an endpoint without match info scores 0.
 *
 * Parameters:
 * - `matchLengthWeight` (number in [0,1], default 0): weight of the absolute match length term.
 * - `matchLengthScaleTokens` (number > 0, tokens, default 8192): match length that saturates it.
 * - `prefixMatchInfoProducerName` (string, default `approx-prefix-cache-producer`): the producer
 *   whose attribute (`prefix-match-info/<name>`) is read. When no plugin of that name exists,
 *   the factory creates an `approx-prefix-cache-producer` with default parameters under that
 *   name and adds it to the config (the creator is injected by the family registration, as
 *   plugins do not import each other).
 *
 * Source: reference/epp.md §3.3 (llm-d-router `framework/plugins/scheduling/scorer/prefix`).
 */
import { z } from "zod";
import { decodeParams } from "../../framework/config/params.js";
import type { Plugin, PluginFactory, Scorer, ScorerCategory } from "../../framework/plugin.js";
import {
  type Endpoint,
  type InferenceRequest,
  PREFIX_CACHE_MATCH_INFO,
  type PrefixCacheMatchInfo,
} from "../../framework/types.js";

export const PREFIX_CACHE_SCORER_TYPE = "prefix-cache-scorer";
/** Default producer type/name read by the scorer. */
export const DEFAULT_PREFIX_PRODUCER_NAME = "approx-prefix-cache-producer";
export const DEFAULT_MATCH_LENGTH_WEIGHT = 0;
export const DEFAULT_MATCH_LENGTH_SCALE_TOKENS = 8192;

const schema = z
  .object({
    matchLengthWeight: z.number().min(0).max(1).default(DEFAULT_MATCH_LENGTH_WEIGHT),
    matchLengthScaleTokens: z.number().positive().default(DEFAULT_MATCH_LENGTH_SCALE_TOKENS),
    prefixMatchInfoProducerName: z.string().min(1).default(DEFAULT_PREFIX_PRODUCER_NAME),
  })
  .strict();

export type PrefixCacheScorerParams = z.infer<typeof schema>;

/** Score of one match (see file header). `info` undefined → 0. */
export function prefixCacheScore(
  info: PrefixCacheMatchInfo | undefined,
  matchLengthWeight: number,
  matchLengthScaleTokens: number,
): number {
  if (!info) return 0;
  const ratio = info.totalBlocks > 0 ? info.matchBlocks / info.totalBlocks : 0;
  if (matchLengthWeight === 0) return ratio;
  const len = Math.min(1, (info.matchBlocks * info.blockSizeTokens) / matchLengthScaleTokens);
  return matchLengthWeight * len * len + (1 - matchLengthWeight) * ratio;
}

/** Prefix-cache affinity scorer (see file header). */
export class PrefixCacheScorer implements Scorer {
  readonly type = PREFIX_CACHE_SCORER_TYPE;
  readonly category: ScorerCategory = "Affinity";
  readonly params: PrefixCacheScorerParams;
  /** endpoint attribute key read */
  readonly matchInfoKey: string;
  /** data keys read (for producer ordering / auto-creation) */
  readonly consumes: readonly string[];

  constructor(
    readonly name: string = PREFIX_CACHE_SCORER_TYPE,
    params: Partial<PrefixCacheScorerParams> = {},
  ) {
    this.params = {
      matchLengthWeight: params.matchLengthWeight ?? DEFAULT_MATCH_LENGTH_WEIGHT,
      matchLengthScaleTokens: params.matchLengthScaleTokens ?? DEFAULT_MATCH_LENGTH_SCALE_TOKENS,
      prefixMatchInfoProducerName: params.prefixMatchInfoProducerName ?? DEFAULT_PREFIX_PRODUCER_NAME,
    };
    this.matchInfoKey = PREFIX_CACHE_MATCH_INFO + this.params.prefixMatchInfoProducerName;
    this.consumes = [this.matchInfoKey];
  }

  score(_request: InferenceRequest, endpoints: Endpoint[]): Map<Endpoint, number> {
    const out = new Map<Endpoint, number>();
    const { matchLengthWeight: w, matchLengthScaleTokens: s } = this.params;
    for (const ep of endpoints) {
      out.set(
        ep,
        prefixCacheScore(ep.attributes.get(this.matchInfoKey) as PrefixCacheMatchInfo | undefined, w, s),
      );
    }
    return out;
  }
}

/**
 * Builds the factory. `createDefaultProducer(name)` makes the producer added when
 * `prefixMatchInfoProducerName` names no existing plugin.
 * @throws ParamsError naming an unknown or invalid field
 */
export function makePrefixCacheScorerFactory(createDefaultProducer: (name: string) => Plugin): PluginFactory {
  return (name, params, handle) => {
    const p = decodeParams(schema, params);
    if (!handle.plugin(p.prefixMatchInfoProducerName)) {
      handle.addPlugin(createDefaultProducer(p.prefixMatchInfoProducerName));
    }
    return new PrefixCacheScorer(name, p);
  };
}
