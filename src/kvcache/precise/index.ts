/**
 * The precise KV block index: which endpoint holds which llm-d request key, on which tier, fed
 * by vLLM KV events with llm-d's **dual-key** scheme (reference/engine.md §4.3) and scored with
 * **LongestPrefix** (§4.4).
 *
 * - Engine keys (the opaque uint64 hashes in events) map to request keys (ours, see
 *   `request-keys.ts`). On `BlockStored` the request keys are recomputed from `token_ids`,
 *   chained from the parent's request key (looked up through the parent's engine key) or from
 *   the model root when the parent is null. **An unknown parent drops the event** (counted as
 *   `unknown_parent`), as llm-d does.
 * - The effective model is `lora_name` when present, else the topic's model.
 * - The tier is `lowercase(medium)`, default `gpu`. A `BlockStored` without tokens (CPU offload)
 *   resolves its request keys through the engine keys already known.
 * - Engine block size may equal the index block size (1:1) or be a multiple m ≤
 *   {@link KvBlockIndexOptions.maxSpan} of it (1:m); other sizes are dropped as
 *   `block_size_mismatch` (loud, counted) rather than indexed wrongly.
 * - `BlockRemoved` removes the (endpoint, tier) entry of each mapped request key;
 *   `AllBlocksCleared` / {@link KvBlockIndex.clearEndpoint} invalidates every entry of an
 *   endpoint in O(1) (per-endpoint generation counter; stale entries are skipped by lookups and
 *   reclaimed lazily); {@link KvBlockIndex.removeEndpoint} does the same and frees its slot.
 * - Bounds: at most `maxKeys` request keys with at most `podCacheSize` (endpoint, tier) entries
 *   each (oldest replaced), and at most `maxEngineKeys` engine→request mappings; keys beyond the
 *   bound are evicted least-recently-stored first, approximated with CLOCK (second chance;
 *   llm-d uses an exact LRU). llm-d defaults: size 1e8, podCacheSize 10.
 * - Extra keys (multimodal hashes, salts) are not mixed in: keys use `extra = nil` on both the
 *   event side and the request side.
 *
 * Events come as objects ({@link KvBlockIndex.apply}) or, from the ingestion path that decodes
 * payloads without building them, as raw fields ({@link KvBlockIndex.applyStoredRaw},
 * {@link KvBlockIndex.applyRemovedRaw}); the object methods delegate to the raw ones.
 *
 * Layout (ingestion and lookup allocate nothing per event; the index is larger than the CPU
 * caches, so the layout is chosen for few random memory accesses): request keys and engine keys
 * each live in a {@link ClockTable} — records in CLOCK order (a new key takes the record just
 * evicted at the hand, so records are written nearly sequentially) plus a compact fingerprint
 * index (11 to 21 bytes per key, which the CPU caches hold far better than the records), so
 * that looking up a new key, adding it and evicting the victim read no record at random.
 * - request record: `[hi, lo, flags, count, (endpoint << 8 | tier, generation) × podCacheSize]`;
 * - engine record: `[hi, lo, flags, span, (request hi, lo, request record) × span capacity]`,
 *   the request record being a hint (checked against the key) that spares `BlockRemoved` a
 *   lookup;
 * - storing a block first reads, back to back, every index line it will touch (new keys and the
 *   keys the CLOCK hands will evict), so that their cache misses overlap.
 */
import type { BlockRemovedEvent, BlockStoredEvent, KvEvent } from "../events/types.js";
import { ClockTable } from "./clock-table.js";
import { chainKeysInto, modelRootKey } from "./request-keys.js";

/** Tier weights of LongestPrefix (reference/engine.md §4.4). */
export const DEFAULT_TIER_WEIGHTS: Readonly<Record<string, number>> = { gpu: 1.0, cpu: 0.8 };
/** Weight of a tier with no configured weight (our choice; the reference names gpu and cpu only). */
export const UNKNOWN_TIER_WEIGHT = 0.8;
/** llm-d in-memory index defaults (reference/engine.md §4.3). */
export const DEFAULT_MAX_KEYS = 100_000_000;
export const DEFAULT_POD_CACHE_SIZE = 10;
export const DEFAULT_BLOCK_SIZE = 16;
export const DEFAULT_MAX_SPAN = 8;

