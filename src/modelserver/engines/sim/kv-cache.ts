/**
 * Block KV cache of the sim engine: a real block allocator with chained block hashes,
 * prefix reuse, reference counts and an LRU of evictable cached blocks, after vLLM's
 * `KVCacheManager`/`BlockPool` (reference/engine.md §4.1, §2.1).
 *
 * - Only **full** blocks are hashed. `hash_i = xxh64(parent_i ‖ tokens_i ‖ extra_i)` with
 *   `parent_0 = 0`, `parent_i = hash_{i−1}` (8 bytes little-endian), the block's token ids as
 *   uint32 little-endian, and `extra_0 = utf8(model + "\0" + (cache_salt ?? ""))` on the first
 *   block only (so the model and the salt change every hash in the chain), `extra_i` empty
 *   otherwise. xxh64 from `@node-rs/xxhash`, seed 0. These are engine hashes, not llm-d
 *   request keys (llm-d does not need them to match, reference/engine.md §0 item 5).
 * - Allocation takes never-used (or unhashed freed) blocks first, then evicts the least
 *   recently used cached block with reference count 0 (dropping its hash).
 * - Freeing decrements reference counts; a block reaching 0 keeps its hash and goes to the
 *   tail of the LRU (blocks of a request are freed last-block-first, so a request's tail is
 *   evicted before its head, as in vLLM).
 * - Usage = 1 − free/total, where cached-unreferenced blocks count as free (vLLM
 *   `kv_cache_usage_perc`).
 */
import { xxh64 } from "@node-rs/xxhash";

/** One KV block. */
export interface KvBlock {
  /** block index 0..numBlocks−1 */
  readonly id: number;
  /** number of running requests holding it */
  ref: number;
  /** chained hash when the block is full and registered in the cache, else null */
  hash: bigint | null;
}

/** Chained hash of one full block (see module doc). */
export function hashBlock(parent: bigint | null, tokens: ArrayLike<number>, extra?: string): bigint {
  const extraBytes = extra ? Buffer.from(extra, "utf8") : undefined;
  const buf = Buffer.allocUnsafe(8 + tokens.length * 4 + (extraBytes?.length ?? 0));
  buf.writeBigUInt64LE(parent ?? 0n, 0);
  for (let i = 0; i < tokens.length; i++) buf.writeUInt32LE(tokens[i]! >>> 0, 8 + i * 4);
  if (extraBytes) extraBytes.copy(buf, 8 + tokens.length * 4);
  return xxh64(buf);
}

/** Extra key of the first block: model and cache salt (see module doc). */
export function firstBlockExtra(model: string, cacheSalt?: string): string {
  return `${model}\0${cacheSalt ?? ""}`;
}

/**
 * Hashes of the full blocks of `tokens`, chained (see module doc).
 * @param from continue an existing chain: hashes already computed for the first blocks
 */
export function blockHashes(
  tokens: readonly number[],
  blockSize: number,
  firstExtra: string,
  from: bigint[] = [],
): bigint[] {
  const out = from;
  const full = Math.floor(tokens.length / blockSize);
  for (let i = out.length; i < full; i++) {
    const parent = i === 0 ? null : out[i - 1]!;
    out.push(
      hashBlock(parent, tokens.slice(i * blockSize, (i + 1) * blockSize), i === 0 ? firstExtra : undefined),
    );
  }
  return out;
}

/** The block pool. */
export class KvCache {
  /** tokens per block */
  readonly blockSize: number;
  /** total blocks */
  readonly numBlocks: number;
  private readonly blocks: KvBlock[];
  /** never-used or unhashed free blocks (stack) */
  private readonly clean: number[] = [];
  /** cached blocks with ref 0, least recently used first (Map keeps insertion order) */
  private readonly lru = new Map<number, KvBlock>();
  /** hash → registered block */
  private readonly byHash = new Map<bigint, KvBlock>();
  /** blocks evicted from the cache so far */
  evictions = 0;
  /** called with the hash of every evicted cached block (KV events `BlockRemoved`) */
  onEvict: ((hash: bigint) => void) | null = null;

  /**
   * @param numBlocks number of blocks (≥ 1)
   * @param blockSize tokens per block (≥ 1)
   * @throws RangeError on non-positive sizes
   */
  constructor(numBlocks: number, blockSize: number) {
    if (!(numBlocks >= 1) || !(blockSize >= 1)) throw new RangeError("numBlocks and blockSize must be ≥ 1");
    this.numBlocks = numBlocks;
    this.blockSize = blockSize;
    this.blocks = [];
    for (let i = 0; i < numBlocks; i++) this.blocks.push({ id: i, ref: 0, hash: null });
    for (let i = numBlocks - 1; i >= 0; i--) this.clean.push(i);
  }

