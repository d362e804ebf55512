/**
 * KV transfer between model servers for P/D — the parts both engines share: the KV layout a
 * server advertises, the layout check a decode server makes before pulling (a mismatch is
 * refused with an error naming both layouts, never garbage), and the HTTP side channel:
 *
 * | route (on the prefill server's `remote_host:remote_port`) | NIXL counterpart |
 * |---|---|
 * | `GET /llmd/kv/layout` → {@link KvLayout} | side-channel handshake (`GET_META_MSG`) |
 * | `GET /llmd/kv/blocks/<remote_request_id>` → the held KV (bytes for real engines, JSON metadata for the sim) | NIXL READ of `remote_block_ids` |
 * | `POST /llmd/kv/release/<remote_request_id>` → 204 | NIXL notification: free the blocks |
 *
 * Facts: reference/engine.md §5.2 (kv_transfer_params, pull model, notification),
 * §7 (NIXL model), §8 (bytes per token = 2 × layers × kv_heads × head_dim × dtype bytes).
 */
import { Agent } from "undici";

/** KV layout a server advertises (`GET /llmd/kv/layout`). Sizes in tokens/bytes. */
export interface KvLayout {
  /** engine id, the `remote_engine_id` of its kv_transfer_params */
  engine_id: string;
  /** served model (base name) */
  model: string;
  /** model file identity (real engines: content hash); optional for the sim */
  model_hash?: string;
  /** `NixlConnector` */
  kv_connector: string;
  /** tokens per KV block */
  block_size: number;
  /** `bf16`, `fp16`, `fp8`, `f16`… */
  kv_cache_dtype: string;
  num_layers: number;
  num_kv_heads: number;
  head_dim: number;
  /** attention backend name, e.g. `FLASH_ATTN` */
  attention_backend: string;
  tp_size: number;
  /** KV bytes per token = 2 × layers × kv_heads × head_dim × dtype bytes (engine.md §8) */
  bytes_per_token: number;
  /** host the server puts in `remote_host` (VLLM_NIXL_SIDE_CHANNEL_HOST); must be routable, not 0.0.0.0 */
  side_channel_host: string;
  /** port the server puts in `remote_port` (its HTTP port: our side channel is HTTP) */
  side_channel_port: number;
}

/** Layout fields that must be equal on both sides of a transfer. */
export const LAYOUT_MATCH_FIELDS = [
  "model",
  "model_hash",
  "block_size",
  "kv_cache_dtype",
  "num_layers",
  "num_kv_heads",
  "head_dim",
  "attention_backend",
  "tp_size",
] as const satisfies readonly (keyof KvLayout)[];

/** Bytes of one element of a KV dtype. @throws Error for an unknown dtype */
export function dtypeBytes(dtype: string): number {
  switch (dtype.toLowerCase()) {
    case "bf16":
    case "bfloat16":
    case "fp16":
    case "f16":
    case "float16":
    case "half":
      return 2;
    case "fp8":
    case "fp8_e4m3":
    case "fp8_e5m2":
    case "q8_0":
      return 1;
    case "f32":
    case "fp32":
    case "float32":
      return 4;
    default:
      throw new Error(`unknown KV cache dtype ${JSON.stringify(dtype)}`);
  }
}

/** KV bytes per token = 2 (K,V) × layers × kv_heads × head_dim × dtype bytes (reference/engine.md §8). */
export function kvBytesPerToken(
  numLayers: number,
  numKvHeads: number,
  headDim: number,
  dtype: string,
): number {
  return 2 * numLayers * numKvHeads * headDim * dtypeBytes(dtype);
}

/** Differences between two layouts on {@link LAYOUT_MATCH_FIELDS}; a field absent on one side is skipped. */
export function layoutDifferences(prefill: KvLayout, decode: KvLayout): string[] {
  const out: string[] = [];
  for (const f of LAYOUT_MATCH_FIELDS) {
    const a = prefill[f];
    const b = decode[f];
    if (a === undefined || b === undefined) continue;
    if (a !== b) out.push(`${f}: prefill ${String(a)} ≠ decode ${String(b)}`);
  }
  return out;
}

/** Renders the fields of a layout that matter for a transfer, for error messages. */
export function describeLayout(l: KvLayout): string {
  return `${l.engine_id} {model ${l.model}${l.model_hash ? ` (${l.model_hash})` : ""}, block_size ${l.block_size}, dtype ${l.kv_cache_dtype}, layers ${l.num_layers}, kv_heads ${l.num_kv_heads}, head_dim ${l.head_dim}, backend ${l.attention_backend}, tp ${l.tp_size}}`;
}

