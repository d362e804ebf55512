/**
 * KV-event types (vLLM `vllm/distributed/kv_events.py`, reference/engine.md §3.3) in the shape
 * this code base uses after decoding, and the wire constants of §3.2.
 *
 * Hashes are 64-bit and kept as **interleaved uint32 pairs** (`[hi0, lo0, hi1, lo1, …]` in a
 * `Uint32Array`) so that no BigInt is allocated on the ingestion path. Use
 * {@link hashesFromBigInts} / {@link hashesToBigInts} at the edges.
 */
import type { MsgValue } from "./msgpack.js";
import type { U64 } from "./msgpack.js";

/** Interleaved uint64 list: element i is `hi = a[2i]`, `lo = a[2i+1]`. */
export type HashList = Uint32Array;

/** `BlockStored`: full blocks became cached. Field order = vLLM array order. */
export interface BlockStoredEvent {
  type: "BlockStored";
  /** engine hashes of the newly stored blocks, in chain order */
  blockHashes: HashList;
  /** engine hash of the block before the first new one; null = the run starts the sequence */
  parentBlockHash: U64 | null;
  /** tokens of all new blocks concatenated (`n_blocks × block_size`); may be empty for CPU tier */
  tokenIds: Uint32Array;
  /** engine block size, tokens */
  blockSize: number;
  /** deprecated LoRA slot id (nil when none) */
  loraId: number | null;
  /** device tier, e.g. `"GPU"`, `"CPU"`; null = GPU (absent in vLLM 0.9) */
  medium: string | null;
  /** LoRA adapter name (null = base model) */
  loraName: string | null;
  /** per-block extra keys (MM hashes, salt…), null = default None */
  extraKeys: MsgValue | null;
  /** KV cache group index, null = default None */
  groupIdx: number | null;
  /** e.g. `"full_attention"`, null = default None */
  kvCacheSpecKind: string | null;
  /** sliding-window size, null = default None */
  kvCacheSpecSlidingWindow: number | null;
}

/** `BlockRemoved`: cached blocks were evicted or reused. */
export interface BlockRemovedEvent {
  type: "BlockRemoved";
  blockHashes: HashList;
  /** null = GPU (absent in vLLM 0.9) */
  medium: string | null;
  /** null = default None */
  groupIdx: number | null;
}

/** `AllBlocksCleared`: prefix-cache reset (sleep, `/reset_prefix_cache`, weight update). */
export interface AllBlocksClearedEvent {
  type: "AllBlocksCleared";
}

/** One KV event. */
export type KvEvent = BlockStoredEvent | BlockRemovedEvent | AllBlocksClearedEvent;

/** `KVEventBatch`: one engine step's events. */
export interface EventBatch {
  /** seconds since the epoch (float, `time.time()`) */
  ts: number;
  events: KvEvent[];
  /** data-parallel rank; null = absent (vLLM 0.9 or `None`) */
  dataParallelRank: number | null;
}

/** Topic prefix of KV events, also the SUB filter (reference/engine.md §0 item 2). */
export const KV_TOPIC_PREFIX = "kv@";
/** Replay end marker seq: `(-1).to_bytes(8, "big", signed=True)` = 0xFFFF…FF (§3.2). */
export const END_SEQ = 0xffffffffffffffffn;

/** Converts bigints (taken modulo 2^64) to an interleaved {@link HashList}. */
export function hashesFromBigInts(hs: readonly (bigint | number)[]): HashList {
  const out = new Uint32Array(hs.length * 2);
  for (let i = 0; i < hs.length; i++) {
    const u = BigInt.asUintN(64, BigInt(hs[i]!));
    out[2 * i] = Number(u >> 32n);
    out[2 * i + 1] = Number(u & 0xffffffffn);
  }
  return out;
}

/** Converts an interleaved {@link HashList} back to bigints. */
export function hashesToBigInts(a: HashList): bigint[] {
  const out: bigint[] = [];
  for (let i = 0; i + 1 < a.length; i += 2) out.push((BigInt(a[i]!) << 32n) | BigInt(a[i + 1]!));
  return out;
}

/** Builds the topic `kv@<ip:port>@<model>` (reference/engine.md §0 item 2). */
export function kvTopic(hostPort: string, model: string): string {
  return `${KV_TOPIC_PREFIX}${hostPort}@${model}`;
}

/**
 * Parses `kv@<podId>@<model>` (split on "@"; the model is everything after the second "@").
 * @returns null when the topic does not start with `kv@` or has no model part
 */
export function parseKvTopic(topic: string): { podId: string; model: string } | null {
  if (!topic.startsWith(KV_TOPIC_PREFIX)) return null;
  const rest = topic.slice(KV_TOPIC_PREFIX.length);
  const at = rest.indexOf("@");
  if (at < 0) return null;
  return { podId: rest.slice(0, at), model: rest.slice(at + 1) };
}

/** 8-byte big-endian encoding of a sequence number (`seq.to_bytes(8, "big")`). */
export function encodeSeq(seq: bigint | number): Buffer {
  const b = Buffer.allocUnsafe(8);
  b.writeBigUInt64BE(BigInt.asUintN(64, BigInt(seq)));
  return b;
}

/**
 * Decodes an 8-byte big-endian sequence number as a `number` (exact below 2^53; the end marker
 * 0xFF…FF decodes to `Infinity`).
 * @returns null when the frame is not 8 bytes
 */
export function decodeSeq(frame: Uint8Array): number | null {
  if (frame.length !== 8) return null;
  const v = new DataView(frame.buffer, frame.byteOffset, 8);
  const hi = v.getUint32(0);
  const lo = v.getUint32(4);
  if (hi === 0xffffffff && lo === 0xffffffff) return Number.POSITIVE_INFINITY;
  return hi * 0x100000000 + lo;
}
