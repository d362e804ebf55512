/**
 * KV state envelope for P/D transfer between llama engines (reference/llama-engine.md §4).
 *
 * llama.cpp saves a sequence's KV cache only to a file (`seq.saveStateToFile`; no buffer API),
 * and loading a state from a different model "may crash the process" (§4, "Other pitfalls").
 * So the bytes we move are an envelope that names what produced them, checked before llama.cpp
 * ever sees the state:
 *
 * ```
 * "LLMDKV01" (8 bytes) | u32 LE header length | header JSON (UTF-8) | llama.cpp state file bytes
 * header = { modelHash, model, geometry: {arch, nLayer, nEmbdKv, kvType}, tokens: number[] }
 * ```
 *
 * `modelHash` is the xxh64 of the GGUF file (`src/gguf/model.ts` `fileHash`); `geometry` is the
 * KV layout (layers × K/V width × element type, §4: state ≈ n_layer·2·n_embd_kv·2 bytes per
 * token). A mismatch of either throws {@link KvStateMismatchError} naming both sides — the
 * "KV layouts differed so the transfer worked and produced garbage" story (DESIGN.md).
 *
 * **Sequence count.** node-llama-cpp creates contexts with `kv_unified = false`, so llama.cpp
 * keeps one KV stream per sequence and a sequence state file records the stream count:
 * `u32 magic 'ggsq' | u32 version (3) | u32 n_tokens | n_tokens × u32 token | u32 n_stream |
 * n_stream sections`, where each section is `u32 cell_count` + cell data, and only the
 * section of the saved sequence's stream is non-empty (the others are a bare `0`). Loading
 * into a context with another sequence count fails with "n_stream mismatch" (measured), so
 * {@link restreamSeqState} rewrites the stream count and moves the one non-empty section to
 * the target sequence's stream index; the cell data itself is unchanged.
 */

/** Magic bytes at the start of an envelope. */
export const KV_STATE_MAGIC = "LLMDKV01";

/** KV-cache layout of a model in a context. */
export interface KvGeometry {
  /** `general.architecture` */
  arch: string;
  /** transformer blocks (`<arch>.block_count`) */
  nLayer: number;
  /** K/V width per token per layer, elements (head dim × KV heads) */
  nEmbdKv: number;
  /** element type of the KV cache (llama.cpp default `f16`) */
  kvType: string;
}

/** Header of an envelope. */
export interface KvStateHeader {
  /** xxh64 of the model file, 16 hex digits */
  modelHash: string;
  /** model name (for messages) */
  model: string;
  geometry: KvGeometry;
  /** the tokens whose KV the state holds, in order */
  tokens: number[];
}

/** The envelope's two parts. */
export interface KvStateParts {
  header: KvStateHeader;
  /** llama.cpp sequence state file bytes */
  state: Buffer;
}

/** The state does not fit this engine: different model file or KV layout. */
export class KvStateMismatchError extends Error {
  constructor(
    message: string,
    /** what the state was produced with */
    readonly source: { modelHash: string; model: string; geometry: KvGeometry },
    /** what this engine has */
    readonly target: { modelHash: string; model: string; geometry: KvGeometry },
  ) {
    super(message);
    this.name = "KvStateMismatchError";
  }
}

/** Encodes an envelope. */
export function encodeKvState(header: KvStateHeader, state: Buffer): Buffer {
  const json = Buffer.from(JSON.stringify(header), "utf8");
  const head = Buffer.alloc(12);
  head.write(KV_STATE_MAGIC, 0, "latin1");
  head.writeUInt32LE(json.length, 8);
  return Buffer.concat([head, json, state]);
}

/**
 * Decodes an envelope (no copy of the state bytes).
 * @throws Error when the bytes are not an envelope or the header is malformed
 */
export function decodeKvState(bytes: Buffer): KvStateParts {
  if (bytes.length < 12 || bytes.toString("latin1", 0, 8) !== KV_STATE_MAGIC) {
    throw new Error(`not an llmd KV state (missing ${KV_STATE_MAGIC} magic)`);
  }
  const n = bytes.readUInt32LE(8);
  if (12 + n > bytes.length) throw new Error("truncated llmd KV state header");
  const header = JSON.parse(bytes.toString("utf8", 12, 12 + n)) as KvStateHeader;
  const g = header?.geometry;
  if (
    typeof header?.modelHash !== "string" ||
    !Array.isArray(header.tokens) ||
    typeof g?.nLayer !== "number" ||
    typeof g?.nEmbdKv !== "number"
  ) {
    throw new Error("malformed llmd KV state header");
  }
  return { header, state: bytes.subarray(12 + n) };
}

