/**
 * A GGUF v3 writer (reference/llama-engine.md §2 "Writing our own GGUF").
 *
 * File layout: `"GGUF"`, u32 version = 3, u64 tensor_count, u64 kv_count, the metadata KVs
 * (key = GGUF string; u32 value type; value), the tensor infos (name, u32 n_dims, u64 dims with
 * ne0 first, u32 ggml type, u64 offset relative to the data section, each tensor padded to the
 * alignment), zero padding to the alignment, then the tensor data. All integers little-endian.
 * A GGUF string is a u64 byte length followed by UTF-8 bytes; an array is u32 element type,
 * u64 count, then the elements.
 *
 * Tensor data is produced lazily by a `fill` callback per tensor and streamed to the file, so
 * writing a 100 MB model does not hold it twice in memory.
 */
import { closeSync, openSync, writeSync } from "node:fs";

/** GGUF metadata value types (GGUF spec `gguf_metadata_value_type`). */
export const GGUF_TYPE = {
  u8: 0,
  i8: 1,
  u16: 2,
  i16: 3,
  u32: 4,
  i32: 5,
  f32: 6,
  bool: 7,
  string: 8,
  array: 9,
  u64: 10,
  i64: 11,
  f64: 12,
} as const;

/** Scalar metadata value type names. */
export type GgufScalarType = Exclude<keyof typeof GGUF_TYPE, "array">;

/** One metadata entry: a typed scalar, or an array of one scalar type. */
export type GgufKv =
  | { key: string; type: "string"; value: string }
  | { key: string; type: "bool"; value: boolean }
  | { key: string; type: "u64" | "i64"; value: bigint | number }
  | { key: string; type: Exclude<GgufScalarType, "string" | "bool" | "u64" | "i64">; value: number }
  | {
      key: string;
      type: "array";
      elemType: GgufScalarType;
      value: readonly (string | number | boolean | bigint)[];
    };

/** ggml tensor types this writer can produce (ggml.h `enum ggml_type`). */
export const GGML_TYPE = { f32: 0, f16: 1 } as const;

/** A tensor to write. */
export interface GgufTensor {
  /** tensor name, e.g. `blk.0.attn_q.weight` */
  name: string;
  /** dimensions, ne0 first (the fastest-varying one), e.g. `[D, V]` for `token_embd.weight` */
  dims: readonly number[];
  /** element type */
  type: keyof typeof GGML_TYPE;
  /**
   * Fills the tensor's values in element order (ne0 fastest). Called once, while writing, with
   * a Float32Array of `product(dims)` elements; F16 tensors are converted from it.
   */
  fill(out: Float32Array): void;
}

/** What {@link writeGguf} wrote. */
export interface GgufWriteResult {
  /** file size, bytes */
  bytes: number;
  /** byte offset of the tensor data section */
  dataOffset: number;
}

/** Default alignment of the data section and of each tensor, bytes (GGUF `general.alignment`). */
export const GGUF_ALIGNMENT = 32;

const f32buf = new Float32Array(1);
const u32buf = new Uint32Array(f32buf.buffer);

/**
 * IEEE 754 binary32 → binary16 bits, round to nearest even; overflow gives ±Inf, NaN stays NaN.
 */
export function f32ToF16(v: number): number {
  f32buf[0] = v;
  const x = u32buf[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let h = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (h & 1) !== 0)) h++;
    return sign | h;
  }
  let h = mant >>> 13;
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1) !== 0)) {
    h++;
    if (h === 0x400) {
      h = 0;
      e++;
      if (e >= 0x1f) return sign | 0x7c00;
    }
  }
  return sign | (e << 10) | h;
}

/** binary16 bits → number (for tests and readers). */
export function f16ToF32(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 0x1f) return m ? Number.NaN : s * Number.POSITIVE_INFINITY;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** Growable little-endian byte builder for the header. */
class Bytes {
  private buf = Buffer.alloc(1 << 16);
  len = 0;
  private ensure(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const b = Buffer.alloc(size);
    this.buf.copy(b, 0, 0, this.len);
    this.buf = b;
  }
  u8(v: number): void {
    this.ensure(1);
    this.buf.writeUInt8(v, this.len);
    this.len += 1;
  }
  i8(v: number): void {
    this.ensure(1);
    this.buf.writeInt8(v, this.len);
    this.len += 1;
  }
  u16(v: number): void {
    this.ensure(2);
    this.buf.writeUInt16LE(v, this.len);
    this.len += 2;
  }
  i16(v: number): void {
    this.ensure(2);
    this.buf.writeInt16LE(v, this.len);
    this.len += 2;
  }
  u32(v: number): void {
    this.ensure(4);
    this.buf.writeUInt32LE(v, this.len);
    this.len += 4;
  }
  i32(v: number): void {
    this.ensure(4);
    this.buf.writeInt32LE(v, this.len);
    this.len += 4;
  }
  f32(v: number): void {
    this.ensure(4);
    this.buf.writeFloatLE(v, this.len);
    this.len += 4;
  }
  f64(v: number): void {
    this.ensure(8);
    this.buf.writeDoubleLE(v, this.len);
    this.len += 8;
  }
  u64(v: bigint | number): void {
    this.ensure(8);
    this.buf.writeBigUInt64LE(BigInt(v), this.len);
    this.len += 8;
  }
  i64(v: bigint | number): void {
    this.ensure(8);
    this.buf.writeBigInt64LE(BigInt(v), this.len);
    this.len += 8;
  }
  str(s: string): void {
    const b = Buffer.from(s, "utf8");
    this.u64(b.length);
    this.ensure(b.length);
    b.copy(this.buf, this.len);
    this.len += b.length;
  }
  pad(align: number): void {
    const n = (align - (this.len % align)) % align;
    this.ensure(n);
    this.buf.fill(0, this.len, this.len + n);
    this.len += n;
  }
  bytes(): Buffer {
    return this.buf.subarray(0, this.len);
  }
}