/** Why an event (or part of it) was not indexed. */
export type DropReason =
  | "unknown_parent"
  | "block_size_mismatch"
  | "token_count_mismatch"
  | "unknown_engine_key";

export const DROP_REASONS: readonly DropReason[] = [
  "unknown_parent",
  "block_size_mismatch",
  "token_count_mismatch",
  "unknown_engine_key",
];

/** Options of {@link KvBlockIndex}. */
export interface KvBlockIndexOptions {
  /** request-key block size, tokens; default 16 */
  blockSize?: number;
  /** hash seed of the chain root (`FNV-64a(seed)`); default "" */
  hashSeed?: string;
  /** max request keys (LRU); default 1e8 */
  maxKeys?: number;
  /** max (endpoint, tier) entries per request key; default 10 */
  podCacheSize?: number;
  /** max engine→request mappings (LRU); default = maxKeys */
  maxEngineKeys?: number;
  /** max request blocks per engine block; default 8 */
  maxSpan?: number;
  /** tier weights by lowercase medium; default gpu 1.0, cpu 0.8 */
  tierWeights?: Record<string, number>;
}

/** Result of a LongestPrefix lookup, indexed by endpoint slot; views valid until the next lookup. */
export interface PrefixScores {
  /** Σ tier weight over the consecutive matched prefix (blocks) */
  score: Float64Array;
  /** consecutive matched blocks */
  blocks: Int32Array;
  /** number of slots in use (entries beyond are meaningless) */
  slots: number;
}

/** Counters of the index (monotonic unless noted). */
export interface IndexStats {
  /** request keys currently indexed (gauge) */
  keys: number;
  /** engine→request mappings (gauge) */
  engineKeys: number;
  /** blocks stored (request-key entries added) */
  blocksStored: number;
  /** blocks removed */
  blocksRemoved: number;
  /** request keys evicted by the LRU bound */
  keysEvicted: number;
  /** dropped events or blocks by reason */
  drops: Record<DropReason, number>;
}

const NONE = -1;
/** Words of a record before its payload: `[hi, lo, flags]` (see clock-table.ts). */
const HDR = 3;
/** Words per request key in an engine record: `[hi, lo, request record]`. */
const ERQ = 3;

function grown<T extends Uint32Array | Int32Array | Uint8Array | Float64Array>(a: T, n: number): T {
  const b = new (a.constructor as new (n: number) => T)(n);
  b.set(a);
  return b;
}

/** The precise KV block index (see module doc). Single-threaded; not re-entrant. */
export class KvBlockIndex {
  readonly blockSize: number;
  readonly hashSeed: string;
  readonly maxKeys: number;
  readonly podCacheSize: number;
  readonly maxEngineKeys: number;
  readonly maxSpan: number;

  // request keys → entries
  /** per request key: `[hi, lo, flags, count, (endpoint << 8 | tier, generation) × podCacheSize]` */
  private readonly rtab: ClockTable;

  // engine keys → request keys
  /**
   * per engine key: `[hi, lo, flags, span, (request hi, lo, request record) × espanCap]`; the
   * request record is a hint (checked against the key, which may have been evicted since) that
   * spares `BlockRemoved` a lookup
   */
  private readonly etab: ClockTable;
  /** request keys an engine record has room for (grows up to maxSpan on demand) */
  private espanCap = 1;

  // endpoints
  private readonly slotById = new Map<string, number>();
  private idBySlot: (string | undefined)[] = [];
  private podGen = new Uint32Array(64);
  private freeSlots: number[] = [];

  // tiers
  private readonly tierIds = new Map<string, number>();
  /** medium as received (null → "") → tier id, so the hot path does not lower-case */
  private readonly rawTierIds = new Map<string, number>();
  private lastMedium: string | null = null;
  private lastTier = -1;
  private tierWeight = new Float64Array(16);
  private readonly tierWeights: Record<string, number>;

