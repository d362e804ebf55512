/**
 * llm-d request keys: `H(parent, tokens, extra) = FNV-64a(canonical CBOR([parent, tokens, extra]))`
 * chained from `getInitHash(model) = H(FNV-64a(hashSeed), nil, modelName)`; a prompt is cut in
 * `blockSize`-token chunks (the trailing partial chunk is dropped) and key i =
 * H(key i−1, chunk i, extra i). Source: reference/engine.md §4.2 (llm-d-kv-cache
 * `pkg/kvcache/kvblock/token_processor.go`, fxamacker/cbor `CanonicalEncOptions`).
 *
 * CBOR (RFC 8949 §3, §4.2.1 "core deterministic encoding"): unsigned integers are major type 0
 * in the shortest form (`0x00–0x17`, `0x18 b`, `0x19 bb`, `0x1a bbbb`, `0x1b bbbbbbbb`); the
 * token list is an array (major type 4) of such integers, not a byte string; nil is `0xf6`; a
 * string is major type 3; map keys are sorted length-first then bytewise (RFC 7049 canonical, as
 * fxamacker `SortCanonical`).
 *
 * The hot path (`extra = nil`, {@link chainKeysInto}) feeds the CBOR bytes straight into FNV-64a
 * in WebAssembly (`chain-wasm.ts`); without WebAssembly it encodes each block into a scratch
 * buffer and hashes it in JS on two uint32 halves. No BigInt, no allocation. Keys are returned
 * as interleaved uint32 pairs (`[hi0, lo0, hi1, lo1, …]`), like the event hash lists.
 */
import { chainWasmBytes } from "./chain-wasm.js";

/** FNV-64a offset basis 0xcbf29ce484222325 as two halves. */
const OFFSET_HI = 0xcbf29ce4;
const OFFSET_LO = 0x84222325;
/** FNV-64 prime is 2^40 + 0x1b3. */
const PRIME_LOW = 0x1b3;

/** FNV-64a of a byte string, as a bigint (test and slow-path helper). */
export function fnv64a(bytes: Uint8Array): bigint {
  let hi = OFFSET_HI | 0;
  let lo = OFFSET_LO | 0;
  for (let i = 0; i < bytes.length; i++) {
    lo ^= bytes[i]!;
    const x = (lo & 0xffff) * PRIME_LOW;
    const y = (lo >>> 16) * PRIME_LOW + (x >>> 16);
    hi = (Math.imul(hi, PRIME_LOW) + (y >>> 16) + (lo << 8)) | 0;
    lo = (y << 16) | (x & 0xffff);
  }
  return (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
}

/** A value of the `extra` slot: nil, integers, strings, byte strings, arrays, string-keyed maps. */
export type CborValue =
  | null
  | number
  | bigint
  | string
  | Uint8Array
  | readonly CborValue[]
  | { readonly [key: string]: CborValue };

const textEncoder = new TextEncoder();

/**
 * Canonical CBOR encoding of a small value (see module doc).
 * @throws RangeError for non-integer numbers or integers outside [−2^64, 2^64)
 */
export function encodeCanonicalCbor(v: CborValue): Uint8Array {
  const out: number[] = [];
  const headTo = (major: number, n: bigint): void => {
    const m = major << 5;
    if (n < 24n) out.push(m | Number(n));
    else if (n < 0x100n) out.push(m | 24, Number(n));
    else if (n < 0x10000n) out.push(m | 25, Number(n >> 8n), Number(n & 0xffn));
    else if (n < 0x100000000n) {
      out.push(m | 26);
      for (let s = 24n; s >= 0n; s -= 8n) out.push(Number((n >> s) & 0xffn));
    } else {
      if (n >= 1n << 64n) throw new RangeError("CBOR integer out of range");
      out.push(m | 27);
      for (let s = 56n; s >= 0n; s -= 8n) out.push(Number((n >> s) & 0xffn));
    }
  };
  const enc = (x: CborValue): void => {
    if (x === null) out.push(0xf6);
    else if (typeof x === "number" || typeof x === "bigint") {
      if (typeof x === "number" && !Number.isInteger(x))
        throw new RangeError("CBOR: only integers are supported");
      const b = BigInt(x);
      if (b >= 0n) headTo(0, b);
      else headTo(1, -1n - b);
    } else if (typeof x === "string") {
      const bytes = textEncoder.encode(x);
      headTo(3, BigInt(bytes.length));
      for (const c of bytes) out.push(c);
    } else if (x instanceof Uint8Array) {
      headTo(2, BigInt(x.length));
      for (const c of x) out.push(c);
    } else if (Array.isArray(x)) {
      headTo(4, BigInt(x.length));
      for (const e of x) enc(e);
    } else {
      const o = x as { readonly [key: string]: CborValue };
      const keys = Object.keys(o).map((k) => ({ k, b: textEncoder.encode(k) }));
      keys.sort((a, b) => {
        if (a.b.length !== b.b.length) return a.b.length - b.b.length;
        for (let i = 0; i < a.b.length; i++) if (a.b[i] !== b.b[i]) return a.b[i]! - b.b[i]!;
        return 0;
      });
      headTo(5, BigInt(keys.length));
      for (const { k, b } of keys) {
        headTo(3, BigInt(b.length));
        for (const c of b) out.push(c);
        enc(o[k]!);
      }
    }
  };
  enc(v);
  return Uint8Array.from(out);
}

/**
 * `H(parent, tokens, extra)` for any `extra` (slow path; allocates).
 * @param tokens null encodes as CBOR nil (as Go's nil slice)
 */
export function requestKey(
  parent: bigint,
  tokens: ArrayLike<number> | null,
  extra: CborValue = null,
): bigint {
  return fnv64a(
    encodeCanonicalCbor([parent, tokens === null ? null : Array.from(tokens), extra] as CborValue),
  );
}

/** `FNV-64a(utf8(hashSeed))` — the chain's seed (default seed `""` → 0xcbf29ce484222325). */
export function initHash(hashSeed = ""): bigint {
  return fnv64a(textEncoder.encode(hashSeed));
}

/** `getInitHash(model) = H(FNV-64a(hashSeed), nil, modelName)` (reference/engine.md §4.2). */
export function modelRootKey(modelName: string, hashSeed = ""): bigint {
  return requestKey(initHash(hashSeed), null, modelName);
}

/** `chain` and `mem` of the module built by {@link chainWasmBytes}. */
interface WasmChain {
  chain: (tok: number, n: number, bs: number, out: number, ph: number, pl: number) => void;
  mem: { buffer: ArrayBuffer; grow(pages: number): number };
}

/** The part of the WebAssembly global used here (the project's TS lib has no DOM/wasm types). */
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object) => { exports: unknown };
}

