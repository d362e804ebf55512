/**
 * `approx-prefix-cache-producer` — a DataProducer + PreRequest that tracks which endpoint
 * probably holds which prompt prefix in its KV cache, without any feedback from the engines.
 *
 * produce (synchronous): hashes the request's tokens ({@link TOKENIZED_PROMPT}; the estimate
 * backend is used when no token producer ran) into chained block hashes
 * (`src/kvcache/prefix-hash.ts`), once per distinct block size among the candidates, and walks
 * the index greedily from block 0 for each endpoint. Writes
 * {@link PrefixCacheMatchInfo}`{matchBlocks, totalBlocks, blockSizeTokens}` on every candidate
 * under `PREFIX_CACHE_MATCH_INFO + <plugin name>`.
 * preRequest: inserts all hashes into the per-endpoint LRU of the primary profile's first
 * target and of the first target of a profile literally named `prefill`.
 * Endpoints not seen (as candidates or targets) for 2 minutes are purged from the index.
 *
 * Parameters:
 * - `autoTune` (bool, default true): block size = endpoint `metrics.cacheBlockSize` and LRU
 *   capacity = endpoint `metrics.cacheNumBlocks` when known (> 0).
 * - `blockSizeTokens` (int tokens, default 16): block size; **clamped to ≥ 64 at request time**
 *   (whatever its origin, endpoint metric included).
 * - `maxPrefixTokensToMatch` (int tokens, default 131072): when > 0, wins over blocks:
 *   at most `floor(maxPrefixTokensToMatch / blockSize)` blocks are hashed.
 * - `maxPrefixBlocksToMatch` (int blocks, default 2048; 0 = unlimited): used when the token cap is 0.
 * - `lruCapacityPerServer` (int blocks, default 31250): per-endpoint LRU capacity.
 * - `blockSize` (deprecated): mapped into `blockSizeTokens` when that is left at its default
 *   (as upstream does; historically a size in characters).
 *
 * Source: reference/epp.md §3.5; llm-d-router
 * `pkg/epp/framework/plugins/requestcontrol/dataproducer/approximateprefix/plugin.go`.
 */
import { z } from "zod";
import { decodeParams } from "../../framework/config/params.js";
import type { DataProducer, PluginFactory, PreRequest } from "../../framework/plugin.js";
import {
  type Endpoint,
  type InferenceRequest,
  PREFIX_CACHE_MATCH_INFO,
  type PrefixCacheMatchInfo,
  type SchedulingResult,
  TOKENIZED_PROMPT,
  type TokenizedPrompt,
} from "../../framework/types.js";
import { estimateTokens } from "../../kvcache/estimate-tokens.js";
import { PrefixLruIndex } from "../../kvcache/lru-index.js";
import { prefixBlockHashes, prefixSeedHash } from "../../kvcache/prefix-hash.js";
import { logger } from "../../log.js";

export const APPROX_PREFIX_CACHE_PRODUCER_TYPE = "approx-prefix-cache-producer";
/** Smallest block size used at request time, tokens. */
export const MIN_BLOCK_SIZE_TOKENS = 64;
/** Endpoints unseen for this long are purged from the index, ms. */
export const INACTIVE_PURGE_MS = 120_000;
/** Profile whose target is also recorded (P/D). */
export const PREFILL_PROFILE = "prefill";

export const DEFAULT_BLOCK_SIZE_TOKENS = 16;
export const DEFAULT_MAX_PREFIX_TOKENS = 131072;
export const DEFAULT_MAX_PREFIX_BLOCKS = 2048;
export const DEFAULT_LRU_CAPACITY_PER_SERVER = 31250;

const nonNegInt = z.number().int().nonnegative();
const schema = z
  .object({
    autoTune: z.boolean().default(true),
    blockSizeTokens: z.number().int().positive().default(DEFAULT_BLOCK_SIZE_TOKENS),
    maxPrefixTokensToMatch: nonNegInt.default(DEFAULT_MAX_PREFIX_TOKENS),
    maxPrefixBlocksToMatch: nonNegInt.default(DEFAULT_MAX_PREFIX_BLOCKS),
    lruCapacityPerServer: z.number().int().positive().default(DEFAULT_LRU_CAPACITY_PER_SERVER),
    blockSize: z.number().int().positive().optional(),
  })
  .strict();

/** Decoded parameters (deprecated `blockSize` already folded in). */
export interface ApproxPrefixParams {
  autoTune: boolean;
  blockSizeTokens: number;
  maxPrefixTokensToMatch: number;
  maxPrefixBlocksToMatch: number;
  lruCapacityPerServer: number;
}

export const DEFAULT_APPROX_PREFIX_PARAMS: Readonly<ApproxPrefixParams> = {
  autoTune: true,
  blockSizeTokens: DEFAULT_BLOCK_SIZE_TOKENS,
  maxPrefixTokensToMatch: DEFAULT_MAX_PREFIX_TOKENS,
  maxPrefixBlocksToMatch: DEFAULT_MAX_PREFIX_BLOCKS,
  lruCapacityPerServer: DEFAULT_LRU_CAPACITY_PER_SERVER,
};