  // model roots
  private readonly roots = new Map<string, [number, number]>();

  // scratch
  private scratch = new Uint32Array(2 * 1024);
  private score = new Float64Array(64);
  private blocks = new Int32Array(64);
  private last = new Int32Array(64);
  private curW = new Float64Array(64);
  /** sink of the prefetching reads (keeps them from being optimized away) */
  private sink = 0;

  private readonly st: IndexStats = {
    keys: 0,
    engineKeys: 0,
    blocksStored: 0,
    blocksRemoved: 0,
    keysEvicted: 0,
    drops: { unknown_parent: 0, block_size_mismatch: 0, token_count_mismatch: 0, unknown_engine_key: 0 },
  };

  /** @throws RangeError on a non-positive block size, pod cache size or span */
  constructor(opts: KvBlockIndexOptions = {}) {
    this.blockSize = opts.blockSize ?? DEFAULT_BLOCK_SIZE;
    this.hashSeed = opts.hashSeed ?? "";
    this.maxKeys = opts.maxKeys ?? DEFAULT_MAX_KEYS;
    this.podCacheSize = opts.podCacheSize ?? DEFAULT_POD_CACHE_SIZE;
    this.maxEngineKeys = opts.maxEngineKeys ?? this.maxKeys;
    this.maxSpan = opts.maxSpan ?? DEFAULT_MAX_SPAN;
    if (!(this.blockSize >= 1) || !(this.podCacheSize >= 1) || !(this.podCacheSize <= 255)) {
      throw new RangeError("blockSize ≥ 1 and 1 ≤ podCacheSize ≤ 255 required");
    }
    if (!(this.maxSpan >= 1 && this.maxSpan <= 255) || !(this.maxKeys >= 1) || !(this.maxEngineKeys >= 1)) {
      throw new RangeError("1 ≤ maxSpan ≤ 255, maxKeys ≥ 1 and maxEngineKeys ≥ 1 required");
    }
    this.tierWeights = { ...DEFAULT_TIER_WEIGHTS, ...(opts.tierWeights ?? {}) };
    this.rtab = new ClockTable(Math.min(1024, this.maxKeys), HDR + 1 + 2 * this.podCacheSize);
    this.etab = new ClockTable(Math.min(1024, this.maxEngineKeys), HDR + 1 + ERQ * this.espanCap);
  }

  // ------------------------------------------------------------ endpoints and tiers

  /** Slot of an endpoint (`ip:port`), created on first use. Slots are small dense integers. */
  endpointSlot(id: string): number {
    let s = this.slotById.get(id);
    if (s !== undefined) return s;
    s = this.freeSlots.length > 0 ? this.freeSlots.pop()! : this.idBySlot.length;
    this.slotById.set(id, s);
    this.idBySlot[s] = id;
    if (s >= this.podGen.length) {
      const n = this.podGen.length * 2;
      this.podGen = grown(this.podGen, n);
      this.score = new Float64Array(n);
      this.blocks = new Int32Array(n);
      this.last = new Int32Array(n);
      this.curW = new Float64Array(n);
    }
    return s;
  }

  /** Endpoint id of a slot (undefined when free). */
  endpointId(slot: number): string | undefined {
    return this.idBySlot[slot];
  }

  /** Slot of a known endpoint, or undefined. */
  findEndpoint(id: string): number | undefined {
    return this.slotById.get(id);
  }

  /** Invalidates every entry of an endpoint (AllBlocksCleared, resync). O(1). */
  clearEndpoint(slot: number): void {
    this.podGen[slot] = (this.podGen[slot]! + 1) >>> 0;
  }

  /** Purges an endpoint that left the pool and frees its slot. No-op when unknown. */
  removeEndpoint(id: string): void {
    const s = this.slotById.get(id);
    if (s === undefined) return;
    this.clearEndpoint(s);
    this.slotById.delete(id);
    this.idBySlot[s] = undefined;
    this.freeSlots.push(s);
  }

