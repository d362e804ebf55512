/**
 * A small MessagePack encoder and decoder for KV-event payloads, written for exact control over
 * 64-bit integers (block hashes are uint64 and must not lose precision) and to avoid BigInt
 * allocation on the hot path.
 *
 * - Decoding: 64-bit integers (`0xcf` uint64, `0xd3` int64) become {@link U64} (two uint32
 *   halves, int64 reinterpreted as its two's-complement uint64); every other integer becomes a
 *   `number`; `bin` becomes a `Uint8Array` view of the input; `str` a string; maps a plain
 *   object (string keys) — KV-event maps only have string keys; ext types are rejected.
 * - Encoding: integers in the shortest form (as msgspec does: non-negative → positive fixint /
 *   uint8/16/32/64, negative → negative fixint / int8/16/32/64), `bigint` as uint64/int64 by
 *   value, floats as float64, strings as fixstr/str8/16/32, `Uint8Array` as bin.
 *
 * Source of the format: msgpack spec (https://github.com/msgpack/msgpack/blob/master/spec.md);
 * vLLM encodes KV events with `msgspec.msgpack.Encoder` (reference/engine.md §3.2).
 */

/** A 64-bit unsigned integer as two uint32 halves (`hi`·2^32 + `lo`). */
export class U64 {
  constructor(
    readonly hi: number,
    readonly lo: number,
  ) {}
  /** The value as a bigint (0 ≤ v < 2^64). */
  toBigInt(): bigint {
    return (BigInt(this.hi) << 32n) | BigInt(this.lo);
  }
  /** From a bigint; the value is taken modulo 2^64 (negative int64 → two's complement). */
  static fromBigInt(v: bigint): U64 {
    const u = BigInt.asUintN(64, v);
    return new U64(Number(u >> 32n), Number(u & 0xffffffffn));
  }
}

/** A decoded msgpack value. */
export type MsgValue =
  | null
  | boolean
  | number
  | string
  | U64
  | Uint8Array
  | MsgValue[]
  | { [key: string]: MsgValue };

/** Thrown on malformed or unsupported msgpack input. */
export class MsgpackError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "MsgpackError";
  }
}

const textDecoder = new TextDecoder();

/** Interning of short ASCII strings (direct-mapped cache by FNV-1a of the bytes). */
const INTERN_MAX = 32;
const INTERN_SLOTS = 256;
const internStr: (string | undefined)[] = new Array(INTERN_SLOTS);
const internLen = new Int32Array(INTERN_SLOTS);
const internHash = new Int32Array(INTERN_SLOTS);

/** Bytes taken by a non-negative integer below 2^32 by its first byte (0 = another shape). */
const UINT_WIDTH = new Uint8Array(256);
UINT_WIDTH.fill(1, 0, 0x80);
UINT_WIDTH[0xcc] = 2;
UINT_WIDTH[0xcd] = 3;
UINT_WIDTH[0xce] = 5;

/** A short ASCII string prepared for {@link MsgpackReader.fixstr}. */
export class FixStr {
  readonly bytes: Uint8Array;
  /** the bytes as big-endian uint32 words (whole words only) */
  readonly words: Uint32Array;
  readonly length: number;
  /** @throws RangeError unless `value` is ASCII and at most 31 bytes (a fixstr) */
  constructor(readonly value: string) {
    if (!/^[\x00-\x7f]{0,31}$/.test(value)) throw new RangeError("FixStr: ASCII, ≤ 31 bytes");
    this.bytes = Uint8Array.from(value, (c) => c.charCodeAt(0));
    this.length = this.bytes.length;
    const dv = new DataView(this.bytes.buffer);
    this.words = Uint32Array.from({ length: this.length >> 2 }, (_, k) => dv.getUint32(4 * k));
  }
}

/**
 * Decodes one msgpack value occupying the whole of `buf`.
 * @throws MsgpackError on truncated input, trailing bytes, ext types or non-string map keys
 */
export function decodeMsgpack(buf: Uint8Array): MsgValue {
  const r = new MsgpackReader(buf);
  const v = r.read(0);
  if (r.pos !== buf.length) throw new MsgpackError(`trailing bytes: ${buf.length - r.pos}`);
  return v;
}

const MAX_DEPTH = 64;

