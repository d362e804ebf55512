/**
 * Deterministic small llama-architecture GGUF models for tests and demos
 * (reference/llama-engine.md §2: the metadata keys, tensor names and tokenizer layouts listed
 * there are exactly what this module writes, and llama.cpp loads them without warnings).
 *
 * - Weights: 2-D tensors F16, uniform PRNG values with standard deviation `weightStd`
 *   (default 0.2: with 0.05 greedy decoding falls into short cycles, §2 / §4); norm weights
 *   F32 = 1.0. The PRNG (mulberry32) is seeded from `seed` and the tensor name, so the same
 *   options always give the same bytes.
 * - Tokenizers (§2 "Tokenizer A/B"):
 *   - `spm`: `tokenizer.ggml.model="llama"`; `<unk>`, `<s>` (BOS), `</s>` (EOS), the 256 byte
 *     tokens `<0x00>`..`<0xFF>` (so any text round-trips), `▁` and ASCII 33..126, then every
 *     prefix of `▁word` for {@link COMMON_WORDS} (SPM merges reach them pair by pair);
 *     `add_space_prefix=false` so text after a control token (chat templates) round-trips.
 *   - `bpe`: `tokenizer.ggml.model="gpt2"`, `pre="gpt-2"`: the 256 GPT-2 byte characters, one
 *     merge per prefix of `Ġword`, `<|endoftext|>` (BOS = EOS).
 *   - Both add the control tokens `<|im_start|>` / `<|im_end|>` (`eot_token_id` = `<|im_end|>`)
 *     and, unless `chatTemplate: "none"`, a ChatML `tokenizer.chat_template`.
 * - Identity: {@link fileHash} is xxh64 (seed 0) of the whole file as 16 hex digits; the KV
 *   transfer code compares it between prefill and decode.
 */
import { createReadStream, statSync } from "node:fs";
import { Xxh64 } from "@node-rs/xxhash";
import { COMMON_WORDS } from "./words.js";
import { type GgufKv, type GgufTensor, writeGguf } from "./writer.js";

/** Model shape. Dimensions are element counts. */
export interface ModelShape {
  /** embedding width D */
  dim: number;
  /** transformer blocks */
  layers: number;
  /** feed-forward width */
  ffn: number;
  /** attention heads (dim must be divisible by it) */
  heads: number;
  /** KV heads (heads must be divisible by it) */
  kvHeads: number;
}

/** Named sizes (reference/llama-engine.md §2 table: 0.9M, 10.2M, 51.0M parameters). */
export const MODEL_SIZES = {
  "1m": { dim: 128, layers: 4, ffn: 352, heads: 4, kvHeads: 4 },
  "10m": { dim: 320, layers: 8, ffn: 864, heads: 5, kvHeads: 5 },
  "50m": { dim: 512, layers: 16, ffn: 1376, heads: 8, kvHeads: 8 },
} as const satisfies Record<string, ModelShape>;

/** A named size. */
export type ModelSizeName = keyof typeof MODEL_SIZES;

/** Options of {@link createModel}. */
export interface CreateModelOptions {
  /** output file path */
  out: string;
  /** a named size or an explicit shape (default `1m`) */
  params?: ModelSizeName | ModelShape;
  /** PRNG seed (default 0) */
  seed?: number;
  /** tokenizer style (default `spm`) */
  tokenizer?: "spm" | "bpe";
  /** weight standard deviation of 2-D tensors (default 0.2) */
  weightStd?: number;
  /** `chatml` (default) writes a ChatML `tokenizer.chat_template`; `none` writes none */
  chatTemplate?: "chatml" | "none";
  /** `llama.context_length` (default 4096) */
  contextLength?: number;
  /** `general.name` (default `llmd-<size>-<tokenizer>-s<seed>`) */
  name?: string;
  /**
   * Scales the EOS row of `output.weight` (default 1). With e.g. 12 the EOS logit has 12× the
   * spread of the others, so greedy decoding ends with EOS after a few tokens: for tests of
   * stop handling (`min_tokens`, `ignore_eos`).
   */
  eosLogitScale?: number;
  /**
   * SPM only: `tokenizer.ggml.add_space_prefix` (default false). `true` is how Llama-2-style
   * SPM models behave: "▁" before the first word and after every control token.
   */
  addSpacePrefix?: boolean;
}

