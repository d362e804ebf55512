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
 *
 * {@link decodeBatchFlat} decodes the common array-form batch into reused column buffers
 * ({@link FlatBatch}) instead of event objects, for ingestion (ingest.ts); it declines any
 * other shape, which {@link decodeBatch} then handles.
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

// ---------------------------------------------------------------- flat decode (no event objects)

/** Event kinds of a {@link FlatBatch}. */
export const FLAT_STORED = 0;
export const FLAT_REMOVED = 1;
export const FLAT_CLEARED = 2;

/**
 * A decoded batch as columns in reusable buffers (see {@link decodeBatchFlat}): event `i` has
 * kind `kind[i]`, engine hashes at pairs `hashes[2·hashFrom[i] ..]` (`hashCount[i]` of them) and,
 * for `BlockStored`, tokens `tokens[tokenFrom[i] .. + tokenCount[i])`, a parent when
 * `hasParent[i]`, a block size (0 = absent), a medium and a LoRA name. Fields the index ignores
 * (lora_id, extra_keys, group_idx, kv_cache_spec_*, data_parallel_rank) are checked against the
 * shapes the flat decoder handles but not kept. Valid until the next decode into it.
 */
export class FlatBatch {
  ts = 0;
  /** number of events */
  n = 0;
  kind = new Uint8Array(16);
  hashFrom = new Int32Array(16);
  hashCount = new Int32Array(16);
  hasParent = new Uint8Array(16);
  parentHi = new Uint32Array(16);
  parentLo = new Uint32Array(16);
  tokenFrom = new Int32Array(16);
  tokenCount = new Int32Array(16);
  blockSize = new Uint32Array(16);
  medium: (string | null)[] = [];
  loraName: (string | null)[] = [];
  /** hash pairs of all events */
  hashes = new Uint32Array(2 * 64);
  /** tokens of all events */
  tokens = new Uint32Array(1024);

  /** Makes room for event `i`. */
  reserveEvent(i: number): void {
    if (i < this.kind.length) return;
    const n = this.kind.length * 2;
    this.kind = growTo(this.kind, n);
    this.hashFrom = growTo(this.hashFrom, n);
    this.hashCount = growTo(this.hashCount, n);
    this.hasParent = growTo(this.hasParent, n);
    this.parentHi = growTo(this.parentHi, n);
    this.parentLo = growTo(this.parentLo, n);
    this.tokenFrom = growTo(this.tokenFrom, n);
    this.tokenCount = growTo(this.tokenCount, n);
    this.blockSize = growTo(this.blockSize, n);
  }
}

function growTo<T extends Uint8Array | Int32Array | Uint32Array>(a: T, n: number): T {
  const b = new (a.constructor as new (n: number) => T)(n);
  b.set(a);
  return b;
}

// The flat decoder reads bytes straight from the payload at position `S.p` (no reader
// object, no DataView): every read checks its bounds and reports anything it does not handle.

/** position of the flat decoder in the payload */
const S = { p: 0 };

/** width in bytes of a non-negative integer below 2^32 by its first byte (0 = another shape) */
const UW = new Uint8Array(256);
UW.fill(1, 0, 0x80);
UW[0xcc] = 2;
UW[0xcd] = 3;
UW[0xce] = 5;