  /** Ids of the endpoints with a slot. */
  endpoints(): string[] {
    return [...this.slotById.keys()];
  }

  private tierId(medium: string | null): number {
    // decoded media are interned strings: the last one usually matches by identity
    if (medium === this.lastMedium && this.lastTier >= 0) return this.lastTier;
    const t = this.tierIdSlow(medium);
    this.lastMedium = medium;
    this.lastTier = t;
    return t;
  }

  private tierIdSlow(medium: string | null): number {
    const raw = medium ?? "";
    const known = this.rawTierIds.get(raw);
    if (known !== undefined) return known;
    const name = medium === null ? "gpu" : medium.toLowerCase();
    let t = this.tierIds.get(name);
    if (t === undefined && this.tierIds.size >= 255) t = this.tierIds.size - 1; // tier ids are 8-bit
    if (t === undefined) {
      t = this.tierIds.size;
      if (t >= this.tierWeight.length) this.tierWeight = grown(this.tierWeight, t * 2);
      this.tierIds.set(name, t);
      this.tierWeight[t] = this.tierWeights[name] ?? UNKNOWN_TIER_WEIGHT;
    }
    this.rawTierIds.set(raw, t);
    return t;
  }

  private root(model: string): [number, number] {
    let r = this.roots.get(model);
    if (r === undefined) {
      const k = modelRootKey(model, this.hashSeed);
      r = [Number(k >> 32n), Number(k & 0xffffffffn)];
      this.roots.set(model, r);
    }
    return r;
  }

  /** Root request key of a model as [hi, lo] (cached). */
  rootKey(model: string): readonly [number, number] {
    return this.root(model);
  }

  // ------------------------------------------------------------ request-key entries

  private allocReq(hi: number, lo: number): number {
    const t = this.rtab;
    if (t.count >= this.maxKeys) this.evictReq(t.victim());
    let s = t.add(hi, lo);
    if (s === NONE) {
      t.growTo(Math.min(t.cap * 2, this.maxKeys));
      s = t.add(hi, lo);
    }
    t.d[t.stride * s + HDR] = 0;
    return s;
  }

  private evictReq(s: number): void {
    this.rtab.remove(s);
    this.st.keysEvicted++;
  }

  /** Adds (or refreshes) the entry (ep, tier) of request key (hi, lo); returns its record. */
  private addEntry(hi: number, lo: number, ep: number, tier: number): number {
    let s = this.rtab.find(hi, lo);
    if (s === NONE) s = this.allocReq(hi, lo);
    else this.rtab.touch(s);
    const K = this.podCacheSize;
    const d = this.rtab.d;
    const base = this.rtab.stride * s + HDR;
    const gen = this.podGen[ep]! | 0;
    const pt = (ep << 8) | tier;
    let cnt = d[base]!;
    for (let j = base + 1; j < base + 1 + 2 * cnt; j += 2) {
      if (d[j] === pt) {
        d[j + 1] = gen;
        this.st.blocksStored++;
        return s;
      }
    }
    if (cnt === K) {
      // reclaim stale entries, then drop the oldest
      let w = base + 1;
      for (let j = base + 1; j < base + 1 + 2 * cnt; j += 2) {
        const e = d[j]!;
        if (d[j + 1] === (this.podGen[e >>> 8]! | 0)) {
          d[w] = e;
          d[w + 1] = d[j + 1]!;
          w += 2;
        }
      }
      cnt = (w - base - 1) >> 1;
      if (cnt === K) {
        d.copyWithin(base + 1, base + 3, base + 1 + 2 * K);
        cnt--;
      }
    }
    const o = base + 1 + 2 * cnt;
    d[o] = pt;
    d[o + 1] = gen;
    d[base] = cnt + 1;
    this.st.blocksStored++;
    return s;
  }

