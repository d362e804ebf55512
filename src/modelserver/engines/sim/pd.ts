/**
 * P/D (NixlConnector) for the sim engine, both roles (reference/engine.md §5.2, §7, §8):
 *
 * - **prefill role** (`do_remote_decode`): when the 1-token prefill finishes with `length`, the
 *   engine hands the prompt's full blocks to {@link SimPd.hold}: they stay referenced (they count
 *   in `vllm:kv_cache_usage_perc` and cannot be evicted) under the request id until the decode
 *   side releases them (`POST /llmd/kv/release/<id>`, the NIXL notification) or the lease runs
 *   out (`kv_lease_duration`, default 30 s wall-clock, not time-scaled; counted in
 *   `vllm:nixl_num_kv_expired_reqs`). `GET /llmd/kv/blocks/<id>` answers JSON metadata of the
 *   held blocks (`{engine_id, request_id, block_size, block_ids, tokens, num_tokens,
 *   bytes_per_token, bytes}`) and renews the lease (the decoder's heartbeat).
 * - **decode role** (`do_remote_prefill`): {@link SimPd.prepareRemote} runs before the engine
 *   sees the request: the side-channel handshake + layout check (a mismatch is refused with a
 *   400 naming both layouts, counted in `vllm:nixl_num_failed_transfers`, never garbage), then the
 *   pull of the metadata (the pulled tokens must be a prefix of this request's prompt, or the
 *   transfer is refused). The engine then simulates the READ of the full blocks it does not
 *   already cache over the {@link KvLink} and calls {@link SimPd.completed}, which records the
 *   `vllm:nixl_*` metrics and notifies the prefill side (release). Pull failures follow
 *   `kv_load_failure_policy`: `fail` (error to the client, counted) or `recompute` (local
 *   prefill; the prefill side is still notified).
 */
import { ApiError } from "../../../api/errors.js";
import type { KvTransferParams } from "../../../api/openai.js";
import { logger } from "../../../log.js";
import type { EngineObserver, EnginePd } from "../../engine.js";
import { type KvLink, transferMs } from "../../kv-link.js";
import {
  type KvLayout,
  KvLayoutMismatchError,
  KvSideChannel,
  KvTransferError,
  kvBytesPerToken,
} from "../../kv-transfer.js";
import type { KvBlock } from "./kv-cache.js";

const log = logger.child({ component: "sim-pd" });

/** `kv_load_failure_policy` (reference/engine.md §5.1). */
export type KvLoadFailurePolicy = "fail" | "recompute";

/** KV geometry and P/D settings of a sim server. Defaults: Llama-3.1-8B (engine.md §8). */
export interface SimPdOptions {
  /** `remote_engine_id` / layout `engine_id` */
  engineId: string;
  model: string;
  blockSize: number;
  numLayers: number;
  numKvHeads: number;
  headDim: number;
  /** `bf16`, `fp16`, `fp8`… */
  kvCacheDtype: string;
  /** e.g. `FLASH_ATTN` */
  attentionBackend: string;
  tensorParallelSize: number;
  /** how long held blocks wait for the decode side, ms wall-clock (default 30 000) */
  kvLeaseMs: number;
  /** the link the decode side pulls over */
  link: KvLink;
  kvLoadFailurePolicy: KvLoadFailurePolicy;
}

/** Metadata the prefill side serves on `GET /llmd/kv/blocks/<id>` (the sim's "KV bytes"). */
export interface SimKvMeta {
  engine_id: string;
  request_id: string;
  block_size: number;
  /** held block ids (full prompt blocks) */
  block_ids: number[];
  /** tokens of those blocks (`block_ids.length × block_size`) */
  tokens: number[];
  num_tokens: number;
  bytes_per_token: number;
  /** bytes the held blocks represent */
  bytes: number;
}

/** What the decode side learnt before admission (handshake + pull), for the engine. */
export interface RemoteKv {
  host: string;
  port: number;
  remoteRequestId: string;
  /** full blocks the prefill side holds for this prompt */
  blocks: number;
  /** handshake + pull wall time, seconds (`vllm:nixl_post_time_seconds`) */
  postS: number;
}

interface Held {
  blocks: KvBlock[];
  tokens: number[];
  timer: NodeJS.Timeout;
}

