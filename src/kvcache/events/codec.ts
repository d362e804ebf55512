/**
 * Encoding and decoding of vLLM `KVEventBatch` payloads (reference/engine.md §3.3, §3.4).
 *
 * Decoding accepts every shape seen in the wild:
 * - outer batch as an array `[ts, [events…], data_parallel_rank?]` (0.9 has no rank) or as a
 *   map `{ts, events, data_parallel_rank?}`;
 * - events as tagged arrays (`["BlockStored", hashes, parent, token_ids, block_size, lora_id,
 *   medium, lora_name, extra_keys?, group_idx?, kv_cache_spec_kind?,
 *   kv_cache_spec_sliding_window?]`, `["BlockRemoved", hashes, medium?, group_idx?]`,
 *   `["AllBlocksCleared"]`; trailing fields may be absent, 0.9 stops after `lora_id` /
 *   `hashes`) or as maps with a `"type"` key (vLLM ≥ PR #42892);
 * - hashes as integers (uint64, int64 reinterpreted, or small ints) or bytes (last 8 bytes read
 *   big-endian, left-padded when shorter — llm-d `getHashAsUint64`).
 *
 * Encoding mirrors msgspec with `array_like=True, omit_defaults=True, tag=True`: in array mode
 * only trailing fields equal to their default (None) are dropped; fields without a default
 * (`lora_id`, `medium`, `lora_name`) are always written. In map mode the same defaults are
 * omitted and the tag is the `"type"` key. The outer batch is an array by default (vLLM keeps it
 * positional even with map events, §3.3).
 */
import {
  decodeMsgpack,
  type EncodableValue,
  encodeMsgpack,
  FixStr,
  type MsgValue,
  MsgpackError,
  MsgpackReader,
  U64,
} from "./msgpack.js";
import type { BlockRemovedEvent, BlockStoredEvent, EventBatch, HashList, KvEvent } from "./types.js";

/** Event encoding: tagged positional arrays (legacy/default) or maps with `"type"`. */
export type EventEncoding = "array" | "map";

/** Options of {@link encodeBatch}. */
export interface EncodeOptions {
  /** how each event is written; default `array` */
  events?: EventEncoding;
  /** how the outer batch is written; default `array` (as vLLM) */
  batch?: EventEncoding;
}

/** Thrown when a payload is valid msgpack but not a KV-event batch. */
export class KvEventDecodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "KvEventDecodeError";
  }
}

// ---------------------------------------------------------------- encode

function hashValues(h: HashList): EncodableValue[] {
  const out: EncodableValue[] = [];
  for (let i = 0; i + 1 < h.length; i += 2) {
    const hi = h[i]!;
    const lo = h[i + 1]!;
    // shortest form, as msgspec writes Python ints
    out.push(hi === 0 ? lo : new U64(hi, lo));
  }
  return out;
}

function u64Value(v: U64 | null): EncodableValue {
  if (v === null) return null;
  return v.hi === 0 ? v.lo : v;
}

/** Drops trailing `null`s beyond `required` leading fields (msgspec omit_defaults in array mode). */
function trimTrailing(fields: EncodableValue[], required: number): EncodableValue[] {
  let n = fields.length;
  while (n > required && fields[n - 1] === null) n--;
  return fields.slice(0, n);
}

function storedFields(e: BlockStoredEvent): [string, EncodableValue][] {
  return [
    ["block_hashes", hashValues(e.blockHashes)],
    ["parent_block_hash", u64Value(e.parentBlockHash)],
    ["token_ids", Array.from(e.tokenIds)],
    ["block_size", e.blockSize],
    ["lora_id", e.loraId],
    ["medium", e.medium],
    ["lora_name", e.loraName],
    ["extra_keys", (e.extraKeys ?? null) as EncodableValue],
    ["group_idx", e.groupIdx],
    ["kv_cache_spec_kind", e.kvCacheSpecKind],
    ["kv_cache_spec_sliding_window", e.kvCacheSpecSlidingWindow],
  ];
}
/** fields of BlockStored without a default (always written) */
const STORED_REQUIRED = 7;

function removedFields(e: BlockRemovedEvent): [string, EncodableValue][] {
  return [
    ["block_hashes", hashValues(e.blockHashes)],
    ["medium", e.medium],
    ["group_idx", e.groupIdx],
  ];
}
const REMOVED_REQUIRED = 2;

function encodeEvent(e: KvEvent, mode: EventEncoding): EncodableValue {
  let fields: [string, EncodableValue][];
  let required: number;
  if (e.type === "BlockStored") {
    fields = storedFields(e);
    required = STORED_REQUIRED;
  } else if (e.type === "BlockRemoved") {
    fields = removedFields(e);
    required = REMOVED_REQUIRED;
  } else {
    fields = [];
    required = 0;
  }
  if (mode === "array")
    return [
      e.type,
      ...trimTrailing(
        fields.map((f) => f[1]),
        required,
      ),
    ];
  const o: Record<string, EncodableValue> = { type: e.type };
  fields.forEach(([k, v], i) => {
    if (i < required || v !== null) o[k] = v;
  });
  return o;
}

