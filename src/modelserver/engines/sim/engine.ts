/**
 * The sim engine: an iteration-level model of vLLM's continuous batching on a simulated
 * accelerator (DESIGN.md "Two engines"; flags after llm-d-inference-sim, reference/engine.md
 * §6.2–6.4).
 *
 * **Scheduler** (vLLM v1 style, one unified rule): every request has `tokens` (prompt +
 * output so far) and `computed` (tokens whose KV exists). A step schedules
 * `min(tokens − computed, budget)` tokens per request: that is a prefill chunk while the
 * prompt is being computed (chunked prefill) and exactly one token in decode. Running
 * requests are served first, in admission order; then, if nothing was preempted in this step,
 * waiting requests are admitted FCFS while fewer than `maxNumSeqs` run and the budget
 * (`maxNumBatchedTokens`) lasts. When a request's computed count reaches its token count, the
 * step samples one new token for it.
 *
 * **KV cache**: see `kv-cache.ts`. On admission the longest cached prefix of full blocks is
 * reused (never the whole prompt: at least the last token is computed, as in vLLM); a request
 * that cannot get blocks stays at the head of the queue. When a running request cannot get a
 * block, the most recently admitted running request is preempted (blocks freed, `computed`
 * reset, requeued at the front; `vllm:num_preemptions_total`). A request whose prompt +
 * max_tokens needs more blocks than the whole cache is refused with 400 up front.
 *
 * **Step time** (ms of simulated time):
 * `stepOverhead + prefillCost + (decodeSeqs > 0 ? ITL × (1 + decodeBatchFactor × (decodeSeqs − 1)) : 0)`
 * where with the `per-token` latency calculator
 * `prefillCost = prefillTokens > 0 ? prefillOverhead + prefillTokens × prefillTimePerToken : 0`
 * (prefill overhead once per step that has prefill work) and with the `constant` calculator
 * each prefill chunk of n tokens costs `timeToFirstToken × n / (tokens to compute at
 * admission)`, so a request's prefill sums to `timeToFirstToken`. Calculator `""` (default)
 * picks `constant` when `timeToFirstToken > 0`, else `per-token` (the sim's legacy rule).
 * A decode step that also carries a long prefill takes longer: that stall is the effect P/D
 * removes. Wall-clock time per step is `stepMs / timeScale` (steps are paced against a
 * deadline so timer lateness does not accumulate); with 0 ms the loop still yields through
 * `setImmediate`, and it stops when idle (no timers, no spinning). The simulated clock
 * (`simNowMs`, used by {@link StepRecord} and {@link RequestRecord}) advances only by step
 * durations: idle time is not counted.
 *
 * **P/D** (`pd.ts`, docs/pd.md): a prefill leg (`do_remote_decode`) that finishes with `length`
 * holds its prompt's full blocks for the decode side (release or lease expiry); a decode leg
 * (`do_remote_prefill`) is admitted with its prompt blocks allocated, waits outside the steps for
 * the simulated transfer of the full blocks it does not cache (`latency + bytes / bandwidth`),
 * then computes only the tokens past the last pulled full block within its first decode step
 * (one ITL share + `prefillTimePerToken` each, no prefill overhead).
 */
import { randomUUID } from "node:crypto";
import { performance } from "node:perf_hooks";
import { ApiError } from "../../../api/errors.js";
import type { KvTransferParams } from "../../../api/openai.js";
import type {
  Engine,
  EngineFinish,
  EngineInfo,
  EngineObserver,
  EngineOutput,
  EngineRequest,
  EngineStats,
  FinishReason,
} from "../../engine.js";
import { SimTokenizer } from "../../tokenizer.js";
import { DEFAULT_KV_LINK, KV_LINK_PRESETS } from "../../kv-link.js";
import { blockHashes, firstBlockExtra, type KvBlock, KvCache } from "./kv-cache.js";
import { type KvLoadFailurePolicy, type RemoteKv, SimPd } from "./pd.js";
import { echoPlan, randomPlan, type TextPlan, WordTokens } from "./text.js";

