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
