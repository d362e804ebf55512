/**
 * Registration of the data-producer family and the scorers that read producer attributes
 * (prefix-cache-scorer, active-request-scorer).
 *
 * Registered types: `token-producer` (+ deprecated `tokenizer`), `approx-prefix-cache-producer`,
 * `inflight-load-producer`, `prefix-cache-scorer`, `active-request-scorer`.
 * `precise-prefix-cache-scorer` is not registered yet.
 *
 * This module is the one place where the scorers meet the producers they auto-create, so the
 * plugin files themselves never import each other.
 */
import type { PluginRegistry } from "../../framework/plugin.js";
import { activeRequestScorerFactory } from "../scorers/active-request-scorer.js";
import { makePrefixCacheScorerFactory } from "../scorers/prefix-cache-scorer.js";
import {
  APPROX_PREFIX_CACHE_PRODUCER_TYPE,
  ApproxPrefixCacheProducer,
  approxPrefixCacheProducerFactory,
} from "./approx-prefix-cache-producer.js";
import {
  INFLIGHT_LOAD_PRODUCER_TYPE,
  InflightLoadProducer,
  inflightLoadProducerFactory,
} from "./inflight-load-producer.js";
import {
  LEGACY_TOKENIZER_TYPE,
  TOKEN_PRODUCER_TYPE,
  TokenProducer,
  tokenProducerFactory,
} from "./token-producer.js";

export { ApproxPrefixCacheProducer, InflightLoadProducer, TokenProducer };

/** Registers every plugin of this family. @throws Error when a type is already registered. */
export function registerProducerPlugins(registry: PluginRegistry): void {
  registry.register(TOKEN_PRODUCER_TYPE, tokenProducerFactory);
  registry.register(LEGACY_TOKENIZER_TYPE, tokenProducerFactory, {
    deprecatedReplacement: TOKEN_PRODUCER_TYPE,
  });
  registry.register(APPROX_PREFIX_CACHE_PRODUCER_TYPE, approxPrefixCacheProducerFactory);
  registry.register(INFLIGHT_LOAD_PRODUCER_TYPE, inflightLoadProducerFactory);
  registry.register(
    "prefix-cache-scorer",
    makePrefixCacheScorerFactory((name) => new ApproxPrefixCacheProducer(name)),
  );
  registry.register("active-request-scorer", activeRequestScorerFactory);
}

/**
 * Default producers by the data key they produce (llm-d's `RegisterAsDefaultProducer`), for a
 * loader that auto-creates a missing producer: `tokenized-prompt` → `token-producer`
 * (estimate backend), `inflight-load` → `inflight-load-producer`.
 */
export const DEFAULT_PRODUCER_TYPES: Readonly<Record<string, string>> = {
  "tokenized-prompt": TOKEN_PRODUCER_TYPE,
  "inflight-load": INFLIGHT_LOAD_PRODUCER_TYPE,
};