/** Per-request state between produce and preRequest: hashes by block size. */
interface RequestState {
  hashes: Map<number, bigint[]>;
  /** matched blocks by endpoint id (for the hit-ratio metric) */
  matched: Map<string, number>;
}

/** Models whose salt-less seed is kept (bounds memory under model-name churn). */
const SEED_CACHE_LIMIT = 1024;

const log = logger.child({ component: APPROX_PREFIX_CACHE_PRODUCER_TYPE });

/** Approximate prefix-cache producer (see file header). */
export class ApproxPrefixCacheProducer implements DataProducer, PreRequest {
  readonly type = APPROX_PREFIX_CACHE_PRODUCER_TYPE;
  /** endpoint attribute key written by this instance */
  readonly matchInfoKey: string;
  /** data keys (read by the Director to order producers) */
  readonly produces: readonly string[];
  readonly consumes: readonly string[] = [TOKENIZED_PROMPT];
  readonly params: ApproxPrefixParams;
  private readonly index: PrefixLruIndex;
  private readonly stateKey: string;
  private readonly lastSeen = new Map<string, number>();
  private lastPurge: number;
  private matchObserver?: (matchedBytes: number, totalBytes: number) => void;
  /** `h0` of salt-less requests by target model: the same few models hash alike on every request */
  private readonly seeds = new Map<string, bigint>();

  /**
   * @param now clock in ms (injectable for tests)
   */
  constructor(
    readonly name: string = APPROX_PREFIX_CACHE_PRODUCER_TYPE,
    params: Partial<ApproxPrefixParams> = {},
    private readonly now: () => number = Date.now,
  ) {
    this.params = { ...DEFAULT_APPROX_PREFIX_PARAMS, ...params };
    this.matchInfoKey = PREFIX_CACHE_MATCH_INFO + name;
    this.produces = [this.matchInfoKey];
    this.stateKey = `approx-prefix-state/${name}`;
    this.index = new PrefixLruIndex(this.params.lruCapacityPerServer);
    this.lastPurge = now();
    const bs = this.params.blockSizeTokens;
    if (bs < MIN_BLOCK_SIZE_TOKENS && bs !== DEFAULT_BLOCK_SIZE_TOKENS) {
      log.info(
        { blockSizeTokens: this.params.blockSizeTokens, minimum: MIN_BLOCK_SIZE_TOKENS },
        "configured blockSizeTokens is below the minimum; it is raised at request time",
      );
    }
  }

  /** Block size used for an endpoint, tokens (≥ 64). */
  blockSizeFor(ep: Endpoint): number {
    let bs = this.params.blockSizeTokens;
    if (this.params.autoTune && ep.metrics.cacheBlockSize > 0) bs = ep.metrics.cacheBlockSize;
    return Math.max(MIN_BLOCK_SIZE_TOKENS, bs);
  }

  /** Blocks hashed at most for a block size. */
  maxBlocksFor(blockSize: number): number {
    if (this.params.maxPrefixTokensToMatch > 0)
      return Math.floor(this.params.maxPrefixTokensToMatch / blockSize);
    return this.params.maxPrefixBlocksToMatch === 0
      ? Number.POSITIVE_INFINITY
      : this.params.maxPrefixBlocksToMatch;
  }

  /** LRU capacity for an endpoint, blocks. */
  capacityFor(ep: Endpoint): number {
    if (this.params.autoTune && ep.metrics.cacheNumBlocks > 0) return ep.metrics.cacheNumBlocks;
    return this.params.lruCapacityPerServer;
  }

  /** Distinct block hashes in the index (`prefix_indexer_size`). */
  indexSize(): number {
    return this.index.size();
  }

  /** Blocks held for one endpoint. */
  endpointBlocks(endpointId: string): number {
    return this.index.endpointSize(endpointId);
  }

  /** Called at each preRequest with the target's matched and total prompt size in bytes (≈ tokens × 4). */
  setMatchObserver(fn: (matchedBytes: number, totalBytes: number) => void): void {
    this.matchObserver = fn;
  }

  private tokens(request: InferenceRequest): Uint32Array {
    const t = request.attributes.get(TOKENIZED_PROMPT) as TokenizedPrompt | undefined;
    if (t) return t.tokenIds;
    const est: TokenizedPrompt = { tokenIds: estimateTokens(request), source: "estimate" };
    request.attributes.set(TOKENIZED_PROMPT, est);
    return est.tokenIds;
  }