/** What {@link createModel} wrote. */
export interface CreatedModel {
  path: string;
  shape: ModelShape;
  /** total parameters (elements of all tensors) */
  params: number;
  /** vocabulary size, tokens */
  vocabSize: number;
  /** file size, bytes */
  bytes: number;
  /** {@link fileHash} of the written file */
  hash: string;
  /** wall time spent writing, ms */
  writeMs: number;
}

/** The ChatML template written into generated models. */
export const CHATML_TEMPLATE =
  "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/** GGUF token types (llama.cpp `llama_token_type`). */
const TT = { normal: 1, unknown: 2, control: 3, byte: 6 } as const;

interface Vocab {
  tokens: string[];
  scores: number[];
  types: number[];
  merges?: string[];
  bos: number;
  eos: number;
  unk?: number;
  imStart: number;
  imEnd: number;
}

function spmVocab(): Vocab {
  const tokens: string[] = [];
  const scores: number[] = [];
  const types: number[] = [];
  const seen = new Set<string>();
  const add = (t: string, type: number, score = 0) => {
    if (seen.has(t)) return;
    seen.add(t);
    tokens.push(t);
    scores.push(score);
    types.push(type);
  };
  add("<unk>", TT.unknown);
  add("<s>", TT.control);
  add("</s>", TT.control);
  for (let b = 0; b < 256; b++) add(`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`, TT.byte);
  add("▁", TT.normal, -1);
  for (let c = 33; c <= 126; c++) add(String.fromCharCode(c), TT.normal, -2 - (c - 33));
  for (const w of COMMON_WORDS) {
    for (let k = 1; k <= w.length; k++) {
      const piece = `▁${w.slice(0, k)}`;
      add(piece, TT.normal, -200 - tokens.length);
    }
  }
  const imStart = tokens.length;
  add("<|im_start|>", TT.control);
  const imEnd = tokens.length;
  add("<|im_end|>", TT.control);
  return { tokens, scores, types, bos: 1, eos: 2, unk: 0, imStart, imEnd };
}

/** GPT-2 `bytes_to_unicode`: byte value → printable character. */
export function gpt2ByteChars(): string[] {
  const bs: number[] = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const map = new Array<string>(256);
  for (const b of bs) map[b] = String.fromCharCode(b);
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (map[b] === undefined) {
      map[b] = String.fromCharCode(256 + n);
      n++;
    }
  }
  return map;
}

function bpeVocab(): Vocab {
  const byteChars = gpt2ByteChars();
  const tokens: string[] = [...byteChars];
  const types: number[] = tokens.map(() => TT.normal);
  const seen = new Set(tokens);
  const merges: string[] = [];
  const sp = byteChars[32]!; // "Ġ"
  for (const w of COMMON_WORDS) {
    let prev = sp;
    for (const ch of w) {
      const next = prev + ch;
      if (!seen.has(next)) {
        seen.add(next);
        tokens.push(next);
        types.push(TT.normal);
        merges.push(`${prev} ${ch}`);
      }
      prev = next;
    }
  }
  const imStart = tokens.length;
  tokens.push("<|im_start|>");
  types.push(TT.control);
  const imEnd = tokens.length;
  tokens.push("<|im_end|>");
  types.push(TT.control);
  const eos = tokens.length;
  tokens.push("<|endoftext|>");
  types.push(TT.control);
  return { tokens, scores: tokens.map(() => 0), types, merges, bos: eos, eos, imStart, imEnd };
}