/** What {@link SimPd} needs from the engine. */
export interface SimPdHost {
  /** drops the references of held blocks */
  free(blocks: KvBlock[]): void;
  /** the engine's current observer (metrics) */
  observer(): EngineObserver | null;
  /** blocks were freed: let waiting requests in */
  wake(): void;
}

/** The sim's {@link EnginePd}. */
export class SimPd implements EnginePd {
  private readonly held = new Map<string, Held>();
  private readonly remote = new WeakMap<object, RemoteKv>();
  private readonly channel = new KvSideChannel();
  private host = "127.0.0.1";
  private port = 0;
  /** bytes of KV per token (engine.md §8) */
  readonly bytesPerToken: number;

  /** @throws Error on an unknown KV dtype */
  constructor(
    readonly opts: SimPdOptions,
    private readonly engine: SimPdHost,
  ) {
    this.bytesPerToken = kvBytesPerToken(opts.numLayers, opts.numKvHeads, opts.headDim, opts.kvCacheDtype);
  }

  setSideChannel(host: string, port: number): void {
    this.host = host;
    this.port = port;
  }

  /** The advertised side channel (host, port). */
  get sideChannel(): { host: string; port: number } {
    return { host: this.host, port: this.port };
  }

  layout(): KvLayout {
    const o = this.opts;
    return {
      engine_id: o.engineId,
      model: o.model,
      kv_connector: "NixlConnector",
      block_size: o.blockSize,
      kv_cache_dtype: o.kvCacheDtype,
      num_layers: o.numLayers,
      num_kv_heads: o.numKvHeads,
      head_dim: o.headDim,
      attention_backend: o.attentionBackend,
      tp_size: o.tensorParallelSize,
      bytes_per_token: this.bytesPerToken,
      side_channel_host: this.host,
      side_channel_port: this.port,
    };
  }

  /** Requests whose KV is held for a remote decode (tests, metrics). */
  get heldCount(): number {
    return this.held.size;
  }

  /**
   * Prefill role: keeps `blocks` (already referenced by the request) for `requestId` until
   * released or the lease expires. A previous hold under the same id is freed first.
   */
  hold(requestId: string, blocks: KvBlock[], tokens: number[]): void {
    this.drop(requestId);
    const timer = setTimeout(() => this.expire(requestId), this.opts.kvLeaseMs);
    timer.unref();
    this.held.set(requestId, { blocks, tokens, timer });
  }

  private drop(id: string): boolean {
    const h = this.held.get(id);
    if (!h) return false;
    clearTimeout(h.timer);
    this.held.delete(id);
    this.engine.free(h.blocks);
    this.engine.wake();
    return true;
  }

  private expire(id: string): void {
    if (!this.drop(id)) return;
    log.warn({ requestId: id, leaseMs: this.opts.kvLeaseMs }, "KV held for a remote decode expired unread");
    this.engine
      .observer()
      ?.onKvTransfer?.({ kind: "expired", ok: false, bytes: 0, xferS: 0, postS: 0, descriptors: 0 });
  }

  async pull(remoteRequestId: string): Promise<{ contentType: string; body: Buffer } | null> {
    const h = this.held.get(remoteRequestId);
    if (!h) return null;
    h.timer.refresh();
    const meta: SimKvMeta = {
      engine_id: this.opts.engineId,
      request_id: remoteRequestId,
      block_size: this.opts.blockSize,
      block_ids: h.blocks.map((b) => b.id),
      tokens: h.tokens,
      num_tokens: h.tokens.length,
      bytes_per_token: this.bytesPerToken,
      bytes: h.tokens.length * this.bytesPerToken,
    };
    return { contentType: "application/json", body: Buffer.from(JSON.stringify(meta)) };
  }

  release(remoteRequestId: string): boolean {
    return this.drop(remoteRequestId);
  }