function loadWasm(): WasmChain | null {
  try {
    const W = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;
    const inst = new W.Instance(new W.Module(chainWasmBytes()));
    return inst.exports as WasmChain;
  } catch {
    return null; // no WebAssembly: the JS loop below is used
  }
}

const wasm = loadWasm();
/** The WebAssembly memory as uint32 words (keys at word 0, tokens after them). */
let wasmWords = wasm ? new Uint32Array(wasm.mem.buffer) : new Uint32Array(0);

/** Makes the WebAssembly memory hold at least `bytes` bytes. */
function ensureWasmMem(w: WasmChain, bytes: number): void {
  if (wasmWords.byteLength >= bytes) return;
  w.mem.grow(Math.ceil((bytes - w.mem.buffer.byteLength) / 65536));
  wasmWords = new Uint32Array(w.mem.buffer);
}

/** Scratch buffer of one block's CBOR bytes (JS path). */
let blockBuf = new Uint8Array(1024);
let blockView = new DataView(blockBuf.buffer);

function ensureBlockBuf(need: number): void {
  if (blockBuf.length >= need) return;
  blockBuf = new Uint8Array(need * 2);
  blockView = new DataView(blockBuf.buffer);
}

/** Writes a CBOR head of major type `major` with argument `n` (0 ≤ n < 2^32) at `p`; returns the new offset. */
function putHead(buf: Uint8Array, p: number, major: number, n: number): number {
  const m = major << 5;
  if (n < 24) buf[p++] = m | n;
  else if (n < 0x100) {
    buf[p++] = m | 24;
    buf[p++] = n;
  } else if (n < 0x10000) {
    buf[p++] = m | 25;
    buf[p++] = n >>> 8;
    buf[p++] = n & 0xff;
  } else {
    buf[p++] = m | 26;
    buf[p++] = n >>> 24;
    buf[p++] = (n >>> 16) & 0xff;
    buf[p++] = (n >>> 8) & 0xff;
    buf[p++] = n & 0xff;
  }
  return p;
}