/** A transfer the decode side must refuse (HTTP 400 to the client; counted as a failed transfer). */
export class KvLayoutMismatchError extends Error {
  readonly differences: string[];
  constructor(prefill: KvLayout, decode: KvLayout, differences: string[]) {
    super(
      `KV layout mismatch, transfer refused: ${differences.join("; ")} — prefill ${describeLayout(prefill)} vs decode ${describeLayout(decode)}`,
    );
    this.name = "KvLayoutMismatchError";
    this.differences = differences;
  }
}

/** A pull or notification that failed (prefill unreachable, blocks unknown or expired). */
export class KvTransferError extends Error {
  constructor(
    message: string,
    /** HTTP status from the prefill side, 0 when unreachable */
    readonly status = 0,
  ) {
    super(message);
    this.name = "KvTransferError";
  }
}

/** HTTP client of the side channel, with a handshake cache per remote engine. */
export class KvSideChannel {
  private readonly agent = new Agent({ connections: 16, keepAliveTimeout: 30_000 });
  private readonly layouts = new Map<string, KvLayout>();

  constructor(private readonly timeoutMs = 30_000) {}

  private base(host: string, port: number): string {
    return host.includes(":") && !host.startsWith("[")
      ? `http://[${host}]:${port}`
      : `http://${host}:${port}`;
  }

  /**
   * The remote engine's layout (cached per `engineId` after the first call: the handshake).
   * @throws KvTransferError when unreachable or not a layout
   */
  async layout(host: string, port: number, engineId?: string): Promise<KvLayout> {
    const key = engineId ?? `${host}:${port}`;
    const hit = this.layouts.get(key);
    if (hit) return hit;
    const r = await this.get(host, port, "/llmd/kv/layout");
    let l: KvLayout;
    try {
      l = JSON.parse(r.toString("utf8")) as KvLayout;
    } catch {
      throw new KvTransferError(`side channel ${host}:${port}: /llmd/kv/layout is not JSON`);
    }
    this.layouts.set(key, l);
    return l;
  }

  /**
   * Handshake + check: resolves with the remote layout when it matches `local`.
   * @throws KvLayoutMismatchError naming both layouts; KvTransferError when unreachable
   */
  async checkLayout(
    host: string,
    port: number,
    engineId: string | undefined,
    local: KvLayout,
  ): Promise<KvLayout> {
    const remote = await this.layout(host, port, engineId);
    const diff = layoutDifferences(remote, local);
    if (diff.length > 0) throw new KvLayoutMismatchError(remote, local, diff);
    return remote;
  }

  /**
   * Pulls the KV held for `remoteRequestId` (the READ).
   * @returns the body bytes (engine-specific: state bytes or JSON metadata)
   * @throws KvTransferError (404 when the blocks are unknown or their lease expired)
   */
  pull(host: string, port: number, remoteRequestId: string, signal?: AbortSignal): Promise<Buffer> {
    return this.get(host, port, `/llmd/kv/blocks/${encodeURIComponent(remoteRequestId)}`, signal);
  }

  /**
   * Notifies the prefill side to free the blocks (after the pull, or when the decode request
   * was aborted before pulling).
   * @throws KvTransferError when the notification fails
   */
  async release(host: string, port: number, remoteRequestId: string): Promise<void> {
    try {
      const r = await this.agent.request({
        origin: this.base(host, port),
        method: "POST",
        path: `/llmd/kv/release/${encodeURIComponent(remoteRequestId)}`,
        headersTimeout: this.timeoutMs,
        bodyTimeout: this.timeoutMs,
      });
      await r.body.dump();
      if (r.statusCode >= 300 && r.statusCode !== 404) {
        throw new KvTransferError(`release ${remoteRequestId}: HTTP ${r.statusCode}`, r.statusCode);
      }
    } catch (e) {
      if (e instanceof KvTransferError) throw e;
      throw new KvTransferError(`release ${remoteRequestId} at ${host}:${port}: ${(e as Error).message}`);
    }
  }

  private async get(host: string, port: number, path: string, signal?: AbortSignal): Promise<Buffer> {
    let r: Awaited<ReturnType<Agent["request"]>>;
    try {
      r = await this.agent.request({
        origin: this.base(host, port),
        method: "GET",
        path,
        signal,
        headersTimeout: this.timeoutMs,
        bodyTimeout: this.timeoutMs,
      });
    } catch (e) {
      throw new KvTransferError(`side channel ${host}:${port}${path}: ${(e as Error).message}`);
    }
    const body = Buffer.from(await r.body.arrayBuffer());
    if (r.statusCode !== 200) {
      throw new KvTransferError(
        `side channel ${host}:${port}${path}: HTTP ${r.statusCode} ${body.toString("utf8").slice(0, 200)}`,
        r.statusCode,
      );
    }
    return body;
  }

  /** Closes connections. */
  async close(): Promise<void> {
    await this.agent.close();
  }
}