/** Options of the sim engine. Durations are ms of simulated time. */
export interface SimEngineOptions {
  /** model name (also mixed into the first block hash) */
  model: string;
  /** max prompt + output tokens (default 8192) */
  maxModelLen: number;
  /** max running requests (default 16) */
  maxNumSeqs: number;
  /** token budget per step (default 2048) */
  maxNumBatchedTokens: number;
  /** tokens per KV block (default 16) */
  blockSize: number;
  /** KV blocks (default 1024) */
  numGpuBlocks: number;
  /** waiting requests beyond which a new request gets 429 (default 1000) */
  maxWaitingQueueLength: number;
  /** output text mode (default random) */
  mode: "echo" | "random";
  /** server seed for random mode (default 0) */
  seed: number;
  /** `""` (legacy rule), `constant` or `per-token` */
  latencyCalculator: "" | "constant" | "per-token";
  /** constant TTFT, ms (default 0 = unset) */
  timeToFirstTokenMs: number;
  /** per-token prefill: overhead per step with prefill work, ms (default 30) */
  prefillOverheadMs: number;
  /** per-token prefill: ms per prefill token (default 0.25) */
  prefillTimePerTokenMs: number;
  /** decode step time for one sequence, ms (default 12) */
  interTokenLatencyMs: number;
  /** extra fraction of ITL per additional decoding sequence in a step (default 0.02) */
  decodeBatchFactor: number;
  /** fixed cost of every step, ms (default 0) */
  stepOverheadMs: number;
  /** speed-up factor: every duration is divided by it (default 1) */
  timeScale: number;
  /** keep the last N step and request records for tests (default 0) */
  historySize: number;
  /** P/D decode side: constant KV pull time, ms (llm-d-inference-sim flag; default 0 = unset) */
  kvCacheTransferLatencyMs: number;
  /**
   * P/D decode side: KV pull time per moved token, ms (llm-d-inference-sim flag; default 0 =
   * unset: the link model `kvLinkLatencyMs + bytes / kvLinkBandwidthBytesPerS` is used)
   */
  kvCacheTransferTimePerTokenMs: number;
  /** KV geometry (layout and bytes per token, reference/engine.md §8); default Llama-3.1-8B: 32 */
  numLayers: number;
  /** default 8 */
  numKvHeads: number;
  /** default 128 */
  headDim: number;
  /** KV dtype: bf16 (default), fp16, fp8… */
  kvCacheDtype: string;
  /** attention backend advertised in the layout (default FLASH_ATTN) */
  attentionBackend: string;
  /** tensor-parallel size advertised (`tp_size`, default 1) */
  tensorParallelSize: number;
  /** P/D prefill side: how long KV is held for a remote decode, ms wall-clock (default 30 000) */
  kvLeaseMs: number;
  /** P/D decode side: link bandwidth, bytes/s (default the rdma-100g preset: 10 GB/s) */
  kvLinkBandwidthBytesPerS: number;
  /** P/D decode side: fixed latency per transfer, ms of simulated time (default 1) */
  kvLinkLatencyMs: number;
  /** `kv_load_failure_policy`: fail (default) or recompute (reference/engine.md §5.1) */
  kvLoadFailurePolicy: KvLoadFailurePolicy;
  /** engine id (`remote_engine_id`); "" (default) = a random uuid */
  engineId: string;
}

/** Defaults: the "8B on H100" profile of llm-d-inference-sim (reference/engine.md §6.4). */
export const SIM_DEFAULTS: SimEngineOptions = {
  model: "llmd/sim-8b",
  maxModelLen: 8192,
  maxNumSeqs: 16,
  maxNumBatchedTokens: 2048,
  blockSize: 16,
  numGpuBlocks: 1024,
  maxWaitingQueueLength: 1000,
  mode: "random",
  seed: 0,
  latencyCalculator: "",
  timeToFirstTokenMs: 0,
  prefillOverheadMs: 30,
  prefillTimePerTokenMs: 0.25,
  interTokenLatencyMs: 12,
  decodeBatchFactor: 0.02,
  stepOverheadMs: 0,
  timeScale: 1,
  historySize: 0,
  kvCacheTransferLatencyMs: 0,
  kvCacheTransferTimePerTokenMs: 0,
  numLayers: 32,
  numKvHeads: 8,
  headDim: 128,
  kvCacheDtype: "bf16",
  attentionBackend: "FLASH_ATTN",
  tensorParallelSize: 1,
  kvLeaseMs: 30_000,
  kvLinkBandwidthBytesPerS: KV_LINK_PRESETS[DEFAULT_KV_LINK].bandwidthBytesPerS,
  kvLinkLatencyMs: KV_LINK_PRESETS[DEFAULT_KV_LINK].latencyMs,
  kvLoadFailurePolicy: "fail",
  engineId: "",
};