  /**
   * The record of request key (hi, lo): `hint` when it still holds that key, else a lookup;
   * -1 when the key is not indexed.
   */
  private reqRecord(hi: number, lo: number, hint: number): number {
    const d = this.rtab.d;
    const o = this.rtab.stride * hint;
    // the key's index group (needed by the removal that usually follows) is read alongside the
    // hinted record: the two misses overlap
    this.sink ^= this.rtab.probe(hi, lo);
    if (d[o] === (hi | 0) && d[o + 1] === (lo | 0) && d[o + 2] !== 0) return hint;
    return this.rtab.find(hi, lo);
  }

  private removeEntry(hi: number, lo: number, hint: number, ep: number, tier: number): void {
    const s = this.reqRecord(hi, lo, hint);
    if (s === NONE) return;
    const d = this.rtab.d;
    const base = this.rtab.stride * s + HDR;
    const cnt = d[base]!;
    const pt = (ep << 8) | tier;
    const end = base + 1 + 2 * cnt;
    for (let j = base + 1; j < end; j += 2) {
      if (d[j] === pt) {
        const stale = d[j + 1] !== (this.podGen[ep]! | 0);
        d.copyWithin(j, j + 2, end);
        d[base] = cnt - 1;
        if (!stale) this.st.blocksRemoved++;
        if (cnt === 1) this.rtab.remove(s);
        return;
      }
    }
  }

  // ------------------------------------------------------------ engine keys

  /** Widens engine records to hold `span` request keys. */
  private growSpan(span: number): void {
    this.espanCap = span;
    this.etab.restride(HDR + 1 + ERQ * span);
  }

  /**
   * Maps engine key (hi, lo) to request keys `keys[from .. from + span)` and adds their entries
   * (ep, tier).
   */
  private storeBlock(
    hi: number,
    lo: number,
    keys: Uint32Array,
    from: number,
    span: number,
    ep: number,
    tier: number,
  ): void {
    const t = this.etab;
    let s = t.find(hi, lo);
    if (s === NONE) {
      if (t.count >= this.maxEngineKeys) t.remove(t.victim());
      s = t.add(hi, lo);
      if (s === NONE) {
        t.growTo(Math.min(t.cap * 2, this.maxEngineKeys));
        s = t.add(hi, lo);
      }
    } else {
      t.touch(s);
    }
    // the request side (addEntry) does not touch etab
    const o = t.stride * s + HDR;
    t.d[o] = span;
    for (let k = 0; k < span; k++) {
      const rh = keys[2 * (from + k)]!;
      const rl = keys[2 * (from + k) + 1]!;
      const r = this.addEntry(rh, rl, ep, tier);
      const q = o + 1 + ERQ * k;
      const d = t.d;
      d[q] = rh;
      d[q + 1] = rl;
      d[q + 2] = r;
    }
  }

  /**
   * Reads, back to back, the index lines that storing engine block `i` of an event will touch
   * (its engine key, its request keys, and the keys the CLOCK hands will probably evict), so
   * that their cache misses overlap instead of being taken one after the other.
   */
  private prefetchBlock(eh: number, el: number, keys: Uint32Array, from: number, span: number): void {
    const et = this.etab;
    const rt = this.rtab;
    const ev = et.count >= this.maxEngineKeys ? et.peekVictim() : NONE;
    const rv = rt.count >= this.maxKeys ? rt.peekVictim() : NONE;
    const kh = keys[2 * from]!;
    const kl = keys[2 * from + 1]!;
    let x =
      et.probe2(eh, el, ev === NONE ? eh : et.hi(ev), ev === NONE ? el : et.lo(ev)) ^
      rt.probe2(kh, kl, rv === NONE ? kh : rt.hi(rv), rv === NONE ? kl : rt.lo(rv));
    for (let k = from + 1; k < from + span; k++) x ^= rt.probe2(keys[2 * k]!, keys[2 * k + 1]!, kh, kl);
    this.sink ^= x;
  }

  // ------------------------------------------------------------ events

  /**
   * Applies one event of endpoint `ep` (slot) whose topic names `model`.
   * @returns null when fully applied, else the reason the event (or some of its blocks) was
   *   dropped (also counted in {@link stats})
   */
  apply(ep: number, model: string, e: KvEvent): DropReason | null {
    if (e.type === "BlockStored") return this.applyStored(ep, model, e);
    if (e.type === "BlockRemoved") return this.applyRemoved(ep, e);
    this.clearEndpoint(ep);
    return null;
  }

