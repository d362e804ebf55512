/**
 * `precise-prefix-cache-scorer` (deprecated) — the older single-plugin form of precise
 * prefix-cache routing: a `precise-prefix-cache-producer` that is also a Scorer (category
 * Affinity) scoring each endpoint with the prefix-cache-scorer formula at its defaults,
 * `score = matchBlocks / totalBlocks` (0 when the prompt has no full block). Replacement:
 * `precise-prefix-cache-producer` + `prefix-cache-scorer` with
 * `prefixMatchInfoProducerName: <producer name>` (reference/epp.md §3.3).
 *
 * Parameters: exactly those of `precise-prefix-cache-producer` (see that file). It needs the
 * same wiring (an `endpoint-notification-source` listing it as an extractor, a `vllm`
 * token-producer).
 *
 * Source: reference/epp.md §3.3 ("`precise-prefix-cache-scorer` (deprecated) wraps
 * `precise-prefix-cache-producer` + `prefix-cache-scorer`").
 */
import type { PluginFactory, Scorer, ScorerCategory } from "../../framework/plugin.js";
import type { Endpoint, InferenceRequest, PrefixCacheMatchInfo } from "../../framework/types.js";
import {
  decodePreciseParams,
  type PreciseConfig,
  PrecisePrefixCacheProducer,
} from "./precise-prefix-cache-producer.js";

export const PRECISE_PREFIX_CACHE_SCORER_TYPE = "precise-prefix-cache-scorer";

/** Producer + scorer in one plugin (see file header). */
export class PrecisePrefixCacheScorer extends PrecisePrefixCacheProducer implements Scorer {
  override readonly type: string = PRECISE_PREFIX_CACHE_SCORER_TYPE;
  readonly category: ScorerCategory = "Affinity";

  constructor(name: string = PRECISE_PREFIX_CACHE_SCORER_TYPE, config: Partial<PreciseConfig> = {}) {
    super(name, config);
  }

  /** matchBlocks / totalBlocks from the match info this plugin produced (0 when missing). */
  score(_request: InferenceRequest, endpoints: Endpoint[]): Map<Endpoint, number> {
    const out = new Map<Endpoint, number>();
    for (const ep of endpoints) {
      const info = ep.attributes.get(this.matchInfoKey) as PrefixCacheMatchInfo | undefined;
      out.set(ep, info && info.totalBlocks > 0 ? info.matchBlocks / info.totalBlocks : 0);
    }
    return out;
  }
}

/** Factory. @throws ParamsError naming the offending field */
export const precisePrefixCacheScorerFactory: PluginFactory = (name, params) =>
  new PrecisePrefixCacheScorer(name, decodePreciseParams(params));