/** mulberry32 PRNG: uniform [0, 1). */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** FNV-1a 32-bit of a string mixed with a seed. */
function seedFor(seed: number, name: string): number {
  let h = (0x811c9dc5 ^ Math.imul(seed >>> 0, 0x9e3779b1)) >>> 0;
  for (let i = 0; i < name.length; i++) {
    h ^= name.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** Resolves a size name or shape and validates it. @throws RangeError on an invalid shape */
export function resolveShape(params: ModelSizeName | ModelShape | undefined): ModelShape {
  const s: ModelShape =
    params === undefined ? MODEL_SIZES["1m"] : typeof params === "string" ? MODEL_SIZES[params] : params;
  if (!s) throw new RangeError(`unknown model size ${String(params)} (use 1m, 10m or 50m)`);
  for (const k of ["dim", "layers", "ffn", "heads", "kvHeads"] as const) {
    if (!Number.isInteger(s[k]) || s[k] < 1) throw new RangeError(`${k} must be a positive integer`);
  }
  if (s.dim % s.heads !== 0) throw new RangeError(`dim ${s.dim} is not divisible by heads ${s.heads}`);
  if (s.heads % s.kvHeads !== 0)
    throw new RangeError(`heads ${s.heads} is not divisible by kvHeads ${s.kvHeads}`);
  return { dim: s.dim, layers: s.layers, ffn: s.ffn, heads: s.heads, kvHeads: s.kvHeads };
}

/**
 * Writes a deterministic llama-architecture GGUF model (see module doc). Same options → same
 * bytes (and same {@link CreatedModel.hash}).
 * @returns shape, parameter count, vocabulary size, file size (bytes), hash, write time (ms)
 * @throws RangeError on an invalid shape or weightStd; fs errors
 */
export async function createModel(opts: CreateModelOptions): Promise<CreatedModel> {
  const t0 = performance.now();
  const shape = resolveShape(opts.params);
  const seed = opts.seed ?? 0;
  const tk = opts.tokenizer ?? "spm";
  const std = opts.weightStd ?? 0.2;
  if (!(std >= 0) || !Number.isFinite(std)) throw new RangeError("weightStd must be a finite number ≥ 0");
  const vocab = tk === "bpe" ? bpeVocab() : spmVocab();
  const V = vocab.tokens.length;
  const { dim: D, layers: L, ffn: F, heads: H, kvHeads: KV } = shape;
  const headDim = D / H;
  const Dkv = headDim * KV;
  const sizeName = typeof opts.params === "string" ? opts.params : opts.params ? `${D}d${L}l` : "1m";
  const name = opts.name ?? `llmd-${sizeName}-${tk}-s${seed}`;

  const kvs: GgufKv[] = [
    { key: "general.architecture", type: "string", value: "llama" },
    { key: "general.name", type: "string", value: name },
    { key: "general.file_type", type: "u32", value: 1 },
    { key: "general.alignment", type: "u32", value: 32 },
    { key: "llama.context_length", type: "u32", value: opts.contextLength ?? 4096 },
    { key: "llama.embedding_length", type: "u32", value: D },
    { key: "llama.block_count", type: "u32", value: L },
    { key: "llama.feed_forward_length", type: "u32", value: F },
    { key: "llama.attention.head_count", type: "u32", value: H },
    { key: "llama.attention.head_count_kv", type: "u32", value: KV },
    { key: "llama.attention.layer_norm_rms_epsilon", type: "f32", value: 1e-5 },
    { key: "llama.rope.dimension_count", type: "u32", value: headDim },
    { key: "llama.rope.freq_base", type: "f32", value: 10000 },
    { key: "llama.vocab_size", type: "u32", value: V },
  ];
  if (tk === "bpe") {
    kvs.push(
      { key: "tokenizer.ggml.model", type: "string", value: "gpt2" },
      { key: "tokenizer.ggml.pre", type: "string", value: "gpt-2" },
      { key: "tokenizer.ggml.tokens", type: "array", elemType: "string", value: vocab.tokens },
      { key: "tokenizer.ggml.token_type", type: "array", elemType: "i32", value: vocab.types },
      { key: "tokenizer.ggml.merges", type: "array", elemType: "string", value: vocab.merges ?? [] },
      { key: "tokenizer.ggml.bos_token_id", type: "u32", value: vocab.bos },
      { key: "tokenizer.ggml.eos_token_id", type: "u32", value: vocab.eos },
      { key: "tokenizer.ggml.eot_token_id", type: "u32", value: vocab.imEnd },
      { key: "tokenizer.ggml.add_bos_token", type: "bool", value: false },
      { key: "tokenizer.ggml.add_eos_token", type: "bool", value: false },
    );
  } else {
    kvs.push(
      { key: "tokenizer.ggml.model", type: "string", value: "llama" },
      { key: "tokenizer.ggml.tokens", type: "array", elemType: "string", value: vocab.tokens },
      { key: "tokenizer.ggml.scores", type: "array", elemType: "f32", value: vocab.scores },
      { key: "tokenizer.ggml.token_type", type: "array", elemType: "i32", value: vocab.types },
      { key: "tokenizer.ggml.unknown_token_id", type: "u32", value: vocab.unk ?? 0 },
      { key: "tokenizer.ggml.bos_token_id", type: "u32", value: vocab.bos },
      { key: "tokenizer.ggml.eos_token_id", type: "u32", value: vocab.eos },
      { key: "tokenizer.ggml.eot_token_id", type: "u32", value: vocab.imEnd },
      { key: "tokenizer.ggml.add_bos_token", type: "bool", value: true },
      { key: "tokenizer.ggml.add_eos_token", type: "bool", value: false },
      // no "▁" before the first word or after a control token, so chat-template text round-trips
      { key: "tokenizer.ggml.add_space_prefix", type: "bool", value: opts.addSpacePrefix ?? false },
    );
  }
  if ((opts.chatTemplate ?? "chatml") === "chatml") {
    kvs.push({ key: "tokenizer.chat_template", type: "string", value: CHATML_TEMPLATE });
  }

  const a = std * Math.sqrt(3); // uniform [-a, a] has std a/√3
  const rand = (n: string) => (out: Float32Array) => {
    const r = mulberry32(seedFor(seed, n));
    for (let i = 0; i < out.length; i++) out[i] = (r() * 2 - 1) * a;
  };
  const ones = (out: Float32Array) => out.fill(1);
  const w2 = (n: string, dims: number[]): GgufTensor => ({ name: n, dims, type: "f16", fill: rand(n) });
  const norm = (n: string, d: number): GgufTensor => ({ name: n, dims: [d], type: "f32", fill: ones });
  const eosScale = opts.eosLogitScale ?? 1;
  const output = w2("output.weight", [D, V]);
  if (eosScale !== 1) {
    const fill = output.fill;
    output.fill = (out) => {
      fill(out);
      for (let i = vocab.eos * D; i < (vocab.eos + 1) * D; i++) out[i] = out[i]! * eosScale;
    };
  }
  const tensors: GgufTensor[] = [w2("token_embd.weight", [D, V]), norm("output_norm.weight", D), output];
  for (let i = 0; i < L; i++) {
    const p = `blk.${i}.`;
    tensors.push(
      norm(`${p}attn_norm.weight`, D),
      w2(`${p}attn_q.weight`, [D, D]),
      w2(`${p}attn_k.weight`, [D, Dkv]),
      w2(`${p}attn_v.weight`, [D, Dkv]),
      w2(`${p}attn_output.weight`, [D, D]),
      norm(`${p}ffn_norm.weight`, D),
      w2(`${p}ffn_gate.weight`, [D, F]),
      w2(`${p}ffn_up.weight`, [D, F]),
      w2(`${p}ffn_down.weight`, [F, D]),
    );
  }
  let params = 0;
  for (const t of tensors) params += t.dims.reduce((x, y) => x * y, 1);
  const res = writeGguf(opts.out, kvs, tensors);
  const hash = await fileHash(opts.out);
  return {
    path: opts.out,
    shape,
    params,
    vocabSize: V,
    bytes: res.bytes,
    hash,
    writeMs: performance.now() - t0,
  };
}

/**
 * Content hash of a file: xxh64 (seed 0) of all its bytes, 16 lowercase hex digits. Streams
 * the file (about 1 s per few GB, bound by disk reads).
 * @throws fs errors (missing file)
 */
export async function fileHash(path: string): Promise<string> {
  statSync(path);
  const h = new Xxh64(0n);
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 22 })) h.update(chunk as Buffer);
  return h.digest().toString(16).padStart(16, "0");
}
