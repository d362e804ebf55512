/**
 * `prefix-based-pd-decider` — disaggregates a request when the part of its prompt the decode
 * endpoint does not already hold is long enough to be worth a prefill on another server.
 *
 * `promptTokens` = token count of the request's {@link TokenizedPrompt} (from `token-producer`);
 * `nonCached = promptTokens − matchBlocks × blockSizeTokens`, read from the
 * {@link PrefixCacheMatchInfo} the prefix producer wrote on the decode endpoint.
 * Disaggregate iff `nonCachedTokens > 0` and `promptTokens ≥ promptTokensParam` and
 * `promptTokens ≥ nonCachedTokens` and `nonCached ≥ nonCachedTokens`. A missing token count
 * or match info → false (decode only).
 *
 * Parameters:
 * - `nonCachedTokens` (tokens, default 0 = disabled: never disaggregate)
 * - `promptTokens` (tokens, default 0): minimum prompt length to disaggregate
 * - `prefixMatchInfoProducerName` (default `approx-prefix-cache-producer`): whose match info to read
 *
 * Source: reference/epp.md §3.1 ("Deciders"), llm-d-router
 * `framework/plugins/scheduling/profilehandler/disagg` deciders.
 */
import { z } from "zod";
import { decodeParams } from "../../framework/config/params.js";
import type { PdDecider, PluginFactory } from "../../framework/plugin.js";
import { prefixBasedDisaggregate } from "../../framework/pd.js";
import type { Endpoint, InferenceRequest } from "../../framework/types.js";

export const PREFIX_BASED_PD_DECIDER_TYPE = "prefix-based-pd-decider";

const schema = z
  .object({
    nonCachedTokens: z.number().int().nonnegative().default(0),
    promptTokens: z.number().int().nonnegative().default(0),
    prefixMatchInfoProducerName: z.string().min(1).default("approx-prefix-cache-producer"),
  })
  .strict();

/** Decoded parameters. */
export type PrefixBasedPdDeciderParams = z.infer<typeof schema>;

/** The decider (see file header). */
export class PrefixBasedPdDecider implements PdDecider {
  readonly type = PREFIX_BASED_PD_DECIDER_TYPE;
  constructor(
    readonly name: string,
    readonly params: PrefixBasedPdDeciderParams,
  ) {}

  disaggregate(request: InferenceRequest, decodeEndpoint: Endpoint): boolean {
    return prefixBasedDisaggregate(request, decodeEndpoint, this.params);
  }
}

/** Factory. @throws ParamsError naming the offending field. */
export const prefixBasedPdDeciderFactory: PluginFactory = (name, params) =>
  new PrefixBasedPdDecider(name, decodeParams(schema, params));