/**
 * Encodes a batch as a msgpack payload (see module doc).
 * @throws MsgpackError when a value cannot be encoded
 */
export function encodeBatch(batch: EventBatch, opts: EncodeOptions = {}): Uint8Array {
  const evMode = opts.events ?? "array";
  const events = batch.events.map((e) => encodeEvent(e, evMode));
  if ((opts.batch ?? "array") === "map") {
    const o: Record<string, EncodableValue> = { ts: batch.ts, events };
    if (batch.dataParallelRank !== null) o.data_parallel_rank = batch.dataParallelRank;
    return encodeMsgpack(o);
  }
  const arr: EncodableValue[] = [batch.ts, events];
  if (batch.dataParallelRank !== null) arr.push(batch.dataParallelRank);
  return encodeMsgpack(arr);
}

// ---------------------------------------------------------------- decode

const TWO32 = 0x100000000;

/** Writes hash `v` at pair index `i` of `out`. */
function putHash(out: Uint32Array, i: number, v: MsgValue, what: string): void {
  if (v instanceof U64) {
    out[2 * i] = v.hi;
    out[2 * i + 1] = v.lo;
  } else if (typeof v === "number" && Number.isInteger(v)) {
    if (v >= 0) {
      out[2 * i] = Math.floor(v / TWO32);
      out[2 * i + 1] = v >>> 0;
    } else {
      const u = U64.fromBigInt(BigInt(v));
      out[2 * i] = u.hi;
      out[2 * i + 1] = u.lo;
    }
  } else if (v instanceof Uint8Array) {
    // last 8 bytes big-endian, left-padded with zeros when shorter
    let hi = 0;
    let lo = 0;
    const n = v.length;
    for (let k = Math.max(0, n - 8); k < n; k++) {
      hi = ((hi << 8) | (lo >>> 24)) >>> 0;
      lo = ((lo << 8) | v[k]!) >>> 0;
    }
    out[2 * i] = hi;
    out[2 * i + 1] = lo;
  } else {
    throw new KvEventDecodeError(`${what}: not a hash (int or bytes)`);
  }
}

function decodeHashes(v: MsgValue | undefined, what: string): HashList {
  if (!Array.isArray(v)) throw new KvEventDecodeError(`${what}: expected an array of hashes`);
  const out = new Uint32Array(v.length * 2);
  for (let i = 0; i < v.length; i++) putHash(out, i, v[i]!, what);
  return out;
}

function decodeParent(v: MsgValue | undefined): U64 | null {
  if (v === undefined || v === null) return null;
  const tmp = new Uint32Array(2);
  putHash(tmp, 0, v, "parent_block_hash");
  return new U64(tmp[0]!, tmp[1]!);
}

function decodeTokens(v: MsgValue | undefined): Uint32Array {
  if (v === undefined || v === null) return new Uint32Array(0);
  if (!Array.isArray(v)) throw new KvEventDecodeError("token_ids: expected an array");
  const out = new Uint32Array(v.length);
  for (let i = 0; i < v.length; i++) {
    const t = v[i];
    if (typeof t !== "number") throw new KvEventDecodeError("token_ids: expected integers");
    out[i] = t;
  }
  return out;
}

function optInt(v: MsgValue | undefined, what: string): number | null {
  if (v === undefined || v === null) return null;
  if (typeof v === "number") return v;
  if (v instanceof U64) return v.hi * TWO32 + v.lo;
  throw new KvEventDecodeError(`${what}: expected an integer`);
}

function optStr(v: MsgValue | undefined, what: string): string | null {
  if (v === undefined || v === null) return null;
  if (typeof v === "string") return v;
  throw new KvEventDecodeError(`${what}: expected a string`);
}

function stored(f: (name: string, pos: number) => MsgValue | undefined): BlockStoredEvent {
  return {
    type: "BlockStored",
    blockHashes: decodeHashes(f("block_hashes", 1), "block_hashes"),
    parentBlockHash: decodeParent(f("parent_block_hash", 2)),
    tokenIds: decodeTokens(f("token_ids", 3)),
    blockSize: optInt(f("block_size", 4), "block_size") ?? 0,
    loraId: optInt(f("lora_id", 5), "lora_id"),
    medium: optStr(f("medium", 6), "medium"),
    loraName: optStr(f("lora_name", 7), "lora_name"),
    extraKeys: f("extra_keys", 8) ?? null,
    groupIdx: optInt(f("group_idx", 9), "group_idx"),
    kvCacheSpecKind: optStr(f("kv_cache_spec_kind", 10), "kv_cache_spec_kind"),
    kvCacheSpecSlidingWindow: optInt(f("kv_cache_spec_sliding_window", 11), "kv_cache_spec_sliding_window"),
  };
}