/**
 * A msgpack reader over one buffer: {@link read} decodes any value (see module doc); the typed
 * helpers read known shapes straight into typed arrays and return `undefined` without consuming
 * anything when the next value has another shape (the caller then falls back to {@link read}).
 */
export class MsgpackReader {
  pos = 0;
  private readonly view: DataView;
  constructor(readonly buf: Uint8Array) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  /** Whether the whole buffer was consumed. */
  get done(): boolean {
    return this.pos === this.buf.length;
  }

  /**
   * Reads an array header (fixarray, array16, array32).
   * @returns the length, or undefined (nothing consumed) when the next value is not an array
   */
  arrayHeader(): number | undefined {
    this.need(1);
    const b = this.buf[this.pos]!;
    if (b >= 0x90 && b <= 0x9f) {
      this.pos++;
      return b & 0x0f;
    }
    if (b === 0xdc) {
      this.need(3);
      this.pos += 3;
      return this.view.getUint16(this.pos - 2);
    }
    if (b === 0xdd) {
      this.need(5);
      this.pos += 5;
      return this.view.getUint32(this.pos - 4);
    }
    return undefined;
  }

  /** Reads a non-negative integer below 2^32 into a number, or undefined (nothing consumed). */
  smallUint(): number | undefined {
    this.need(1);
    const b = this.buf[this.pos]!;
    if (b <= 0x7f) {
      this.pos++;
      return b;
    }
    if (b === 0xcc) {
      this.need(2);
      this.pos += 2;
      return this.buf[this.pos - 1]!;
    }
    if (b === 0xcd) {
      this.need(3);
      this.pos += 3;
      return this.view.getUint16(this.pos - 2);
    }
    if (b === 0xce) {
      this.need(5);
      this.pos += 5;
      return this.view.getUint32(this.pos - 4);
    }
    return undefined;
  }

  /**
   * Reads up to `n − i` consecutive non-negative integers below 2^32 (positive fixint, uint8/16/32)
   * into `out[i ..]`, stopping before the first value of another shape.
   * @returns the index after the last value read (`n` when all were read)
   */
  uint32sInto(out: Uint32Array, i: number, n: number): number {
    const buf = this.buf;
    const v = this.view;
    const len = buf.length;
    let p = this.pos;
    // while 5 bytes remain: the width comes from a table and the value from one big-endian
    // 32-bit read shifted into place, so that mixed widths cost no mispredicted branches
    for (; i < n && p + 5 <= len; i++) {
      const b = buf[p]!;
      const w = UINT_WIDTH[b]!;
      if (w === 0) break;
      out[i] = w === 1 ? b : v.getUint32(p + 1) >>> (40 - 8 * w);
      p += w;
    }
    for (; i < n && p < len; i++) {
      const b = buf[p]!;
      const w = UINT_WIDTH[b]!;
      if (w === 0 || p + w > len) break;
      out[i] = w === 1 ? b : w === 2 ? buf[p + 1]! : w === 3 ? v.getUint16(p + 1) : v.getUint32(p + 1);
      p += w;
    }
    this.pos = p;
    return i;
  }

  /** Consumes a nil and returns true, or returns false (nothing consumed). */
  nil(): boolean {
    if (this.pos < this.buf.length && this.buf[this.pos] === 0xc0) {
      this.pos++;
      return true;
    }
    return false;
  }

  /**
   * Consumes the string `m` (see {@link FixStr}) and returns true, or returns false (nothing
   * consumed) when the next value is anything else.
   */
  fixstr(m: FixStr): boolean {
    const buf = this.buf;
    const p = this.pos;
    const n = m.length;
    if (p + 1 + n > buf.length || buf[p] !== (0xa0 | n)) return false;
    const v = this.view;
    const words = m.words;
    let k = 0;
    for (; 4 * k + 4 <= n; k++) if (v.getUint32(p + 1 + 4 * k) !== words[k]) return false;
    for (let i = 4 * k; i < n; i++) if (buf[p + 1 + i] !== m.bytes[i]) return false;
    this.pos = p + 1 + n;
    return true;
  }