  /** See {@link apply}. */
  applyStored(ep: number, model: string, e: BlockStoredEvent): DropReason | null {
    const p = e.parentBlockHash;
    const hashes = e.blockHashes;
    const tokens = e.tokenIds;
    return this.applyStoredRaw(
      ep,
      model,
      hashes,
      0,
      hashes.length >>> 1,
      p !== null,
      p === null ? 0 : p.hi,
      p === null ? 0 : p.lo,
      tokens,
      0,
      tokens.length,
      e.blockSize,
      e.medium,
      e.loraName,
    );
  }

  /**
   * {@link applyStored} on raw fields, so that a decoder can feed the index without building an
   * event object: engine hashes are pairs `hashes[2·hashFrom ..]` (`nE` of them), tokens are
   * `tokens[tokenFrom .. tokenFrom + nTokens)`, the parent is (parentHi, parentLo) when
   * `hasParent`.
   */
  applyStoredRaw(
    ep: number,
    model: string,
    hashes: Uint32Array,
    hashFrom: number,
    nE: number,
    hasParent: boolean,
    parentHi: number,
    parentLo: number,
    tokens: Uint32Array,
    tokenFrom: number,
    nTokens: number,
    blockSize: number,
    medium: string | null,
    loraName: string | null,
  ): DropReason | null {
    if (nE === 0) return null;
    const tier = this.tierId(medium);
    if (nTokens === 0) return this.storeTierOnly(ep, tier, hashes, hashFrom, nE);
    const ebs = nTokens / nE;
    if (!Number.isInteger(ebs) || (blockSize > 0 && blockSize !== ebs))
      return this.drop("token_count_mismatch");
    const bs = this.blockSize;
    const span = ebs / bs;
    if (!Number.isInteger(span) || span > this.maxSpan) return this.drop("block_size_mismatch");
    let ph: number;
    let pl: number;
    if (!hasParent) {
      const r = this.root(loraName ?? model);
      ph = r[0];
      pl = r[1];
    } else {
      const et = this.etab;
      const p = et.find(parentHi, parentLo);
      if (p === NONE) return this.drop("unknown_parent");
      const d = et.d;
      const o = et.stride * p + HDR;
      const last = o + 1 + ERQ * (d[o]! - 1);
      ph = d[last]!;
      pl = d[last + 1]!;
    }
    if (span > this.espanCap) this.growSpan(span);
    const nR = nE * span;
    if (this.scratch.length < 2 * nR) this.scratch = new Uint32Array(2 * nR * 2);
    const keys = this.scratch;
    chainKeysInto(ph, pl, tokens, nTokens, bs, keys, 0, tokenFrom);
    for (let i = 0; i < nE; i++) {
      const eh = hashes[2 * (hashFrom + i)]!;
      const el = hashes[2 * (hashFrom + i) + 1]!;
      this.prefetchBlock(eh, el, keys, i * span, span);
      this.storeBlock(eh, el, keys, i * span, span, ep, tier);
    }
    return null;
  }

  /** A `BlockStored` without tokens (e.g. CPU offload): resolves through known engine keys. */
  private storeTierOnly(
    ep: number,
    tier: number,
    hashes: Uint32Array,
    from: number,
    nE: number,
  ): DropReason | null {
    let miss = false;
    for (let i = from; i < from + nE; i++) {
      const et = this.etab;
      const s = et.find(hashes[2 * i]!, hashes[2 * i + 1]!);
      if (s === NONE) {
        miss = true;
        continue;
      }
      const d = et.d;
      const o = et.stride * s + HDR;
      for (let q = o + 1; q < o + 1 + ERQ * d[o]!; q += ERQ)
        d[q + 2] = this.addEntry(d[q]!, d[q + 1]!, ep, tier);
    }
    return miss ? this.drop("unknown_engine_key") : null;
  }