function writeScalar(
  b: Bytes,
  type: GgufScalarType,
  v: string | number | boolean | bigint,
  key: string,
): void {
  switch (type) {
    case "string":
      if (typeof v !== "string") throw new TypeError(`${key}: expected a string`);
      b.str(v);
      return;
    case "bool":
      b.u8(v ? 1 : 0);
      return;
    case "u64":
      b.u64(v as bigint | number);
      return;
    case "i64":
      b.i64(v as bigint | number);
      return;
    default: {
      if (typeof v !== "number") throw new TypeError(`${key}: expected a number`);
      b[type](v);
    }
  }
}

/** Byte size of one tensor's data. */
export function tensorBytes(t: Pick<GgufTensor, "dims" | "type">): number {
  let n = 1;
  for (const d of t.dims) n *= d;
  return n * (t.type === "f16" ? 2 : 4);
}

/**
 * Writes a GGUF v3 file.
 * @param path output file (created or truncated)
 * @param kvs metadata in file order; `general.alignment` is honoured if present (u32)
 * @param tensors tensors in file order
 * @returns file size and data offset, bytes
 * @throws TypeError on a value of the wrong type; RangeError on a duplicate key or tensor name
 *   or an empty/non-integer dimension; fs errors from writing
 */
export function writeGguf(
  path: string,
  kvs: readonly GgufKv[],
  tensors: readonly GgufTensor[],
): GgufWriteResult {
  const keys = new Set<string>();
  let align = GGUF_ALIGNMENT;
  for (const kv of kvs) {
    if (keys.has(kv.key)) throw new RangeError(`duplicate metadata key ${kv.key}`);
    keys.add(kv.key);
    if (kv.key === "general.alignment" && kv.type === "u32") align = kv.value;
  }
  const names = new Set<string>();
  for (const t of tensors) {
    if (names.has(t.name)) throw new RangeError(`duplicate tensor ${t.name}`);
    names.add(t.name);
    if (t.dims.length === 0 || t.dims.some((d) => !Number.isInteger(d) || d < 1)) {
      throw new RangeError(`tensor ${t.name}: bad dims [${t.dims.join(",")}]`);
    }
  }
  const h = new Bytes();
  h.u32(0x46554747); // "GGUF" little-endian
  h.u32(3);
  h.u64(tensors.length);
  h.u64(kvs.length);
  for (const kv of kvs) {
    h.str(kv.key);
    h.u32(GGUF_TYPE[kv.type]);
    if (kv.type === "array") {
      h.u32(GGUF_TYPE[kv.elemType]);
      h.u64(kv.value.length);
      for (const v of kv.value) writeScalar(h, kv.elemType, v, kv.key);
    } else writeScalar(h, kv.type, kv.value, kv.key);
  }
  let offset = 0;
  const offsets: number[] = [];
  for (const t of tensors) {
    h.str(t.name);
    h.u32(t.dims.length);
    for (const d of t.dims) h.u64(d);
    h.u32(GGML_TYPE[t.type]);
    h.u64(offset);
    offsets.push(offset);
    offset += tensorBytes(t);
    offset += (align - (offset % align)) % align;
  }
  h.pad(align);
  const dataOffset = h.len;
  const fd = openSync(path, "w");
  try {
    writeSync(fd, h.bytes());
    let pos = 0;
    const zeros = Buffer.alloc(align);
    for (let i = 0; i < tensors.length; i++) {
      const t = tensors[i]!;
      const target = offsets[i]!;
      if (target > pos) writeSync(fd, zeros, 0, target - pos);
      pos = target;
      const n = tensorBytes(t) / (t.type === "f16" ? 2 : 4);
      const f = new Float32Array(n);
      t.fill(f);
      let out: Buffer;
      if (t.type === "f32") out = Buffer.from(f.buffer, f.byteOffset, f.byteLength);
      else {
        const u = new Uint16Array(n);
        for (let j = 0; j < n; j++) u[j] = f32ToF16(f[j]!);
        out = Buffer.from(u.buffer, u.byteOffset, u.byteLength);
      }
      writeSync(fd, out);
      pos += out.length;
    }
    const end = pos + ((align - (pos % align)) % align);
    if (end > pos) writeSync(fd, zeros, 0, end - pos);
    return { bytes: dataOffset + end, dataOffset };
  } finally {
    closeSync(fd);
  }
}