  /**
   * Reads an integer or byte-string hash into `out[2i]` (hi) and `out[2i+1]` (lo): uint64 and
   * int64 as their 64 bits, smaller non-negative ints as themselves, bytes as their last 8 bytes
   * big-endian. Returns false (nothing consumed) for any other shape.
   */
  hashInto(out: Uint32Array, i: number): boolean {
    this.need(1);
    const b = this.buf[this.pos]!;
    if (b === 0xcf || b === 0xd3) {
      this.need(9);
      out[2 * i] = this.view.getUint32(this.pos + 1);
      out[2 * i + 1] = this.view.getUint32(this.pos + 5);
      this.pos += 9;
      return true;
    }
    const small = this.smallUint();
    if (small !== undefined) {
      out[2 * i] = 0;
      out[2 * i + 1] = small;
      return true;
    }
    if (b === 0xc4 || b === 0xc5 || b === 0xc6) {
      const v = this.read(0) as Uint8Array;
      let hi = 0;
      let lo = 0;
      for (let k = Math.max(0, v.length - 8); k < v.length; k++) {
        hi = ((hi << 8) | (lo >>> 24)) >>> 0;
        lo = ((lo << 8) | v[k]!) >>> 0;
      }
      out[2 * i] = hi;
      out[2 * i + 1] = lo;
      return true;
    }
    return false;
  }

  private need(n: number): void {
    if (this.pos + n > this.buf.length) throw new MsgpackError("truncated msgpack input");
  }

  read(depth: number): MsgValue {
    if (depth > MAX_DEPTH) throw new MsgpackError("msgpack nesting too deep");
    this.need(1);
    const b = this.buf[this.pos++]!;
    if (b <= 0x7f) return b;
    if (b >= 0xe0) return b - 0x100;
    if (b >= 0xa0 && b <= 0xbf) return this.str(b & 0x1f);
    if (b >= 0x90 && b <= 0x9f) return this.arr(b & 0x0f, depth);
    if (b >= 0x80 && b <= 0x8f) return this.map(b & 0x0f, depth);
    const v = this.view;
    switch (b) {
      case 0xc0:
        return null;
      case 0xc2:
        return false;
      case 0xc3:
        return true;
      case 0xc4:
        this.need(1);
        return this.bin(this.buf[this.pos++]!);
      case 0xc5:
        this.need(2);
        this.pos += 2;
        return this.bin(v.getUint16(this.pos - 2));
      case 0xc6:
        this.need(4);
        this.pos += 4;
        return this.bin(v.getUint32(this.pos - 4));
      case 0xca:
        this.need(4);
        this.pos += 4;
        return v.getFloat32(this.pos - 4);
      case 0xcb:
        this.need(8);
        this.pos += 8;
        return v.getFloat64(this.pos - 8);
      case 0xcc:
        this.need(1);
        return this.buf[this.pos++]!;
      case 0xcd:
        this.need(2);
        this.pos += 2;
        return v.getUint16(this.pos - 2);
      case 0xce:
        this.need(4);
        this.pos += 4;
        return v.getUint32(this.pos - 4);
      case 0xcf:
      case 0xd3:
        this.need(8);
        this.pos += 8;
        return new U64(v.getUint32(this.pos - 8), v.getUint32(this.pos - 4));
      case 0xd0:
        this.need(1);
        this.pos += 1;
        return v.getInt8(this.pos - 1);
      case 0xd1:
        this.need(2);
        this.pos += 2;
        return v.getInt16(this.pos - 2);
      case 0xd2:
        this.need(4);
        this.pos += 4;
        return v.getInt32(this.pos - 4);
      case 0xd9:
        this.need(1);
        return this.str(this.buf[this.pos++]!);
      case 0xda:
        this.need(2);
        this.pos += 2;
        return this.str(v.getUint16(this.pos - 2));
      case 0xdb:
        this.need(4);
        this.pos += 4;
        return this.str(v.getUint32(this.pos - 4));
      case 0xdc:
        this.need(2);
        this.pos += 2;
        return this.arr(v.getUint16(this.pos - 2), depth);
      case 0xdd:
        this.need(4);
        this.pos += 4;
        return this.arr(v.getUint32(this.pos - 4), depth);
      case 0xde:
        this.need(2);
        this.pos += 2;
        return this.map(v.getUint16(this.pos - 2), depth);
      case 0xdf:
        this.need(4);
        this.pos += 4;
        return this.map(v.getUint32(this.pos - 4), depth);
      default:
        throw new MsgpackError(`unsupported msgpack type byte 0x${b.toString(16)}`);
    }
  }