function removed(f: (name: string, pos: number) => MsgValue | undefined): BlockRemovedEvent {
  return {
    type: "BlockRemoved",
    blockHashes: decodeHashes(f("block_hashes", 1), "block_hashes"),
    medium: optStr(f("medium", 2), "medium"),
    groupIdx: optInt(f("group_idx", 3), "group_idx"),
  };
}

/**
 * Decodes one event (array or map form).
 * @returns null for an unknown tag (future event types are skipped, not fatal)
 * @throws KvEventDecodeError when a known event is malformed
 */
export function decodeEvent(v: MsgValue): KvEvent | null {
  let tag: MsgValue | undefined;
  let f: (name: string, pos: number) => MsgValue | undefined;
  if (Array.isArray(v)) {
    tag = v[0];
    f = (_name, pos) => v[pos];
  } else if (v !== null && typeof v === "object" && !(v instanceof U64) && !(v instanceof Uint8Array)) {
    const o = v as { [key: string]: MsgValue };
    tag = o.type;
    f = (name) => o[name];
  } else {
    throw new KvEventDecodeError("event is neither an array nor a map");
  }
  switch (tag) {
    case "BlockStored":
      return stored(f);
    case "BlockRemoved":
      return removed(f);
    case "AllBlocksCleared":
      return { type: "AllBlocksCleared" };
    default:
      if (typeof tag !== "string") throw new KvEventDecodeError("event has no string tag");
      return null;
  }
}

/** Result of {@link decodeBatch}: the batch and the number of events with unknown tags skipped. */
export interface DecodedBatch {
  batch: EventBatch;
  unknownEvents: number;
}

/**
 * Decodes a msgpack payload into an {@link EventBatch} (see module doc for accepted shapes).
 * Array-form batches and events are read straight into typed arrays (no intermediate values);
 * anything else goes through the generic decoder.
 * @throws KvEventDecodeError on malformed payloads
 */
export function decodeBatch(payload: Uint8Array): DecodedBatch {
  try {
    const fast = decodeBatchFast(payload);
    if (fast !== null) return fast;
  } catch (err) {
    if (err instanceof MsgpackError) throw new KvEventDecodeError(`bad msgpack: ${err.message}`);
    throw err;
  }
  return decodeBatchGeneric(payload);
}

/** Fast path for `[ts, [events…], rank?]`; null when the root is not an array. */
function decodeBatchFast(payload: Uint8Array): DecodedBatch | null {
  const r = new MsgpackReader(payload);
  const n = r.arrayHeader();
  if (n === undefined) return null;
  if (n < 2) throw new KvEventDecodeError("batch: expected [ts, events, rank?]");
  const ts = r.read(0);
  if (typeof ts !== "number") throw new KvEventDecodeError("batch ts: expected a number");
  const m = r.arrayHeader();
  if (m === undefined) throw new KvEventDecodeError("batch events: expected an array");
  const events: KvEvent[] = [];
  let unknownEvents = 0;
  for (let i = 0; i < m; i++) {
    const e = readEvent(r);
    if (e === null) unknownEvents++;
    else events.push(e);
  }
  const rank = n > 2 ? r.read(0) : null;
  for (let i = 3; i < n; i++) r.read(0);
  if (!r.done) throw new KvEventDecodeError("bad msgpack: trailing bytes");
  return { batch: { ts, events, dataParallelRank: optInt(rank, "data_parallel_rank") }, unknownEvents };
}

function readHashes(r: MsgpackReader): HashList {
  const k = r.arrayHeader();
  if (k === undefined) return decodeHashes(r.read(0), "block_hashes");
  if (k > r.buf.length - r.pos) throw new KvEventDecodeError("block_hashes: truncated");
  const out = new Uint32Array(2 * k);
  for (let i = 0; i < k; i++) if (!r.hashInto(out, i)) putHash(out, i, r.read(0), "block_hashes");
  return out;
}

function readTokens(r: MsgpackReader): Uint32Array {
  const k = r.arrayHeader();
  if (k === undefined) return decodeTokens(r.read(0));
  if (k > r.buf.length - r.pos) throw new KvEventDecodeError("token_ids: truncated");
  const out = new Uint32Array(k);
  for (let i = r.uint32sInto(out, 0, k); i < k; i = r.uint32sInto(out, i + 1, k)) {
    // a value of another shape (e.g. a negative fixint): generic read
    const v = r.read(0);
    if (typeof v !== "number") throw new KvEventDecodeError("token_ids: expected integers");
    out[i] = v;
  }
  return out;
}

const tmpHash = new Uint32Array(2);

