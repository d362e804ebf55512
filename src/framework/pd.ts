/**
 * The prefix-based P/D decision formula, shared by `prefix-based-pd-decider` and the
 * deprecated `pd-profile-handler`'s built-in threshold (reference/epp.md §3.1 "Deciders").
 */
import {
  type Endpoint,
  type InferenceRequest,
  PREFIX_CACHE_MATCH_INFO,
  type PrefixCacheMatchInfo,
  TOKENIZED_PROMPT,
  type TokenizedPrompt,
} from "./types.js";

/** Parameters of the prefix-based decision. Token counts. */
export interface PrefixPdParams {
  /** minimum prompt tokens the decode endpoint does not hold; 0 disables P/D */
  nonCachedTokens: number;
  /** minimum prompt length, tokens (0 = none) */
  promptTokens: number;
  /** producer whose `PrefixCacheMatchInfo` is read on the decode endpoint */
  prefixMatchInfoProducerName: string;
}

/**
 * True when the request should be prefilled elsewhere: `nonCachedTokens > 0`, the prompt is
 * at least `promptTokens` and `nonCachedTokens` long, and
 * `promptTokens − matchBlocks × blockSizeTokens ≥ nonCachedTokens` on the decode endpoint.
 * Missing token count or match info → false.
 */
export function prefixBasedDisaggregate(
  request: InferenceRequest,
  decodeEndpoint: Endpoint,
  p: PrefixPdParams,
): boolean {
  if (p.nonCachedTokens <= 0) return false;
  const tokens = request.attributes.get(TOKENIZED_PROMPT) as TokenizedPrompt | undefined;
  const info = decodeEndpoint.attributes.get(PREFIX_CACHE_MATCH_INFO + p.prefixMatchInfoProducerName) as
    | PrefixCacheMatchInfo
    | undefined;
  if (!tokens || !info) return false;
  const promptTokens = tokens.tokenIds.length;
  if (promptTokens < p.promptTokens || promptTokens < p.nonCachedTokens) return false;
  return promptTokens - info.matchBlocks * info.blockSizeTokens >= p.nonCachedTokens;
}