  private bin(n: number): Uint8Array {
    this.need(n);
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  private str(n: number): string {
    this.need(n);
    const start = this.pos;
    this.pos += n;
    // short strings (event tags, media, field and model names) are interned: no allocation
    if (n <= INTERN_MAX) {
      let h = 0x811c9dc5;
      for (let i = start; i < start + n; i++) h = Math.imul(h ^ this.buf[i]!, 0x01000193);
      const slot = (h >>> 0) & (INTERN_SLOTS - 1);
      const cached = internStr[slot];
      if (cached !== undefined && internLen[slot] === n && internHash[slot] === h) {
        let same = true;
        for (let i = 0; i < n; i++) {
          if (cached.charCodeAt(i) !== this.buf[start + i]) {
            same = false;
            break;
          }
        }
        if (same) return cached;
      }
      let ascii = true;
      for (let i = start; i < start + n; i++) if (this.buf[i]! >= 0x80) ascii = false;
      if (ascii) {
        const v = String.fromCharCode(...this.buf.subarray(start, start + n));
        internStr[slot] = v;
        internLen[slot] = n;
        internHash[slot] = h;
        return v;
      }
    }
    return textDecoder.decode(this.buf.subarray(start, start + n));
  }

  private arr(n: number, depth: number): MsgValue[] {
    // each element takes at least one byte: reject absurd lengths before allocating
    if (n > this.buf.length - this.pos) throw new MsgpackError("truncated msgpack input");
    const out = new Array<MsgValue>(n);
    for (let i = 0; i < n; i++) out[i] = this.read(depth + 1);
    return out;
  }

  private map(n: number, depth: number): { [key: string]: MsgValue } {
    if (2 * n > this.buf.length - this.pos) throw new MsgpackError("truncated msgpack input");
    const out: { [key: string]: MsgValue } = {};
    for (let i = 0; i < n; i++) {
      const k = this.read(depth + 1);
      if (typeof k !== "string") throw new MsgpackError("msgpack map key is not a string");
      out[k] = this.read(depth + 1);
    }
    return out;
  }
}

/** A value the encoder accepts. `undefined` is not allowed (use null). */
export type EncodableValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | U64
  | Uint8Array
  | readonly EncodableValue[]
  | { readonly [key: string]: EncodableValue };

/**
 * Encodes a value as msgpack (see module doc for the integer forms).
 * @throws MsgpackError for unsupported values (undefined, functions, non-finite bigints out of
 *   the int64/uint64 range)
 */
export function encodeMsgpack(value: EncodableValue): Uint8Array {
  const w = new Writer();
  w.write(value);
  return w.finish();
}

const textEncoder = new TextEncoder();

class Writer {
  private buf = new Uint8Array(256);
  private view = new DataView(this.buf.buffer);
  private pos = 0;

  finish(): Uint8Array {
    return this.buf.slice(0, this.pos);
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const nb = new Uint8Array(size);
    nb.set(this.buf.subarray(0, this.pos));
    this.buf = nb;
    this.view = new DataView(nb.buffer);
  }

  private u8(b: number): void {
    this.ensure(1);
    this.buf[this.pos++] = b;
  }

  private head(b: number, n: number, bytes: 1 | 2 | 4 | 8): void {
    this.ensure(1 + bytes);
    this.buf[this.pos++] = b;
    if (bytes === 1) this.buf[this.pos] = n;
    else if (bytes === 2) this.view.setUint16(this.pos, n);
    else if (bytes === 4) this.view.setUint32(this.pos, n);
    this.pos += bytes;
  }