  /** Free blocks: never-used plus cached-unreferenced. */
  get numFree(): number {
    return this.clean.length + this.lru.size;
  }

  /** Cached blocks with reference count 0 (evictable). */
  get numEvictable(): number {
    return this.lru.size;
  }

  /** Fraction 0..1 of blocks held by running requests. */
  usage(): number {
    return 1 - this.numFree / this.numBlocks;
  }

  /** Block by id (tests). */
  block(id: number): KvBlock {
    return this.blocks[id]!;
  }

  /** Whether a hash is cached (held or evictable). */
  has(hash: bigint): boolean {
    return this.byHash.has(hash);
  }

  /** Ids of the evictable blocks, least recently used first (tests). */
  lruOrder(): number[] {
    return [...this.lru.keys()];
  }

  /**
   * Longest cached prefix of a hash chain: the registered blocks for `hashes[0..k)`, stopping
   * at the first miss. Does not change reference counts (see {@link acquire}).
   */
  lookup(hashes: readonly bigint[], maxBlocks = hashes.length): KvBlock[] {
    const out: KvBlock[] = [];
    const n = Math.min(maxBlocks, hashes.length);
    for (let i = 0; i < n; i++) {
      const b = this.byHash.get(hashes[i]!);
      if (b === undefined) break;
      out.push(b);
    }
    return out;
  }

  /** Takes a reference on cached blocks found by {@link lookup} (removes them from the LRU). */
  acquire(blocks: readonly KvBlock[]): void {
    for (const b of blocks) {
      if (b.ref === 0) this.lru.delete(b.id);
      b.ref++;
    }
  }

  /**
   * Allocates `n` fresh blocks (ref 1): clean blocks first, then LRU evictions.
   * Returns null, changing nothing, when fewer than `n` blocks are free.
   */
  allocate(n: number): KvBlock[] | null {
    if (n > this.numFree) return null;
    const out: KvBlock[] = [];
    for (let i = 0; i < n; i++) {
      let b: KvBlock;
      const id = this.clean.pop();
      if (id !== undefined) {
        b = this.blocks[id]!;
      } else {
        const first = this.lru.entries().next().value as [number, KvBlock];
        b = first[1];
        this.lru.delete(first[0]);
        if (b.hash !== null) {
          if (this.byHash.get(b.hash) === b) this.byHash.delete(b.hash);
          this.onEvict?.(b.hash);
          b.hash = null;
        }
        this.evictions++;
      }
      b.ref = 1;
      out.push(b);
    }
    return out;
  }

  /**
   * Registers a full, computed block under its chained hash. When another block already holds
   * that hash the block stays unregistered (it is freed as clean later), as in vLLM.
   * @returns true when the hash was newly registered (a `BlockStored` event is due)
   */
  commit(block: KvBlock, hash: bigint): boolean {
    if (block.hash !== null) return false;
    if (this.byHash.has(hash)) return false;
    block.hash = hash;
    this.byHash.set(hash, block);
    return true;
  }

  /**
   * Prefix-cache reset (vLLM `BlockPool.reset_prefix_cache`): when no block is referenced by a
   * running request, drops every cached hash (the blocks become clean) without `onEvict`
   * callbacks — the caller announces `AllBlocksCleared` instead.
   * @returns false, changing nothing, when some block is still in use (as vLLM)
   */
  resetPrefixCache(): boolean {
    if (this.numFree !== this.numBlocks) return false;
    for (const b of this.lru.values()) {
      b.hash = null;
      this.clean.push(b.id);
    }
    this.lru.clear();
    this.byHash.clear();
    return true;
  }

  /**
   * Drops one reference on each block, last block first. Blocks reaching 0 keep their hash
   * and go to the LRU tail, or back to the clean pool when unhashed.
   */
  free(blocks: readonly KvBlock[]): void {
    for (let i = blocks.length - 1; i >= 0; i--) {
      const b = blocks[i]!;
      if (b.ref <= 0) throw new Error(`KV block ${b.id} freed with ref ${b.ref}`);
      b.ref--;
      if (b.ref === 0) {
        if (b.hash !== null) this.lru.set(b.id, b);
        else this.clean.push(b.id);
      }
    }
  }
}