function be32(b: Uint8Array, p: number): number {
  return ((b[p]! << 24) | (b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!) >>> 0;
}

/** An array header → its length, or -1 (nothing consumed). */
function fArr(b: Uint8Array): number {
  const h = b[S.p]!;
  if (h >= 0x90 && h <= 0x9f) {
    S.p++;
    return h & 0x0f;
  }
  if (h === 0xdc && S.p + 3 <= b.length) {
    S.p += 3;
    return (b[S.p - 2]! << 8) | b[S.p - 1]!;
  }
  if (h === 0xdd && S.p + 5 <= b.length) {
    S.p += 5;
    return be32(b, S.p - 4);
  }
  return -1;
}

/** A non-negative integer below 2^32 → its value, or -1 (nothing consumed). */
function fUint(b: Uint8Array): number {
  if (S.p >= b.length) return -1;
  const h = b[S.p]!;
  const w = UW[h]!;
  if (w === 0 || S.p + w > b.length) return -1;
  const p = S.p;
  S.p += w;
  return w === 1 ? h : w === 2 ? b[p + 1]! : w === 3 ? (b[p + 1]! << 8) | b[p + 2]! : be32(b, p + 1);
}

/** Consumes a nil → true. */
function fNil(b: Uint8Array): boolean {
  if (b[S.p] === 0xc0) {
    S.p++;
    return true;
  }
  return false;
}

/** nil or a non-negative integer below 2^32 → true (consumed). */
function fOptUint(b: Uint8Array): boolean {
  return fNil(b) || fUint(b) >= 0;
}

/**
 * A hash (uint64, int64, smaller non-negative int, bin8 — last 8 bytes big-endian) into pair `i`
 * of `out` → true; false for another shape.
 */
function fHash(b: Uint8Array, out: Uint32Array, i: number): boolean {
  const h = b[S.p]!;
  if (h === 0xcf || h === 0xd3) {
    if (S.p + 9 > b.length) return false;
    out[2 * i] = be32(b, S.p + 1);
    out[2 * i + 1] = be32(b, S.p + 5);
    S.p += 9;
    return true;
  }
  if (h === 0xc4) {
    if (S.p + 2 > b.length) return false;
    const n = b[S.p + 1]!;
    const end = S.p + 2 + n;
    if (end > b.length) return false;
    let hi = 0;
    let lo = 0;
    for (let k = Math.max(S.p + 2, end - 8); k < end; k++) {
      hi = ((hi << 8) | (lo >>> 24)) >>> 0;
      lo = ((lo << 8) | b[k]!) >>> 0;
    }
    out[2 * i] = hi;
    out[2 * i + 1] = lo;
    S.p = end;
    return true;
  }
  const v = fUint(b);
  if (v < 0) return false;
  out[2 * i] = 0;
  out[2 * i + 1] = v;
  return true;
}

/** two most recent strings of the flat decoder (media, LoRA names repeat) */
let strA = "";
let strB = "";

/** nil → null, an ASCII string → it (recent ones reused), anything else → undefined. */
function fOptStr(b: Uint8Array): string | null | undefined {
  const h = b[S.p]!;
  if (h === 0xc0) {
    S.p++;
    return null;
  }
  let n: number;
  let p: number;
  if (h >= 0xa0 && h <= 0xbf) {
    n = h & 0x1f;
    p = S.p + 1;
  } else if (h === 0xd9 && S.p + 2 <= b.length) {
    n = b[S.p + 1]!;
    p = S.p + 2;
  } else return undefined;
  if (p + n > b.length) return undefined;
  if (sameStr(b, p, n, strA)) {
    S.p = p + n;
    return strA;
  }
  if (sameStr(b, p, n, strB)) {
    S.p = p + n;
    const t = strA;
    strA = strB;
    strB = t;
    return strA;
  }
  for (let k = p; k < p + n; k++) if (b[k]! >= 0x80) return undefined;
  const v = String.fromCharCode(...b.subarray(p, p + n));
  strB = strA;
  strA = v;
  S.p = p + n;
  return v;
}

function sameStr(b: Uint8Array, p: number, n: number, s: string): boolean {
  if (s.length !== n) return false;
  for (let k = 0; k < n; k++) if (s.charCodeAt(k) !== b[p + k]) return false;
  return true;
}

/** Skips `tag` (a {@link FixStr}) → true; false (nothing consumed) for anything else. */
function fTag(b: Uint8Array, tag: FixStr): boolean {
  const n = tag.length;
  if (b[S.p] !== (0xa0 | n) || S.p + 1 + n > b.length) return false;
  const t = tag.bytes;
  for (let k = 0; k < n; k++) if (b[S.p + 1 + k] !== t[k]) return false;
  S.p += 1 + n;
  return true;
}

/** An array of hashes into `f.hashes` from pair `from` → its length, or -1. */
function fHashes(b: Uint8Array, f: FlatBatch, from: number): number {
  const k = fArr(b);
  if (k < 0 || k > b.length - S.p) return -1;
  if (2 * (from + k) > f.hashes.length)
    f.hashes = growTo(f.hashes, Math.max(2 * f.hashes.length, 2 * (from + k)));
  const h = f.hashes;
  for (let i = from; i < from + k; i++) if (!fHash(b, h, i)) return -1;
  return k;
}

/** Token ids (array of non-negative ints below 2^32) into `f.tokens` from `from` → count, or -1. */
function fTokens(b: Uint8Array, f: FlatBatch, from: number): number {
  const k = fArr(b);
  if (k < 0 || k > b.length - S.p) return -1;
  if (from + k > f.tokens.length) f.tokens = growTo(f.tokens, Math.max(2 * f.tokens.length, from + k));
  const out = f.tokens;
  let p = S.p;
  const len = b.length;
  const end = from + k;
  let i = from;
  // while 5 bytes remain: the width from a table, the value from one 32-bit read shifted into
  // place (mixed widths cost no mispredicted branches)
  for (; i < end && p + 5 <= len; i++) {
    const h = b[p]!;
    const w = UW[h]!;
    if (w === 0) return -1;
    out[i] = w === 1 ? h : be32(b, p + 1) >>> (40 - 8 * w);
    p += w;
  }
  S.p = p;
  for (; i < end; i++) {
    const v = fUint(b);
    if (v < 0) return -1;
    out[i] = v;
  }
  return k;
}

/** One event into slot `i` of `f` → true; false when it is not of a plain shape (see decodeBatchFlat). */
function flatEvent(b: Uint8Array, f: FlatBatch, i: number, hashPos: number, tokenPos: number): boolean {
  const len = fArr(b);
  if (len <= 0) return false;
  f.reserveEvent(i);
  f.hashFrom[i] = hashPos;
  f.tokenFrom[i] = tokenPos;
  f.tokenCount[i] = 0;
  if (fTag(b, TAG_STORED)) {
    if (len < 4) return false;
    f.kind[i] = FLAT_STORED;
    const k = fHashes(b, f, hashPos);
    if (k < 0) return false;
    f.hashCount[i] = k;
    if (fNil(b)) f.hasParent[i] = 0;
    else {
      if (!fHash(b, tmpHash, 0)) return false;
      f.hasParent[i] = 1;
      f.parentHi[i] = tmpHash[0]!;
      f.parentLo[i] = tmpHash[1]!;
    }
    if (!fNil(b)) {
      const nt = fTokens(b, f, tokenPos);
      if (nt < 0) return false;
      f.tokenCount[i] = nt;
    }
    f.blockSize[i] = 0;
    if (len > 4 && !fNil(b)) {
      const bs = fUint(b);
      if (bs < 0) return false;
      f.blockSize[i] = bs;
    }
    if (len > 5 && !fOptUint(b)) return false; // lora_id
    const medium = len > 6 ? fOptStr(b) : null;
    if (medium === undefined) return false;
    f.medium[i] = medium;
    const lora = len > 7 ? fOptStr(b) : null;
    if (lora === undefined) return false;
    f.loraName[i] = lora;
    if (len > 8 && !fNil(b)) return false; // extra_keys: only the default (nil) is handled here
    if (len > 9 && !fOptUint(b)) return false; // group_idx
    if (len > 10 && fOptStr(b) === undefined) return false; // kv_cache_spec_kind
    if (len > 11 && !fOptUint(b)) return false; // kv_cache_spec_sliding_window
    return len <= 12;
  }
  if (fTag(b, TAG_REMOVED)) {
    if (len < 2) return false;
    f.kind[i] = FLAT_REMOVED;
    const k = fHashes(b, f, hashPos);
    if (k < 0) return false;
    f.hashCount[i] = k;
    const medium = len > 2 ? fOptStr(b) : null;
    if (medium === undefined) return false;
    f.medium[i] = medium;
    if (len > 3 && !fOptUint(b)) return false; // group_idx
    return len <= 4;
  }
  if (fTag(b, TAG_CLEARED)) {
    f.kind[i] = FLAT_CLEARED;
    f.hashCount[i] = 0;
    return len === 1;
  }
  return false;
}

const f64 = new DataView(new ArrayBuffer(8));

/** A batch ts (float64 or non-negative int below 2^32) → it, or -1. */
function fTs(b: Uint8Array): number {
  if (b[S.p] === 0xcb && S.p + 9 <= b.length) {
    for (let k = 0; k < 8; k++) f64.setUint8(k, b[S.p + 1 + k]!);
    S.p += 9;
    const v = f64.getFloat64(0);
    return v >= 0 ? v : -1;
  }
  return fUint(b);
}

const TAG_CLEARED = new FixStr("AllBlocksCleared");

/**
 * Decodes an array-form batch (`[ts, [events…], rank?]`, ts a non-negative float64 or int, rank
 * nil or a non-negative int) whose events are all array-form `BlockStored` / `BlockRemoved` /
 * `AllBlocksCleared` with plainly typed fields (hashes as ints or bin8, token ids and sizes as
 * non-negative ints below 2^32, media and names as ASCII strings or nil, extra_keys nil, no
 * fields beyond the known ones) into `out`, reading the bytes directly and allocating nothing
 * per event. The result equals {@link decodeBatch}'s on every field it keeps.
 * @returns false when the payload is of any other shape (map batch or events, unknown tags,
 *   other field types) or malformed, `out` then being unspecified: the caller decodes it with
 *   {@link decodeBatch}, which gives the events or the error
 */
export function decodeBatchFlat(payload: Uint8Array, out: FlatBatch): boolean {
  const b = payload;
  S.p = 0;
  const n = fArr(b);
  if (n < 2) return false;
  const ts = fTs(b);
  if (ts < 0) return false;
  const m = fArr(b);
  if (m < 0) return false;
  let hashPos = 0;
  let tokenPos = 0;
  for (let i = 0; i < m; i++) {
    if (!flatEvent(b, out, i, hashPos, tokenPos)) return false;
    hashPos += out.hashCount[i]!;
    tokenPos += out.tokenCount[i]!;
  }
  if (n > 2 && !fOptUint(b)) return false; // data_parallel_rank
  if (n > 3 || S.p !== b.length) return false;
  out.ts = ts;
  out.n = m;
  return true;
}