  write(v: EncodableValue): void {
    if (v === null) {
      this.u8(0xc0);
      return;
    }
    if (v === true) {
      this.u8(0xc3);
      return;
    }
    if (v === false) {
      this.u8(0xc2);
      return;
    }
    if (typeof v === "number") {
      this.num(v);
      return;
    }
    if (typeof v === "bigint") {
      this.big(v);
      return;
    }
    if (typeof v === "string") {
      this.str(v);
      return;
    }
    if (v instanceof U64) {
      this.u64(v.hi, v.lo);
      return;
    }
    if (v instanceof Uint8Array) {
      const n = v.length;
      if (n < 0x100) this.head(0xc4, n, 1);
      else if (n < 0x10000) this.head(0xc5, n, 2);
      else this.head(0xc6, n, 4);
      this.ensure(n);
      this.buf.set(v, this.pos);
      this.pos += n;
      return;
    }
    if (Array.isArray(v)) {
      const n = v.length;
      if (n < 16) this.u8(0x90 | n);
      else if (n < 0x10000) this.head(0xdc, n, 2);
      else this.head(0xdd, n, 4);
      for (const x of v) this.write(x);
      return;
    }
    if (typeof v === "object") {
      const keys = Object.keys(v);
      const n = keys.length;
      if (n < 16) this.u8(0x80 | n);
      else if (n < 0x10000) this.head(0xde, n, 2);
      else this.head(0xdf, n, 4);
      const o = v as { readonly [key: string]: EncodableValue };
      for (const k of keys) {
        this.str(k);
        this.write(o[k]!);
      }
      return;
    }
    throw new MsgpackError(`cannot encode ${typeof v}`);
  }

  private u64(hi: number, lo: number): void {
    this.ensure(9);
    this.buf[this.pos] = 0xcf;
    this.view.setUint32(this.pos + 1, hi);
    this.view.setUint32(this.pos + 5, lo);
    this.pos += 9;
  }

  private big(v: bigint): void {
    if (v >= 0n) {
      if (v <= 0xffffffffn) {
        this.num(Number(v));
        return;
      }
      if (v > 0xffffffffffffffffn) throw new MsgpackError("bigint above uint64");
      this.u64(Number(v >> 32n), Number(v & 0xffffffffn));
      return;
    }
    if (v >= -0x80000000n) {
      this.num(Number(v));
      return;
    }
    if (v < -0x8000000000000000n) throw new MsgpackError("bigint below int64");
    const u = BigInt.asUintN(64, v);
    this.ensure(9);
    this.buf[this.pos] = 0xd3;
    this.view.setUint32(this.pos + 1, Number(u >> 32n));
    this.view.setUint32(this.pos + 5, Number(u & 0xffffffffn));
    this.pos += 9;
  }

  private num(v: number): void {
    if (!Number.isInteger(v)) {
      this.ensure(9);
      this.buf[this.pos] = 0xcb;
      this.view.setFloat64(this.pos + 1, v);
      this.pos += 9;
      return;
    }
    if (v >= 0) {
      if (v < 0x80) {
        this.u8(v);
        return;
      }
      if (v < 0x100) {
        this.head(0xcc, v, 1);
        return;
      }
      if (v < 0x10000) {
        this.head(0xcd, v, 2);
        return;
      }
      if (v < 0x100000000) {
        this.head(0xce, v, 4);
        return;
      }
      if (!Number.isSafeInteger(v)) throw new MsgpackError("unsafe integer: pass a bigint");
      this.u64(Math.floor(v / 0x100000000), v >>> 0);
      return;
    }
    if (v >= -32) {
      this.u8(v & 0xff);
      return;
    }
    if (v >= -0x80) {
      this.head(0xd0, v & 0xff, 1);
      return;
    }
    if (v >= -0x8000) {
      this.head(0xd1, v & 0xffff, 2);
      return;
    }
    if (v >= -0x80000000) {
      this.head(0xd2, v >>> 0, 4);
      return;
    }
    if (!Number.isSafeInteger(v)) throw new MsgpackError("unsafe integer: pass a bigint");
    this.big(BigInt(v));
    return;
  }

  private str(s: string): void {
    // worst case 3 bytes per UTF-16 unit
    this.ensure(5 + s.length * 3);
    let ascii = true;
    for (let i = 0; i < s.length; i++) {
      if (s.charCodeAt(i) >= 0x80) {
        ascii = false;
        break;
      }
    }
    const bytes = ascii ? null : textEncoder.encode(s);
    const n = bytes ? bytes.length : s.length;
    if (n < 32) this.u8(0xa0 | n);
    else if (n < 0x100) this.head(0xd9, n, 1);
    else if (n < 0x10000) this.head(0xda, n, 2);
    else this.head(0xdb, n, 4);
    if (bytes) this.buf.set(bytes, this.pos);
    else for (let i = 0; i < n; i++) this.buf[this.pos + i] = s.charCodeAt(i);
    this.pos += n;
  }
}