  private seed(request: InferenceRequest): bigint {
    const salt = request.body.cache_salt;
    if (typeof salt === "string" && salt !== "") return prefixSeedHash(request.targetModel, salt);
    let h = this.seeds.get(request.targetModel);
    if (h === undefined) {
      h = prefixSeedHash(request.targetModel);
      if (this.seeds.size >= SEED_CACHE_LIMIT) this.seeds.clear();
      this.seeds.set(request.targetModel, h);
    }
    return h;
  }

  /** Synchronous: writes match info on every endpoint (see file header). */
  produce(request: InferenceRequest, endpoints: Endpoint[]): void {
    const now = this.now();
    this.maybePurge(now);
    const tokens = this.tokens(request);
    const seed = this.seed(request);
    const groups = new Map<number, Endpoint[]>();
    for (const ep of endpoints) {
      this.lastSeen.set(ep.metadata.id, now);
      const bs = this.blockSizeFor(ep);
      const g = groups.get(bs);
      if (g) g.push(ep);
      else groups.set(bs, [ep]);
    }
    const state: RequestState = { hashes: new Map(), matched: new Map() };
    for (const [bs, eps] of groups) {
      const hashes = prefixBlockHashes(tokens, bs, seed, this.maxBlocksFor(bs));
      state.hashes.set(bs, hashes);
      const counts = this.index.match(
        hashes,
        eps.map((e) => e.metadata.id),
      );
      for (let j = 0; j < eps.length; j++) {
        const info: PrefixCacheMatchInfo = {
          matchBlocks: counts[j],
          totalBlocks: hashes.length,
          blockSizeTokens: bs,
        };
        eps[j].attributes.set(this.matchInfoKey, info);
        state.matched.set(eps[j].metadata.id, counts[j]);
      }
    }
    request.attributes.set(this.stateKey, state);
  }

  /** Records the request's hashes for the primary target and the `prefill` target. */
  preRequest(request: InferenceRequest, result: SchedulingResult): void {
    const state = request.attributes.get(this.stateKey) as RequestState | undefined;
    request.attributes.delete(this.stateKey);
    const primary = result.profileResults[result.primaryProfileName]?.targetEndpoints[0];
    if (!primary) return;
    const targets = [primary];
    const prefill = result.profileResults[PREFILL_PROFILE]?.targetEndpoints[0];
    if (prefill && result.primaryProfileName !== PREFILL_PROFILE) targets.push(prefill);
    const now = this.now();
    for (const ep of targets) {
      const bs = this.blockSizeFor(ep);
      let hashes = state?.hashes.get(bs);
      if (!hashes) {
        hashes = prefixBlockHashes(this.tokens(request), bs, this.seed(request), this.maxBlocksFor(bs));
        state?.hashes.set(bs, hashes);
      }
      this.index.add(ep.metadata.id, hashes, this.capacityFor(ep));
      this.lastSeen.set(ep.metadata.id, now);
    }
    if (this.matchObserver && state) {
      const bs = this.blockSizeFor(primary);
      const total = state.hashes.get(bs)?.length ?? 0;
      const matched = state.matched.get(primary.metadata.id) ?? 0;
      this.matchObserver(matched * bs * 4, total * bs * 4);
    }
  }

  /** Removes endpoints unseen for {@link INACTIVE_PURGE_MS}; checked at most every 10 s. */
  private maybePurge(now: number): void {
    if (now - this.lastPurge < 10_000) return;
    this.lastPurge = now;
    this.purgeInactive(now);
  }

  /** Removes every endpoint last seen more than {@link INACTIVE_PURGE_MS} before `now`. */
  purgeInactive(now: number = this.now()): void {
    for (const [id, seen] of this.lastSeen) {
      if (now - seen > INACTIVE_PURGE_MS) {
        this.index.removeEndpoint(id);
        this.lastSeen.delete(id);
      }
    }
  }
}

/**
 * Decodes parameters, folding the deprecated `blockSize` into `blockSizeTokens`.
 * @throws ParamsError naming an unknown or invalid field
 */
export function decodeApproxPrefixParams(raw: unknown): ApproxPrefixParams {
  const p = decodeParams(schema, raw);
  let blockSizeTokens = p.blockSizeTokens;
  if (p.blockSize !== undefined) {
    log.warn({ blockSize: p.blockSize }, "'blockSize' is deprecated; use 'blockSizeTokens'");
    if (blockSizeTokens === DEFAULT_BLOCK_SIZE_TOKENS) blockSizeTokens = p.blockSize;
  }
  return {
    autoTune: p.autoTune,
    blockSizeTokens,
    maxPrefixTokensToMatch: p.maxPrefixTokensToMatch,
    maxPrefixBlocksToMatch: p.maxPrefixBlocksToMatch,
    lruCapacityPerServer: p.lruCapacityPerServer,
  };
}

/** Factory. @throws ParamsError naming an unknown or invalid field. */
export const approxPrefixCacheProducerFactory: PluginFactory = (name, params) =>
  new ApproxPrefixCacheProducer(name, decodeApproxPrefixParams(params));