/** One engine step, in simulated time (history for tests and benches). */
export interface StepRecord {
  /** simulated ms at step start */
  startMs: number;
  /** simulated step duration, ms */
  durationMs: number;
  /** prefill tokens in the step */
  prefillTokens: number;
  /** sequences that decoded one token in the step */
  decodeSeqs: number;
  /** sequences scheduled (prefill + decode) */
  seqs: number;
}

/** One finished request, in simulated time. */
export interface RequestRecord {
  requestId: string;
  promptTokens: number;
  cachedTokens: number;
  completionTokens: number;
  reason: FinishReason;
  /** arrival → first token, simulated ms (NaN when no token) */
  ttftMs: number;
  /** simulated ms between consecutive output tokens */
  itlMs: number[];
  /** prefill tokens computed for it (prompt − cached, plus recomputation after preemption) */
  prefillTokens: number;
  preemptions: number;
}

const WAITING = 0;
const RUNNING = 1;
const DONE = 2;
/** P/D decode side: blocks allocated, KV being pulled (vLLM `WAITING_FOR_REMOTE_KVS`) */
const LOADING = 3;
/** P/D decode side: KV pulled, waiting for a running slot */
const LOADED = 4;

/** Push-based async iterator of engine outputs (coalesces tokens when the reader lags). */
class OutputChannel implements AsyncIterable<EngineOutput> {
  private readonly buf: EngineOutput[] = [];
  private waiter: ((r: IteratorResult<EngineOutput>) => void) | null = null;
  private ended = false;

  push(o: EngineOutput): void {
    if (this.ended) return;
    if (o.finish) this.ended = true;
    const w = this.waiter;
    if (w) {
      this.waiter = null;
      w({ value: o, done: false });
      return;
    }
    const last = this.buf[this.buf.length - 1];
    if (last && !last.finish) {
      for (const t of o.tokens) last.tokens.push(t);
      if (o.finish) last.finish = o.finish;
    } else this.buf.push(o);
  }