  /** See {@link apply}. */
  applyRemoved(ep: number, e: BlockRemovedEvent): DropReason | null {
    return this.applyRemovedRaw(ep, e.blockHashes, 0, e.blockHashes.length >>> 1, e.medium);
  }

  /** {@link applyRemoved} on raw fields: engine hashes are pairs `hashes[2·from ..]`, `n` of them. */
  applyRemovedRaw(
    ep: number,
    hashes: Uint32Array,
    from: number,
    n: number,
    medium: string | null,
  ): DropReason | null {
    const tier = this.tierId(medium);
    let miss = false;
    for (let i = from; i < from + n; i++) {
      const et = this.etab;
      const s = et.find(hashes[2 * i]!, hashes[2 * i + 1]!);
      if (s === NONE) {
        miss = true;
        continue;
      }
      // the request side (removeEntry) does not touch etab
      const d = et.d;
      const o = et.stride * s + HDR;
      for (let q = o + 1; q < o + 1 + ERQ * d[o]!; q += ERQ)
        this.removeEntry(d[q]!, d[q + 1]!, d[q + 2]!, ep, tier);
    }
    return miss ? this.drop("unknown_engine_key") : null;
  }

  private drop(r: DropReason): DropReason {
    this.st.drops[r]++;
    return r;
  }

  // ------------------------------------------------------------ lookup

  /**
   * LongestPrefix over request keys (interleaved pairs, `nKeys` of them): per endpoint, the sum
   * of tier weights (max over tiers of a block) over its consecutive matches from block 0; an
   * endpoint drops out at its first miss; the walk stops when no endpoint matched a block.
   * Returned arrays are reused by the next call.
   */
  longestPrefix(keys: Uint32Array, nKeys = keys.length >>> 1): PrefixScores {
    const n = this.idBySlot.length;
    const { score, blocks, last, curW, podGen, tierWeight } = this;
    score.fill(0, 0, n);
    blocks.fill(0, 0, n);
    last.fill(-1, 0, n);
    const d = this.rtab.d;
    const stride = this.rtab.stride;
    for (let i = 0; i < nKeys; i++) {
      const s = this.rtab.find(keys[2 * i]!, keys[2 * i + 1]!);
      if (s === NONE) break;
      const base = s * stride + HDR;
      const end = base + 1 + 2 * d[base]!;
      let any = false;
      for (let j = base + 1; j < end; j += 2) {
        const e = d[j]!;
        const p = e >>> 8;
        if (d[j + 1] !== (podGen[p]! | 0)) continue;
        const w = tierWeight[e & 0xff]!;
        const l = last[p]!;
        if (l === i - 1) {
          last[p] = i;
          blocks[p] = i + 1;
          score[p] += w;
          curW[p] = w;
          any = true;
        } else if (l === i && w > curW[p]!) {
          score[p] += w - curW[p]!;
          curW[p] = w;
        }
      }
      if (!any) break;
    }
    return { score, blocks, slots: n };
  }

  /** Number of live (endpoint, tier) entries of a request key for an endpoint (tests, doctor). */
  entriesOf(hi: number, lo: number, endpointId: string): string[] {
    const s = this.rtab.find(hi, lo);
    const ep = this.slotById.get(endpointId);
    if (s === NONE || ep === undefined) return [];
    const out: string[] = [];
    const d = this.rtab.d;
    const base = s * this.rtab.stride + HDR;
    const names = [...this.tierIds.keys()];
    for (let j = base + 1; j < base + 1 + 2 * d[base]!; j += 2) {
      const e = d[j]!;
      if (e >>> 8 === ep && d[j + 1] === (this.podGen[ep]! | 0)) out.push(names[e & 0xff]!);
    }
    return out;
  }

  /** Counters (a snapshot; `keys` and `engineKeys` are current sizes). */
  stats(): IndexStats {
    return {
      ...this.st,
      keys: this.rtab.count,
      engineKeys: this.etab.count,
      drops: { ...this.st.drops },
    };
  }
}