/**
 * Chained request keys of the full `blockSize` chunks of `tokens[0 .. length)`, starting from
 * `parent` (a root key or the key of the block before), with `extra = nil` for every block.
 * Fast path: the tokens are copied into WebAssembly memory and one call encodes and hashes every
 * block (CBOR bytes fed straight into FNV-64a); without WebAssembly, the CBOR bytes of a block go
 * to a reused scratch buffer and FNV-64a runs in JS on uint32 halves. No allocation besides
 * `out`.
 *
 * @param parentHi high 32 bits of the parent key
 * @param parentLo low 32 bits of the parent key
 * @param out where to write the keys, interleaved; must hold ≥ 2·floor(length/blockSize)
 *   entries from `outOffset` (pairs)
 * @param tokensOffset where the tokens start in `tokens` (`length` counts from there)
 * @returns the number of keys written (= floor(length / blockSize))
 * @throws RangeError when blockSize < 1
 */
export function chainKeysInto(
  parentHi: number,
  parentLo: number,
  tokens: ArrayLike<number>,
  length: number,
  blockSize: number,
  out: Uint32Array,
  outOffset = 0,
  tokensOffset = 0,
): number {
  if (blockSize < 1) throw new RangeError("blockSize must be ≥ 1");
  const n = Math.floor(length / blockSize);
  if (n === 0) return 0;
  if (wasm === null)
    return chainKeysJs(parentHi, parentLo, tokens, n, blockSize, out, outOffset, tokensOffset);
  const nt = n * blockSize;
  // words: keys [0, 2n), tokens [2n, 2n + nt)
  ensureWasmMem(wasm, 4 * (2 * n + nt));
  const mem = wasmWords;
  const t0 = 2 * n;
  const to = tokensOffset;
  if (nt > 64 && tokens instanceof Uint32Array)
    mem.set(to === 0 && nt === tokens.length ? tokens : tokens.subarray(to, to + nt), t0);
  else for (let i = 0; i < nt; i++) mem[t0 + i] = tokens[to + i]!;
  wasm.chain(4 * t0, n, blockSize, 0, parentHi >>> 0, parentLo >>> 0);
  const o = 2 * outOffset;
  if (n > 32) out.set(mem.subarray(0, 2 * n), o);
  else for (let i = 0; i < 2 * n; i++) out[o + i] = mem[i]!;
  return n;
}

/** {@link chainKeysInto} without WebAssembly, for `n ≥ 1` blocks. */
function chainKeysJs(
  parentHi: number,
  parentLo: number,
  tokens: ArrayLike<number>,
  n: number,
  blockSize: number,
  out: Uint32Array,
  outOffset: number,
  tokensOffset: number,
): number {
  ensureBlockBuf(16 + 5 * blockSize);
  const buf = blockBuf;
  const dv = blockView;
  let ph = parentHi >>> 0;
  let pl = parentLo >>> 0;
  let t = tokensOffset;
  for (let k = 0; k < n; k++) {
    // CBOR [parent, [tokens…], null]
    let p = 0;
    buf[p++] = 0x83;
    if (ph === 0) p = putHead(buf, p, 0, pl);
    else {
      buf[p++] = 0x1b;
      buf[p++] = ph >>> 24;
      buf[p++] = (ph >>> 16) & 0xff;
      buf[p++] = (ph >>> 8) & 0xff;
      buf[p++] = ph & 0xff;
      buf[p++] = pl >>> 24;
      buf[p++] = (pl >>> 16) & 0xff;
      buf[p++] = (pl >>> 8) & 0xff;
      buf[p++] = pl & 0xff;
    }
    p = putHead(buf, p, 4, blockSize);
    for (const e = t + blockSize; t < e; t++) {
      const v = tokens[t]! >>> 0;
      if (v >= 0x10000) {
        buf[p] = 0x1a;
        dv.setUint32(p + 1, v);
        p += 5;
      } else if (v >= 0x100) {
        buf[p] = 0x19;
        dv.setUint16(p + 1, v);
        p += 3;
      } else if (v >= 24) {
        buf[p] = 0x18;
        buf[p + 1] = v;
        p += 2;
      } else buf[p++] = v;
    }
    buf[p++] = 0xf6;
    // FNV-64a: h ^= b; h *= 2^40 + 435 (mod 2^64), h = hi·2^32 + lo
    let hi = OFFSET_HI | 0;
    let lo = OFFSET_LO | 0;
    for (let i = 0; i < p; i++) {
      // lo·435 split in 16-bit halves so that every step stays in small-integer arithmetic
      lo ^= buf[i]!;
      const x = (lo & 0xffff) * PRIME_LOW;
      const y = (lo >>> 16) * PRIME_LOW + (x >>> 16);
      hi = (Math.imul(hi, PRIME_LOW) + (y >>> 16) + (lo << 8)) | 0;
      lo = (y << 16) | (x & 0xffff);
    }
    ph = hi >>> 0;
    pl = lo >>> 0;
    out[2 * (outOffset + k)] = ph;
    out[2 * (outOffset + k) + 1] = pl;
  }
  return n;
}