  /**
   * Decode role, before admission: handshake + layout check + pull of the metadata.
   * @returns the params to pass to the engine (registered for {@link remoteFor}); `params`
   *   itself when it names no side channel (the engine then assumes every full prompt block is
   *   remote); null when the pull failed under the `recompute` policy (local prefill)
   * @throws ApiError 400 on a layout mismatch or a pulled prompt that differs from this one;
   *   ApiError 502 when the pull failed under the `fail` policy
   */
  async prepareRemote(
    params: KvTransferParams,
    promptTokens: readonly number[],
    signal?: AbortSignal,
  ): Promise<KvTransferParams | null> {
    const host = params.remote_host;
    const port = params.remote_port;
    const id = params.remote_request_id;
    if (typeof host !== "string" || typeof port !== "number" || typeof id !== "string") return params;
    const t0 = performance.now();
    const fail = (why: string, status: number): null => {
      this.engine
        .observer()
        ?.onKvTransfer?.({ kind: "pull", ok: false, bytes: 0, xferS: 0, postS: 0, descriptors: 0 });
      // the prefill side frees its blocks (vLLM notifies even when nothing is read)
      void this.notify(host, port, id);
      if (this.opts.kvLoadFailurePolicy === "recompute" && status !== 400) {
        log.warn({ remote: `${host}:${port}`, why }, "KV pull failed: recomputing the prompt locally");
        return null;
      }
      throw new ApiError(status, why);
    };
    let meta: SimKvMeta;
    try {
      await this.channel.checkLayout(host, port, params.remote_engine_id ?? undefined, this.layout());
      const body = await this.channel.pull(host, port, id, signal);
      meta = JSON.parse(body.toString("utf8")) as SimKvMeta;
    } catch (e) {
      if (signal?.aborted) throw e;
      if (e instanceof KvLayoutMismatchError) return fail(e.message, 400);
      const msg = e instanceof KvTransferError ? e.message : `KV pull: ${(e as Error).message}`;
      return fail(`KV transfer failed: ${msg}`, 502);
    }
    const n = Math.min(meta.tokens?.length ?? 0, promptTokens.length);
    for (let i = 0; i < n; i++) {
      if (meta.tokens[i] !== promptTokens[i]) {
        return fail(
          `KV transfer refused: the KV pulled from ${meta.engine_id} (request ${id}) is for a different prompt (first difference at token ${i})`,
          400,
        );
      }
    }
    const out: KvTransferParams = { ...params };
    this.remote.set(out, {
      host,
      port,
      remoteRequestId: id,
      blocks: Math.floor(n / this.opts.blockSize),
      postS: (performance.now() - t0) / 1000,
    });
    return out;
  }

  /** What {@link prepareRemote} learnt for these params (undefined: not prepared). */
  remoteFor(params: KvTransferParams | null | undefined): RemoteKv | undefined {
    return params ? this.remote.get(params) : undefined;
  }

  /** Simulated time to move `blocks` full blocks over the link, ms. */
  transferMs(blocks: number): number {
    return transferMs(this.opts.link, blocks * this.opts.blockSize * this.bytesPerToken);
  }

  /**
   * Decode role: the simulated READ of `blocks` full blocks finished after `xferS` wall
   * seconds: records it (`vllm:nixl_*`) and notifies the prefill side. Zero blocks (a full
   * local prefix hit) records no transfer but still notifies.
   */
  completed(remote: RemoteKv | undefined, blocks: number, xferS: number): void {
    if (blocks > 0) {
      this.engine.observer()?.onKvTransfer?.({
        kind: "pull",
        ok: true,
        bytes: blocks * this.opts.blockSize * this.bytesPerToken,
        xferS,
        postS: remote?.postS ?? 0,
        descriptors: this.opts.numLayers * 2 * blocks,
      });
    }
    if (remote) void this.notify(remote.host, remote.port, remote.remoteRequestId);
  }

  /** Decode role: the request ended before its KV arrived: notify the prefill side anyway. */
  abandoned(remote: RemoteKv | undefined): void {
    if (remote) void this.notify(remote.host, remote.port, remote.remoteRequestId);
  }

  private async notify(host: string, port: number, id: string): Promise<void> {
    try {
      await this.channel.release(host, port, id);
    } catch (e) {
      log.warn({ err: (e as Error).message }, "KV release notification failed");
      this.engine.observer()?.onKvTransfer?.({
        kind: "notify",
        ok: false,
        bytes: 0,
        xferS: 0,
        postS: 0,
        descriptors: 0,
        notifyFailed: true,
      });
    }
  }

  /** Frees everything held and closes the side-channel client. */
  async close(): Promise<void> {
    for (const id of [...this.held.keys()]) this.drop(id);
    await this.channel.close();
  }
}
