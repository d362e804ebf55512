/**
 * Approximate prefix hashing of the EPP's `approx-prefix-cache-producer`.
 *
 * Token ids are split into fixed blocks of `blockSizeTokens` (the last, partial block is
 * included). With `h0 = xxhash64(targetModel ‖ cacheSalt?)` (UTF-8, seed 0):
 *
 *     h_i = xxhash64( LE64(xxhash64(tokens_i as little-endian uint32 bytes)) ‖ LE64(h_{i−1}) )
 *
 * Source: llm-d-router `pkg/epp/framework/plugins/requestcontrol/dataproducer/approximateprefix/hashing.go`
 * (reference/epp.md §3.5).
 *
 * Hashes are `bigint`s (what `@node-rs/xxhash` returns): exact 64 bits with no conversion
 * cost. A micro-benchmark of Map lookups (200k keys) measured bigint keys at the speed of
 * 53-bit number keys, so the exact form costs nothing (see report / bench/prefix.ts).
 */
import { endianness } from "node:os";
import { xxh64 } from "@node-rs/xxhash";

const LITTLE_ENDIAN = endianness() === "LE";

/** Reused 16-byte chain buffer: LE64(block hash) ‖ LE64(previous hash). */
const chain = new Uint8Array(16);
/** DataView over {@link chain}: `setBigUint64` measured ~25% faster per block than `Buffer.writeBigUInt64LE`. */
const chainView = new DataView(chain.buffer);
/** Reused block buffer for big-endian hosts (token bytes must be little-endian). */
let blockBuf = Buffer.alloc(0);

/**
 * `h0 = xxhash64(targetModel ‖ cacheSalt)` with seed 0; an empty salt adds nothing.
 * @param targetModel model name after rewrites
 * @param cacheSalt the request's `cache_salt` (vLLM), if any
 */
export function prefixSeedHash(targetModel: string, cacheSalt?: string): bigint {
  return xxh64(Buffer.from(cacheSalt ? targetModel + cacheSalt : targetModel, "utf8"), 0n);
}

/** The little-endian bytes of `tokens[start, end)`, without a copy on little-endian hosts. */
function tokenBytes(tokens: Uint32Array, start: number, end: number): Uint8Array {
  if (LITTLE_ENDIAN) return new Uint8Array(tokens.buffer, tokens.byteOffset + start * 4, (end - start) * 4);
  const n = (end - start) * 4;
  if (blockBuf.length < n) blockBuf = Buffer.alloc(n);
  for (let i = start; i < end; i++) blockBuf.writeUInt32LE(tokens[i], (i - start) * 4);
  return blockBuf.subarray(0, n);
}

/**
 * Chained block hashes of a prompt.
 * @param tokens token ids (or estimate pseudo tokens)
 * @param blockSizeTokens tokens per block, ≥ 1 (callers clamp to ≥ 64 themselves)
 * @param seed `h0` from {@link prefixSeedHash}
 * @param maxBlocks hash at most this many leading blocks (default: all)
 * @returns `[h_1 … h_n]`, `n = min(ceil(len/blockSizeTokens), maxBlocks)`; empty for no tokens
 * @throws RangeError when `blockSizeTokens < 1`
 */
export function prefixBlockHashes(
  tokens: Uint32Array,
  blockSizeTokens: number,
  seed: bigint,
  maxBlocks: number = Number.POSITIVE_INFINITY,
): bigint[] {
  if (!(blockSizeTokens >= 1)) throw new RangeError(`blockSizeTokens must be ≥ 1, got ${blockSizeTokens}`);
  const n = Math.min(Math.ceil(tokens.length / blockSizeTokens), maxBlocks);
  const out: bigint[] = new Array(n);
  let prev = seed;
  for (let i = 0; i < n; i++) {
    const start = i * blockSizeTokens;
    const end = Math.min(start + blockSizeTokens, tokens.length);
    chainView.setBigUint64(0, xxh64(tokenBytes(tokens, start, end), 0n), true);
    chainView.setBigUint64(8, prev, true);
    prev = xxh64(chain, 0n);
    out[i] = prev;
  }
  return out;
}