/** {@link chainKeysInto} forced onto the JS path (tests: both paths must agree). */
export function chainKeysIntoJs(
  parentHi: number,
  parentLo: number,
  tokens: ArrayLike<number>,
  length: number,
  blockSize: number,
  out: Uint32Array,
  outOffset = 0,
): number {
  if (blockSize < 1) throw new RangeError("blockSize must be ≥ 1");
  const n = Math.floor(length / blockSize);
  return n === 0 ? 0 : chainKeysJs(parentHi, parentLo, tokens, n, blockSize, out, outOffset, 0);
}

/**
 * Request keys of a whole prompt for `modelName` (root = {@link modelRootKey}).
 * @returns interleaved uint32 pairs, one per full block
 */
export function promptKeys(tokens: ArrayLike<number>, blockSize: number, root: bigint): Uint32Array {
  const out = new Uint32Array(2 * Math.floor(tokens.length / blockSize));
  chainKeysInto(Number(root >> 32n), Number(root & 0xffffffffn), tokens, tokens.length, blockSize, out);
  return out;
}

function sameBlock(a: Uint32Array, b: Uint32Array, block: number, blockSize: number): boolean {
  const o = block * blockSize;
  for (let i = o; i < o + blockSize; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Number of leading full blocks (≤ limit) on which `a` and `b` agree. */
function commonBlocks(a: Uint32Array, b: Uint32Array, limit: number, blockSize: number): number {
  const n = limit * blockSize;
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return Math.floor(i / blockSize);
}

interface CachedPrompt {
  model: string;
  blockSize: number;
  tokens: Uint32Array;
  keys: Uint32Array;
  blocks: number;
}

/**
 * Reuses the request keys of recent prompts: a new prompt that shares full blocks with a cached
 * one (same model and block size) takes those keys and hashes only the rest — multi-turn chats
 * and shared system prompts then cost a token comparison instead of FNV/CBOR work. Keeps the
 * `capacity` most recent prompts (tokens copied). Not thread-safe; one per producer.
 */
export class PromptKeyCache {
  private readonly entries: CachedPrompt[] = [];

  /** @param capacity prompts kept (default 8) */
  constructor(private readonly capacity = 8) {}

  /**
   * Request keys of `tokens` (interleaved pairs, one per full block) chained from the model root
   * `[rootHi, rootLo]`. The returned array is owned by the cache and must not be modified.
   * @returns keys, number of blocks, and how many blocks were reused from the cache
   */
  keys(
    model: string,
    rootHi: number,
    rootLo: number,
    tokens: Uint32Array,
    blockSize: number,
  ): { keys: Uint32Array; blocks: number; reused: number } {
    const blocks = Math.floor(tokens.length / blockSize);
    let best: CachedPrompt | null = null;
    let reused = 0;
    for (const e of this.entries) {
      if (e.model !== model || e.blockSize !== blockSize) continue;
      const limit = Math.min(e.blocks, blocks);
      // to beat the best so far, e must also match block `reused`: check that block first
      if (limit <= reused || !sameBlock(e.tokens, tokens, reused, blockSize)) continue;
      const b = commonBlocks(e.tokens, tokens, limit, blockSize);
      if (b > reused) {
        reused = b;
        best = e;
      }
    }
    const keys = new Uint32Array(2 * blocks);
    if (best && reused > 0) keys.set(best.keys.subarray(0, 2 * reused));
    const ph = reused > 0 ? keys[2 * reused - 2]! : rootHi;
    const pl = reused > 0 ? keys[2 * reused - 1]! : rootLo;
    chainKeysInto(
      ph,
      pl,
      tokens.subarray(reused * blockSize),
      (blocks - reused) * blockSize,
      blockSize,
      keys,
      reused,
    );
    if (best && reused === blocks && best.blocks === blocks) {
      // same prompt again: refresh recency only
      this.entries.splice(this.entries.indexOf(best), 1);
      this.entries.unshift(best);
    } else {
      this.entries.unshift({ model, blockSize, tokens: tokens.slice(0, blocks * blockSize), keys, blocks });
      if (this.entries.length > this.capacity) this.entries.pop();
    }
    return { keys, blocks, reused };
  }
}