  [Symbol.asyncIterator](): AsyncIterator<EngineOutput> {
    return {
      next: () => {
        const v = this.buf.shift();
        if (v) return Promise.resolve({ value: v, done: false });
        if (this.ended) return Promise.resolve({ value: undefined, done: true });
        return new Promise((r) => {
          this.waiter = r;
        });
      },
      return: () => {
        this.ended = true;
        this.buf.length = 0;
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }
}

class Seq {
  state = WAITING;
  readonly tokens: number[];
  computed = 0;
  blocks: KvBlock[] = [];
  readonly hashes: bigint[] = [];
  committed = 0;
  outputs = 0;
  cachedTokens = -1;
  prefillTarget = 1;
  everScheduled = false;
  preemptions = 0;
  prefillTokens = 0;
  scheduledWall = 0;
  firstTokenWall = 0;
  lastTokenWall = 0;
  readonly arrivalSim: number;
  firstTokenSim = Number.NaN;
  lastTokenSim = 0;
  readonly itlSim: number[] | null;
  onAbort: (() => void) | null = null;
  /** P/D decode leg (`kv_transfer_params.do_remote_prefill`): the prompt's KV is pulled */
  readonly remotePrefill: boolean;
  /** P/D prefill leg (`kv_transfer_params.do_remote_decode`) */
  readonly remoteDecode: boolean;
  loadTimer: NodeJS.Timeout | null = null;
  /** P/D decode leg: what the side channel told (undefined: no side channel, all blocks assumed remote) */
  remote: RemoteKv | undefined;
  /** all tokens but the latest are computed: the next step is a one-token decode */
  inDecode = false;

  constructor(
    readonly req: EngineRequest,
    readonly plan: TextPlan,
    readonly firstExtra: string,
    readonly arrivalWall: number,
    arrivalSim: number,
    readonly channel: OutputChannel,
    recordItl: boolean,
  ) {
    this.tokens = req.promptTokens.slice();
    this.remotePrefill = req.kvTransferParams?.do_remote_prefill === true;
    this.remoteDecode = req.kvTransferParams?.do_remote_decode === true;
    this.arrivalSim = arrivalSim;
    this.itlSim = recordItl ? [] : null;
  }
}

/** The simulated-accelerator engine. */
export class SimEngine implements Engine {
  readonly info: EngineInfo;
  readonly tokenizer: SimTokenizer;
  readonly opts: SimEngineOptions;
  /** the block pool (exported for tests and metrics) */
  readonly kv: KvCache;
  /** last `historySize` steps */
  readonly steps: StepRecord[] = [];
  /** last `historySize` finished requests */
  readonly finished: RequestRecord[] = [];
  /** current simulated time, ms */
  simNowMs = 0;

  private readonly words: WordTokens;
  private readonly running: Seq[] = [];
  private readonly waiting: Seq[] = [];
  /** P/D decode legs pulling KV */
  private readonly loading = new Set<Seq>();
  /** P/D decode legs whose KV arrived, waiting for a running slot */
  private readonly loaded: Seq[] = [];
  /** `remote_engine_id` this engine reports on prefill responses */
  readonly engineId: string;
  /** P/D: both roles (side channel, held blocks, simulated transfers) */
  readonly pd: SimPd;
  private readonly calc: "constant" | "per-token";
  private observer: EngineObserver | null = null;
  private loopActive = false;
  private preemptedInStep = false;
  /** hashes evicted since the last `onBlocksRemoved` */
  private readonly evicted: bigint[] = [];
  private closed = false;
  private timer: NodeJS.Timeout | null = null;
  private wallDeadline = 0;
  private readonly counters = {
    prefixCacheQueries: 0,
    prefixCacheHits: 0,
    promptTokens: 0,
    generationTokens: 0,
    preemptions: 0,
  };

  /**
   * @throws RangeError on invalid sizes (non-positive counts, time scale ≤ 0)
   */
  constructor(opts: Partial<SimEngineOptions> = {}) {
    const o: SimEngineOptions = { ...SIM_DEFAULTS };
    for (const [k, v] of Object.entries(opts))
      if (v !== undefined) (o as unknown as Record<string, unknown>)[k] = v;
    for (const k of [
      "maxModelLen",
      "maxNumSeqs",
      "maxNumBatchedTokens",
      "blockSize",
      "numGpuBlocks",
    ] as const) {
      if (!Number.isInteger(o[k]) || o[k] < 1) throw new RangeError(`${k} must be a positive integer`);
    }
    if (!(o.timeScale > 0)) throw new RangeError("timeScale must be > 0");
    if (!Number.isInteger(o.maxWaitingQueueLength) || o.maxWaitingQueueLength < 0) {
      throw new RangeError("maxWaitingQueueLength must be an integer ≥ 0");
    }
    this.opts = o;
    this.calc =
      o.latencyCalculator === ""
        ? o.timeToFirstTokenMs > 0
          ? "constant"
          : "per-token"
        : o.latencyCalculator;
    this.kv = new KvCache(o.numGpuBlocks, o.blockSize);
    this.engineId = o.engineId || randomUUID();
    this.pd = new SimPd(
      {
        engineId: this.engineId,
        model: o.model,
        blockSize: o.blockSize,
        numLayers: o.numLayers,
        numKvHeads: o.numKvHeads,
        headDim: o.headDim,
        kvCacheDtype: o.kvCacheDtype,
        attentionBackend: o.attentionBackend,
        tensorParallelSize: o.tensorParallelSize,
        kvLeaseMs: o.kvLeaseMs,
        link: { bandwidthBytesPerS: o.kvLinkBandwidthBytesPerS, latencyMs: o.kvLinkLatencyMs },
        kvLoadFailurePolicy: o.kvLoadFailurePolicy,
      },
      {
        free: (blocks) => this.kv.free(blocks),
        observer: () => this.observer,
        wake: () => this.wake(),
      },
    );
    this.kv.onEvict = (h) => this.evicted.push(h);
    this.tokenizer = new SimTokenizer();
    this.words = new WordTokens(this.tokenizer);
    this.info = {
      model: o.model,
      maxModelLen: o.maxModelLen,
      blockSize: o.blockSize,
      numGpuBlocks: o.numGpuBlocks,
      kind: "sim",
    };
  }

  setObserver(o: EngineObserver | null): void {
    this.observer = o;
  }

  stats(): EngineStats {
    return {
      running: this.running.length,
      waiting: this.waiting.length + this.loading.size + this.loaded.length,
      kvCacheUsage: this.kv.usage(),
      ...this.counters,
    };
  }

  generate(req: EngineRequest): AsyncIterable<EngineOutput> {
    if (this.closed) throw new ApiError(503, "The engine is shutting down");
    const o = this.opts;
    const n = req.promptTokens.length;
    if (n === 0) throw new ApiError(400, "The prompt must contain at least one token", { param: "prompt" });
    const maxTokens = req.params.maxTokens;
    if (n + maxTokens > o.maxModelLen) {
      throw new ApiError(
        400,
        `This model's maximum context length is ${o.maxModelLen} tokens. However, you requested ${n + maxTokens} tokens (${n} in the messages, ${maxTokens} in the completion). Please reduce the length of the messages or completion.`,
      );
    }
    const blocksNeeded = Math.ceil((n + maxTokens) / o.blockSize);
    if (blocksNeeded > o.numGpuBlocks) {
      throw new ApiError(
        400,
        `The request needs ${blocksNeeded} KV-cache blocks (${n + maxTokens} tokens) but the cache has only ${o.numGpuBlocks}`,
      );
    }
    if (this.waiting.length >= o.maxWaitingQueueLength) {
      throw new ApiError(429, "Failed to enqueue request, waiting requests queue is full");
    }
    const signal = req.signal;
    if (signal?.aborted) throw new ApiError(499, "Request aborted by the client");
    const plan =
      o.mode === "echo"
        ? echoPlan(req.echoTokens ?? req.promptTokens, req.params)
        : randomPlan(this.words, o.seed, req.promptTokens, req.params);
    const channel = new OutputChannel();
    const seq = new Seq(
      req,
      plan,
      firstBlockExtra(o.model, req.cacheSalt),
      req.arrivalMs ?? performance.now(),
      this.simNowMs,
      channel,
      o.historySize > 0,
    );
    if (signal) {
      seq.onAbort = () => this.finish(seq, "abort");
      signal.addEventListener("abort", seq.onAbort, { once: true });
    }
    this.waiting.push(seq);
    this.wake();
    return channel;
  }

  /**
   * `POST /reset_prefix_cache`: drops every cached prefix block (see `KvCache.resetPrefixCache`).
   * @returns false when running requests still hold blocks (nothing changed), as vLLM
   */
  resetPrefixCache(): boolean {
    return this.kv.resetPrefixCache();
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    for (const s of [...this.running, ...this.waiting, ...this.loading, ...this.loaded])
      this.finish(s, "abort");
    await this.pd.close();
  }

  private wake(): void {
    if (this.loopActive || this.closed) return;
    this.loopActive = true;
    this.wallDeadline = performance.now();
    setImmediate(() => this.step());
  }

  /** One engine step: schedule, wait the step's (scaled) time, then apply. */
  private step(): void {
    this.timer = null;
    if (this.closed) {
      this.loopActive = false;
      return;
    }
    const batch = this.schedule();
    if (batch.length === 0) {
      // Nothing runnable: either idle, or only KV pulls are pending (their completion wakes
      // the loop). After a preemption the next step can admit again.
      if (!this.preemptedInStep) {
        this.loopActive = false;
        return;
      }
      setImmediate(() => this.step());
      return;
    }
    const o = this.opts;
    let prefillTokens = 0;
    let decodeSeqs = 0;
    let constPrefill = 0;
    let total = 0;
    let remainderTokens = 0;
    for (const [seq, n, decode] of batch) {
      total += n;
      if (decode) {
        decodeSeqs++;
        remainderTokens += n - 1;
      } else {
        prefillTokens += n;
        constPrefill += (o.timeToFirstTokenMs * n) / seq.prefillTarget;
      }
    }
    let stepMs = o.stepOverheadMs;
    if (prefillTokens > 0) {
      stepMs +=
        this.calc === "constant"
          ? constPrefill
          : o.prefillOverheadMs + prefillTokens * o.prefillTimePerTokenMs;
    }
    if (decodeSeqs > 0) stepMs += o.interTokenLatencyMs * (1 + o.decodeBatchFactor * (decodeSeqs - 1));
    // P/D: prompt tokens past the pulled blocks, computed with a decode step
    if (remainderTokens > 0) stepMs += remainderTokens * o.prefillTimePerTokenMs;
    const startMs = this.simNowMs;
    if (o.historySize > 0) {
      this.steps.push({ startMs, durationMs: stepMs, prefillTokens, decodeSeqs, seqs: batch.length });
      if (this.steps.length > o.historySize) this.steps.shift();
    }
    this.observer?.onIteration?.(total);
    this.emitEvicted();
    const apply = () => {
      this.timer = null;
      if (this.closed) {
        this.loopActive = false;
        return;
      }
      this.simNowMs = startMs + stepMs;
      this.apply(batch);
      this.observer?.onStepEnd?.();
      this.step();
    };
    const scaled = stepMs / o.timeScale;
    const now = performance.now();
    if (this.wallDeadline < now - 50) this.wallDeadline = now;
    this.wallDeadline += scaled;
    const delay = this.wallDeadline - now;
    if (delay >= 1) this.timer = setTimeout(apply, delay);
    else setImmediate(apply);
  }

  /** Picks this step's work: [seq, tokens, isDecode][]. */
  private schedule(): [Seq, number, boolean][] {
    const o = this.opts;
    const bs = o.blockSize;
    const kv = this.kv;
    let budget = o.maxNumBatchedTokens;
    const out: [Seq, number, boolean][] = [];
    let preempted = false;
    this.preemptedInStep = false;
    let i = 0;
    while (i < this.running.length && budget > 0) {
      const seq = this.running[i]!;
      const need = seq.tokens.length - seq.computed;
      const n = Math.min(need, budget);
      if (n <= 0) {
        i++;
        continue;
      }
      const newBlocks = Math.ceil((seq.computed + n) / bs) - seq.blocks.length;
      let ok = true;
      if (newBlocks > 0) {
        for (;;) {
          const got = kv.allocate(newBlocks);
          if (got) {
            for (const b of got) seq.blocks.push(b);
            break;
          }
          const victim = this.running[this.running.length - 1]!;
          this.preempt(victim);
          preempted = true;
          if (victim === seq) {
            ok = false;
            break;
          }
        }
      }
      if (!ok) break;
      const decode = seq.inDecode && need === 1;
      out.push([seq, n, decode]);
      budget -= n;
      i++;
    }
    if (preempted) {
      this.preemptedInStep = true;
      return out;
    }
    // P/D decode legs whose KV arrived: the prompt tokens past the last pulled full block (at
    // least the last one) join the batch like a decode (one ITL share + per-token cost, no
    // prefill overhead); a longer remainder (blocks the prefill side did not have) is a prefill.
    while (this.loaded.length > 0 && this.running.length < o.maxNumSeqs && budget > 0) {
      const seq = this.loaded.shift()!;
      seq.state = RUNNING;
      this.running.push(seq);
      const rest = seq.tokens.length - seq.computed;
      if (rest > bs) {
        const n = Math.min(rest, budget);
        out.push([seq, n, false]);
        budget -= n;
      } else {
        seq.inDecode = true;
        seq.prefillTokens += rest;
        out.push([seq, rest, true]);
        budget -= rest;
      }
    }
    while (this.waiting.length > 0 && this.running.length < o.maxNumSeqs && budget > 0) {
      const seq = this.waiting[0]!;
      const total = seq.tokens.length;
      blockHashes(seq.tokens, bs, seq.firstExtra, seq.hashes);
      const hit = kv.lookup(seq.hashes, Math.floor((total - 1) / bs));
      const hitTokens = hit.length * bs;
      const pull = seq.remotePrefill && !seq.everScheduled;
      const n = pull ? total - hitTokens : Math.min(total - hitTokens, budget);
      const newBlocks = Math.ceil((hitTokens + n) / bs) - hit.length;
      let hitFree = 0;
      for (const b of hit) if (b.ref === 0) hitFree++;
      if (newBlocks > kv.numFree - hitFree) break;
      kv.acquire(hit);
      const got = kv.allocate(newBlocks)!;
      this.waiting.shift();
      seq.blocks = hit.concat(got);
      seq.computed = hitTokens;
      seq.committed = hit.length;
      seq.prefillTarget = Math.max(1, total - hitTokens);
      seq.state = RUNNING;
      this.counters.prefixCacheQueries += total;
      this.counters.prefixCacheHits += hitTokens;
      if (!seq.everScheduled) {
        seq.everScheduled = true;
        seq.cachedTokens = hitTokens;
        seq.scheduledWall = performance.now();
        this.counters.promptTokens += seq.req.promptTokens.length;
      }
      if (pull) {
        this.startPull(seq, hit.length);
        continue;
      }
      this.running.push(seq);
      out.push([seq, n, false]);
      budget -= n;
    }
    return out;
  }

  /**
   * P/D decode leg (vLLM `WAITING_FOR_REMOTE_KVS`): the prompt's blocks are allocated (local
   * prefix hits reused). The full prompt blocks the prefill side holds and this engine does not
   * already cache are "read" outside the engine steps (NIXL reads are asynchronous), taking
   * `kvCacheTransferLatency` (when > 0), else `moved tokens × kvCacheTransferTimePerToken` (when
   * > 0), else the link model `latency + bytes / bandwidth` with bytes = moved blocks ×
   * block_size × bytes_per_token (reference/engine.md §8: only full blocks move; cached blocks
   * are not moved). Then the transfer is recorded, the prefill side notified, and the prompt
   * counts as computed up to the last pulled full block (at most all tokens but the last).
   */
  private startPull(seq: Seq, hitBlocks: number): void {
    const o = this.opts;
    const bs = o.blockSize;
    seq.state = LOADING;
    this.loading.add(seq);
    seq.remote = this.pd.remoteFor(seq.req.kvTransferParams);
    const total = seq.tokens.length;
    const fullPrompt = Math.floor(total / bs);
    const remoteBlocks = seq.remote ? Math.min(seq.remote.blocks, fullPrompt) : fullPrompt;
    const moved = Math.max(0, remoteBlocks - hitBlocks);
    const covered = Math.max(hitBlocks, remoteBlocks);
    const ms =
      moved === 0
        ? 0
        : o.kvCacheTransferLatencyMs > 0
          ? o.kvCacheTransferLatencyMs
          : o.kvCacheTransferTimePerTokenMs > 0
            ? moved * bs * o.kvCacheTransferTimePerTokenMs
            : this.pd.transferMs(moved);
    const startSim = this.simNowMs;
    const startWall = performance.now();
    const done = () => {
      seq.loadTimer = null;
      if (seq.state !== LOADING || this.closed) return;
      this.loading.delete(seq);
      this.pd.completed(seq.remote, moved, (performance.now() - startWall) / 1000);
      seq.computed = Math.min(covered * bs, total - 1);
      const full = Math.floor(seq.computed / bs);
      this.commitBlocks(seq, seq.committed, full);
      seq.committed = Math.max(seq.committed, full);
      this.emitEvicted();
      this.observer?.onStepEnd?.();
      this.simNowMs = Math.max(this.simNowMs, startSim + ms);
      seq.state = LOADED;
      this.loaded.push(seq);
      this.wake();
    };
    const wall = ms / o.timeScale;
    if (wall >= 1) seq.loadTimer = setTimeout(done, wall);
    else setImmediate(done);
  }

  private emitEvicted(): void {
    if (this.evicted.length === 0) return;
    const hashes = this.evicted.splice(0);
    this.observer?.onBlocksRemoved?.(hashes);
  }

  /**
   * Registers the full blocks `[from, to)` of a sequence (hashes already computed) and reports
   * each run of consecutive newly cached blocks as one `onBlocksStored` (blocks whose hash was
   * already cached are not announced again).
   */
  private commitBlocks(seq: Seq, from: number, to: number): void {
    const bs = this.opts.blockSize;
    const obs = this.observer?.onBlocksStored ? this.observer : null;
    let runStart = -1;
    const emit = (start: number, end: number) => {
      obs?.onBlocksStored?.({
        blockHashes: seq.hashes.slice(start, end),
        tokenIds: seq.tokens.slice(start * bs, end * bs),
        parentHash: start > 0 ? seq.hashes[start - 1]! : null,
        blockSize: bs,
      });
    };
    for (let b = from; b < to; b++) {
      const fresh = this.kv.commit(seq.blocks[b]!, seq.hashes[b]!);
      if (fresh && runStart < 0) runStart = b;
      if (!fresh && runStart >= 0) {
        emit(runStart, b);
        runStart = -1;
      }
    }
    if (runStart >= 0) emit(runStart, to);
  }

  private preempt(seq: Seq): void {
    const idx = this.running.lastIndexOf(seq);
    if (idx >= 0) this.running.splice(idx, 1);
    this.kv.free(seq.blocks);
    seq.blocks = [];
    seq.computed = 0;
    seq.committed = 0;
    seq.inDecode = false;
    seq.state = WAITING;
    seq.preemptions++;
    this.counters.preemptions++;
    this.waiting.unshift(seq);
  }

  /** Applies a finished step: advance computed counts, register full blocks, sample tokens. */
  private apply(batch: [Seq, number, boolean][]): void {
    const bs = this.opts.blockSize;
    const now = performance.now();
    for (const [seq, n, decode] of batch) {
      if (seq.state !== RUNNING) continue;
      seq.computed += n;
      if (!decode) seq.prefillTokens += n;
      const full = Math.floor(seq.computed / bs);
      if (full > seq.committed) {
        blockHashes(seq.tokens, bs, seq.firstExtra, seq.hashes);
        this.commitBlocks(seq, seq.committed, full);
        seq.committed = full;
      }
      if (seq.computed < seq.tokens.length) continue;
      if (seq.outputs >= seq.plan.length) {
        this.finish(seq, seq.plan.reason);
        continue;
      }
      const id = seq.plan.next();
      seq.tokens.push(id);
      seq.outputs++;
      seq.inDecode = true;
      this.counters.generationTokens++;
      if (seq.outputs === 1) {
        seq.firstTokenWall = now;
        seq.firstTokenSim = this.simNowMs;
      } else seq.itlSim?.push(this.simNowMs - seq.lastTokenSim);
      seq.lastTokenWall = now;
      seq.lastTokenSim = this.simNowMs;
      if (seq.outputs >= seq.plan.length) this.finish(seq, seq.plan.reason, id);
      else seq.channel.push({ tokens: [id] });
    }
  }

  /** Ends a request: frees its blocks and pushes the final output. Idempotent. */
  private finish(seq: Seq, reason: FinishReason, lastToken?: number): void {
    if (seq.state === DONE) return;
    const list = seq.state === RUNNING ? this.running : seq.state === LOADED ? this.loaded : this.waiting;
    const idx = list.indexOf(seq);
    if (idx >= 0) list.splice(idx, 1);
    if (seq.state === LOADING) {
      this.loading.delete(seq);
      // the decode request ended before its KV arrived: the prefill side is notified anyway
      this.pd.abandoned(seq.remote);
    }
    if (seq.loadTimer) clearTimeout(seq.loadTimer);
    seq.loadTimer = null;
    let kvOut: KvTransferParams | null = null;
    if (seq.remoteDecode && reason === "length") {
      // NIXL v2 prefill response (reference/engine.md §5.2 (b)): the prompt's full blocks stay
      // referenced (held) until the decode side releases them or the lease expires.
      const full = Math.min(seq.blocks.length, Math.floor(seq.req.promptTokens.length / this.opts.blockSize));
      const keep = seq.blocks.slice(0, full);
      const rest = seq.blocks.slice(full);
      if (rest.length > 0) this.kv.free(rest);
      seq.blocks = [];
      this.pd.hold(seq.req.requestId, keep, seq.req.promptTokens.slice(0, full * this.opts.blockSize));
      const sc = this.pd.sideChannel;
      kvOut = {
        do_remote_prefill: true,
        do_remote_decode: false,
        remote_engine_id: this.engineId,
        remote_block_ids: keep.map((b) => b.id),
        remote_request_id: seq.req.requestId,
        remote_host: sc.host,
        remote_port: sc.port,
        tp_size: this.opts.tensorParallelSize,
      };
    }
    if (seq.blocks.length > 0) this.kv.free(seq.blocks);
    seq.blocks = [];
    seq.state = DONE;
    if (seq.onAbort) seq.req.signal?.removeEventListener("abort", seq.onAbort);
    const now = performance.now();
    const scheduled = seq.everScheduled ? seq.scheduledWall : now;
    const firstTok = seq.outputs > 0 ? seq.firstTokenWall : now;
    const lastTok = seq.outputs > 0 ? seq.lastTokenWall : now;
    const fin: EngineFinish = {
      reason,
      usage: {
        promptTokens: seq.req.promptTokens.length,
        cachedTokens: Math.max(0, seq.cachedTokens),
        completionTokens: seq.outputs,
      },
      timings: {
        queueS: Math.max(0, scheduled - seq.arrivalWall) / 1000,
        prefillS: Math.max(0, firstTok - scheduled) / 1000,
        decodeS: Math.max(0, lastTok - firstTok) / 1000,
        inferenceS: Math.max(0, lastTok - scheduled) / 1000,
      },
      kvTransferParams: kvOut,
    };
    if (this.opts.historySize > 0) {
      this.finished.push({
        requestId: seq.req.requestId,
        promptTokens: seq.req.promptTokens.length,
        cachedTokens: Math.max(0, seq.cachedTokens),
        completionTokens: seq.outputs,
        reason,
        ttftMs: seq.firstTokenSim - seq.arrivalSim,
        itlMs: seq.itlSim ?? [],
        prefillTokens: seq.prefillTokens,
        preemptions: seq.preemptions,
      });
      if (this.finished.length > this.opts.historySize) this.finished.shift();
    }
    seq.channel.push({ tokens: lastToken === undefined ? [] : [lastToken], finish: fin });
  }
}