/** `arch/L layers/W kv width/type` for messages. */
export function describeGeometry(g: KvGeometry): string {
  return `${g.arch}, ${g.nLayer} layers, KV width ${g.nEmbdKv}, ${g.kvType}`;
}

/**
 * Checks a state header against this engine.
 * @throws KvStateMismatchError naming both model hashes / geometries
 */
export function checkKvState(
  header: KvStateHeader,
  target: { modelHash: string; model: string; geometry: KvGeometry },
): void {
  const src = { modelHash: header.modelHash, model: header.model, geometry: header.geometry };
  const g = header.geometry;
  const t = target.geometry;
  if (g.arch !== t.arch || g.nLayer !== t.nLayer || g.nEmbdKv !== t.nEmbdKv || g.kvType !== t.kvType) {
    throw new KvStateMismatchError(
      `KV layout mismatch: the state was produced with [${describeGeometry(g)}] (model ${header.model}, ${header.modelHash}) but this engine has [${describeGeometry(t)}] (model ${target.model}, ${target.modelHash})`,
      src,
      target,
    );
  }
  if (header.modelHash !== target.modelHash) {
    throw new KvStateMismatchError(
      `model mismatch: the KV state was produced by model ${header.model} (file hash ${header.modelHash}) but this engine runs ${target.model} (file hash ${target.modelHash})`,
      src,
      target,
    );
  }
}

/** `'ggsq'`: llama.cpp `LLAMA_STATE_SEQ_MAGIC`. */
export const LLAMA_STATE_SEQ_MAGIC = 0x67677371;
/** llama.cpp `LLAMA_STATE_SEQ_VERSION` this code understands. */
export const LLAMA_STATE_SEQ_VERSION = 3;

/**
 * Rewrites a llama.cpp sequence state file for a context with `targetStreams` sequences,
 * placing the saved sequence's KV section at stream `targetIndex` (see module doc).
 * @param raw llama.cpp sequence state file bytes
 * @returns new bytes (the input when nothing changes)
 * @throws Error on an unknown magic/version, a state with no cells, non-empty extra sections,
 *   or a target index outside `[0, targetStreams)`
 */
export function restreamSeqState(raw: Buffer, targetStreams: number, targetIndex: number): Buffer {
  if (!(targetIndex >= 0 && targetIndex < targetStreams)) {
    throw new RangeError(`target stream ${targetIndex} outside [0, ${targetStreams})`);
  }
  if (raw.length < 16 || raw.readUInt32LE(0) !== LLAMA_STATE_SEQ_MAGIC) {
    throw new Error("not a llama.cpp sequence state (magic 'ggsq' missing)");
  }
  const version = raw.readUInt32LE(4);
  if (version !== LLAMA_STATE_SEQ_VERSION) {
    throw new Error(
      `llama.cpp sequence state version ${version} is not supported (expected ${LLAMA_STATE_SEQ_VERSION})`,
    );
  }
  const nTokens = raw.readUInt32LE(8);
  const o = 12 + 4 * nTokens;
  if (raw.length < o + 8) throw new Error("truncated llama.cpp sequence state");
  const streams = raw.readUInt32LE(o);
  let p = o + 4;
  let k = 0;
  while (k < streams && p + 4 <= raw.length && raw.readUInt32LE(p) === 0) {
    p += 4;
    k++;
  }
  if (k >= streams) throw new Error("llama.cpp sequence state holds no KV cells");
  const end = raw.length - 4 * (streams - 1 - k);
  if (end <= p) throw new Error("truncated llama.cpp sequence state");
  for (let q = end; q < raw.length; q += 4) {
    if (raw.readUInt32LE(q) !== 0)
      throw new Error("llama.cpp sequence state has more than one non-empty stream");
  }
  if (streams === targetStreams && k === targetIndex) return raw;
  const head = Buffer.alloc(4);
  head.writeUInt32LE(targetStreams, 0);
  return Buffer.concat([
    raw.subarray(0, o),
    head,
    Buffer.alloc(4 * targetIndex),
    raw.subarray(p, end),
    Buffer.alloc(4 * (targetStreams - 1 - targetIndex)),
  ]);
}