function readParent(r: MsgpackReader): U64 | null {
  if (r.buf[r.pos] === 0xc0) {
    r.pos++;
    return null;
  }
  if (r.hashInto(tmpHash, 0)) return new U64(tmpHash[0]!, tmpHash[1]!);
  return decodeParent(r.read(0));
}

const TAG_STORED = new FixStr("BlockStored");
const TAG_REMOVED = new FixStr("BlockRemoved");

/** One event at the reader's position (array events fast, others generic). */
function readEvent(r: MsgpackReader): KvEvent | null {
  const len = r.arrayHeader();
  if (len === undefined) return decodeEvent(r.read(1));
  if (len === 0) throw new KvEventDecodeError("event has no string tag");
  const tag = r.fixstr(TAG_STORED) ? "BlockStored" : r.fixstr(TAG_REMOVED) ? "BlockRemoved" : r.read(1);
  if ((tag === "BlockStored" && len >= 4) || (tag === "BlockRemoved" && len >= 2)) {
    const blockHashes = readHashes(r);
    if (tag === "BlockRemoved") {
      const medium = len > 2 ? optStr(r.read(1), "medium") : null;
      const groupIdx = len > 3 ? optInt(r.read(1), "group_idx") : null;
      for (let f = 4; f < len; f++) r.read(1);
      return { type: "BlockRemoved", blockHashes, medium, groupIdx };
    }
    const parentBlockHash = readParent(r);
    const tokenIds = readTokens(r);
    // remaining positional fields, each optional (trailing defaults omitted)
    const blockSize = len > 4 ? (optInt(r.read(1), "block_size") ?? 0) : 0;
    const loraId = len > 5 && !r.nil() ? optInt(r.read(1), "lora_id") : null;
    const medium = len > 6 ? optStr(r.read(1), "medium") : null;
    const loraName = len > 7 && !r.nil() ? optStr(r.read(1), "lora_name") : null;
    const extraKeys = len > 8 ? r.read(1) : null;
    const groupIdx = len > 9 ? optInt(r.read(1), "group_idx") : null;
    const kvCacheSpecKind = len > 10 ? optStr(r.read(1), "kv_cache_spec_kind") : null;
    const kvCacheSpecSlidingWindow = len > 11 ? optInt(r.read(1), "kv_cache_spec_sliding_window") : null;
    for (let f = 12; f < len; f++) r.read(1);
    return {
      type: "BlockStored",
      blockHashes,
      parentBlockHash,
      tokenIds,
      blockSize,
      loraId,
      medium,
      loraName,
      extraKeys,
      groupIdx,
      kvCacheSpecKind,
      kvCacheSpecSlidingWindow,
    };
  }
  const arr: MsgValue[] = [tag];
  for (let f = 1; f < len; f++) arr.push(r.read(1));
  return decodeEvent(arr);
}

/** Generic path: any root shape (map batches). */
function decodeBatchGeneric(payload: Uint8Array): DecodedBatch {
  let root: MsgValue;
  try {
    root = decodeMsgpack(payload);
  } catch (err) {
    if (err instanceof MsgpackError) throw new KvEventDecodeError(`bad msgpack: ${err.message}`);
    throw err;
  }
  let ts: MsgValue | undefined;
  let events: MsgValue | undefined;
  let rank: MsgValue | undefined;
  if (Array.isArray(root)) {
    [ts, events, rank] = root;
  } else if (
    root !== null &&
    typeof root === "object" &&
    !(root instanceof U64) &&
    !(root instanceof Uint8Array)
  ) {
    const o = root as { [key: string]: MsgValue };
    ts = o.ts;
    events = o.events;
    rank = o.data_parallel_rank;
  } else {
    throw new KvEventDecodeError("batch is neither an array nor a map");
  }
  if (typeof ts !== "number") throw new KvEventDecodeError("batch ts: expected a number");
  if (!Array.isArray(events)) throw new KvEventDecodeError("batch events: expected an array");
  const out: KvEvent[] = [];
  let unknownEvents = 0;
  for (const ev of events) {
    const e = decodeEvent(ev);
    if (e === null) unknownEvents++;
    else out.push(e);
  }
  return {
    batch: { ts, events: out, dataParallelRank: optInt(rank, "data_parallel_rank") },
    unknownEvents,
  };
}

/** Convenience constructor of a {@link BlockStoredEvent} with defaults for optional fields. */
export function blockStored(
  e: Pick<BlockStoredEvent, "blockHashes" | "tokenIds" | "blockSize"> & Partial<BlockStoredEvent>,
): BlockStoredEvent {
  return {
    type: "BlockStored",
    parentBlockHash: null,
    loraId: null,
    medium: "GPU",
    loraName: null,
    extraKeys: null,
    groupIdx: null,
    kvCacheSpecKind: null,
    kvCacheSpecSlidingWindow: null,
    ...e,
  };
}
