/**
 * KV-event publisher of the model server: vLLM's `ZmqEventPublisher` (reference/engine.md §3.1,
 * §3.2, §3.3) for our engines.
 *
 * - A ZMQ PUB socket on `endpoint` that **binds** when the endpoint contains `*` or `::`, or
 *   starts with `ipc://` or `inproc://`, and **connects** otherwise (the centralized-EPP mode,
 *   where the EPP binds a SUB). With `dataParallelRank` r > 0, tcp ports of `endpoint` and
 *   `replay_endpoint` are offset by r.
 * - Every message is 3 frames `[topic utf8, seq 8-byte big-endian, msgpack payload]`; `seq`
 *   starts at 0 and grows by 1 per batch. The payload is a `KVEventBatch`
 *   `[ts, [events…], data_parallel_rank]` with events as tagged arrays (`encoding: "array"`,
 *   the default) or maps with `"type"` (`encoding: "map"`).
 * - The last `buffer_steps` batches are kept for replay on a ROUTER socket at
 *   `replay_endpoint` (always bound): a request `[identity, "", start_seq BE8]` is answered
 *   with every buffered batch with seq ≥ start as `[identity, "", topic, seq, payload]`, then
 *   the end marker `[identity, "", "", 0xFF…FF, ""]`.
 * - The PUB is a ZMQ XPUB (PUB semantics on the wire) so that the publisher also sees
 *   subscriptions: {@link KvEventPublisher.subscribers} and
 *   {@link KvEventPublisher.waitForSubscriber} tell whether any EPP listens.
 * - Events are collected during an engine step and published as one batch by {@link
 *   KvEventPublisher.flush} at the end of the step (nothing is sent for a step without events).
 *
 * What an engine's block allocator must call (the contract the EPP's dual-key index relies on):
 * - `blockStored` when blocks become **full and cached** (prompt blocks after prefill and
 *   blocks filled by generated tokens during decode), one call per run of consecutive new
 *   blocks of a sequence: `blockHashes` = the new blocks' hashes in order, `tokenIds` = the
 *   tokens of **all** those blocks concatenated (`n × blockSize`), `parentHash` = hash of the
 *   block just before the first new one (null when the run starts the sequence). A block whose
 *   hash was already cached is not announced again.
 * - `blockRemoved` when a cached block is evicted (or its hash dropped for reuse), not when a
 *   request finishes; `allCleared` on a prefix-cache reset.
 * - Engine hashes are opaque uint64 to the EPP (it recomputes its own request keys from the
 *   tokens), but they must be stable and unique per (content, model/LoRA, salt) chain on that
 *   engine, so that a later event's parent resolves.
 */
import { Router, XPublisher } from "zeromq";
import { blockStored as storedEvent, encodeBatch, type EventEncoding } from "../../kvcache/events/codec.js";
import { U64 } from "../../kvcache/events/msgpack.js";
import { encodeSeq, type HashList, hashesFromBigInts, type KvEvent } from "../../kvcache/events/types.js";
import { logger } from "../../log.js";

const log = logger.child({ component: "kv-event-publisher" });

/** vLLM `KVEventsConfig` fields (reference/engine.md §3.1), snake_case as in `--kv-events-config`. */
export interface KvEventsConfig {
  /** default false */
  enable_kv_cache_events?: boolean;
  /** "zmq" (default when enabled) or "null" */
  publisher?: "zmq" | "null";
  /** default `tcp://*:5557` */
  endpoint?: string;
  /** ROUTER endpoint for replay; default none */
  replay_endpoint?: string | null;
  /** batches kept for replay; default 10000 */
  buffer_steps?: number;
  /** ZMQ send high-water mark; default 100000 */
  hwm?: number;
  /** accepted for compatibility (vLLM's internal queue bound); default 100000 */
  max_queue_size?: number;
  /** topic; default "" (llm-d expects `kv@<ip:port>@<model>`) */
  topic?: string;
}

/** Options of {@link KvEventPublisher.create}. */
export interface KvEventPublisherOptions extends KvEventsConfig {
  /** event encoding; default `array` */
  encoding?: EventEncoding;
  /** data-parallel rank written in each batch and used as port offset; default 0 */
  dataParallelRank?: number;
  /** seconds since the epoch for `ts`; default `Date.now() / 1000` */
  clock?: () => number;
  /**
   * llmd extension (not a vLLM field): force binding (true) or connecting (false) the PUB,
   * overriding the `*`/`::` rule — lets a local stack bind `tcp://127.0.0.1:<port>` only.
   * Default: the vLLM rule ({@link publisherBinds}).
   */
  bind?: boolean;
}

export const DEFAULT_KV_EVENTS_ENDPOINT = "tcp://*:5557";
export const DEFAULT_BUFFER_STEPS = 10_000;
export const DEFAULT_HWM = 100_000;

/** Arguments of {@link KvEventPublisher.blockStored}. */
export interface BlockStoredArgs {
  /** engine hashes of the new full blocks, in chain order */
  blockHashes: readonly bigint[];
  /** hash of the block before the first new one; null = starts the sequence */
  parentHash: bigint | null;
  /** tokens of all new blocks, `blockHashes.length × blockSize` */
  tokenIds: ArrayLike<number>;
  /** tokens per block */
  blockSize: number;
  /** LoRA adapter name, when the sequence runs on one */
  loraName?: string | null;
  /** deprecated LoRA slot id */
  loraId?: number | null;
  /** tier, `"GPU"` for the device cache */
  medium: string;
}

/** Whether vLLM binds (true) or connects (false) a PUB on `endpoint` (reference/engine.md §3.1). */
export function publisherBinds(endpoint: string): boolean {
  return (
    endpoint.includes("*") ||
    endpoint.includes("::") ||
    endpoint.startsWith("ipc://") ||
    endpoint.startsWith("inproc://")
  );
}

/** Offsets the port of a `tcp://host:port` endpoint by `rank` (wildcard ports are left alone). */
export function offsetPort(endpoint: string, rank: number): string {
  if (rank === 0 || !endpoint.startsWith("tcp://")) return endpoint;
  const m = /^(tcp:\/\/.*):(\d+)$/.exec(endpoint);
  if (!m) return endpoint;
  return `${m[1]}:${Number(m[2]) + rank}`;
}

interface Buffered {
  seq: number;
  payload: Uint8Array;
}

/** Counters of a publisher. */
export interface PublisherStats {
  /** batches published */
  batches: number;
  /** events published */
  events: number;
  /** replay requests served */
  replays: number;
  /** batches sent in replay answers */
  replayedBatches: number;
}

/** ZMQ KV-event publisher (see module doc). Create with {@link KvEventPublisher.create}. */
export class KvEventPublisher {
  /** whether events are published (false for `publisher: "null"` or events disabled) */
  readonly enabled: boolean;
  readonly topic: string;
  readonly encoding: EventEncoding;
  readonly dataParallelRank: number;
  /** the PUB endpoint as bound or connected (wildcards resolved when bound) */
  readonly endpoint: string | null;
  /** the bound replay endpoint, or null */
  readonly replayEndpoint: string | null;
  readonly stats: PublisherStats = { batches: 0, events: 0, replays: 0, replayedBatches: 0 };

  private nextSeq = 0;
  private pending: KvEvent[] = [];
  private readonly buffer: Buffered[] = [];
  private readonly bufferSteps: number;
  private sendChain: Promise<void> = Promise.resolve();
  private closed = false;
  private replayLoop: Promise<void> | null = null;
  private subLoop: Promise<void> | null = null;
  private subs = 0;
  private lose = 0;
  private handshaken = false;
  private subWaiters: (() => void)[] = [];
  private readonly topicBuf: Buffer;

  private constructor(
    private readonly pub: XPublisher | null,
    private readonly router: Router | null,
    opts: KvEventPublisherOptions,
    endpoint: string | null,
    replayEndpoint: string | null,
    private readonly clock: () => number,
    connected: Promise<void> | null = null,
  ) {
    this.enabled = pub !== null;
    this.topic = opts.topic ?? "";
    this.topicBuf = Buffer.from(this.topic, "utf8");
    this.encoding = opts.encoding ?? "array";
    this.dataParallelRank = opts.dataParallelRank ?? 0;
    this.bufferSteps = opts.buffer_steps ?? DEFAULT_BUFFER_STEPS;
    this.endpoint = endpoint;
    this.replayEndpoint = replayEndpoint;
    if (router) this.replayLoop = this.serveReplay(router);
    if (pub) this.subLoop = this.watchSubscriptions(pub);
    if (connected) {
      void connected.then(() => {
        this.handshaken = true;
        this.wakeWaiters();
      });
    }
  }

  /**
   * Opens the sockets (binds or connects per the rule above). A disabled config gives a
   * publisher whose methods do nothing.
   * @throws Error when a socket cannot bind/connect (e.g. address in use)
   */
  static async create(opts: KvEventPublisherOptions = {}): Promise<KvEventPublisher> {
    const clock = opts.clock ?? (() => Date.now() / 1000);
    const enabled = opts.enable_kv_cache_events === true && (opts.publisher ?? "zmq") === "zmq";
    if (!enabled) return new KvEventPublisher(null, null, opts, null, null, clock);
    const rank = opts.dataParallelRank ?? 0;
    const endpoint = offsetPort(opts.endpoint ?? DEFAULT_KV_EVENTS_ENDPOINT, rank);
    const pub = new XPublisher({ sendHighWaterMark: opts.hwm ?? DEFAULT_HWM, linger: 0 });
    pub.verbosity = "allSubsUnsubs";
    let actual = endpoint;
    let router: Router | null = null;
    let replayActual: string | null = null;
    let connected: Promise<void> | null = null;
    try {
      if (opts.bind ?? publisherBinds(endpoint)) {
        await pub.bind(endpoint);
        actual = pub.lastEndpoint ?? endpoint;
      } else {
        // observe before connecting, or the handshake may complete unseen
        connected = new Promise<void>((resolve) => pub.events.on("handshake", () => resolve()));
        pub.connect(endpoint);
      }
      if (opts.replay_endpoint) {
        router = new Router({ linger: 0 });
        await router.bind(offsetPort(opts.replay_endpoint, rank));
        replayActual = router.lastEndpoint ?? opts.replay_endpoint;
      }
    } catch (err) {
      pub.close();
      router?.close();
      throw err;
    }
    return new KvEventPublisher(pub, router, opts, actual, replayActual, clock, connected);
  }

  /** Sequence number the next batch will carry (= batches published so far). */
  get seq(): number {
    return this.nextSeq;
  }

  /** Events collected since the last flush. */
  get pendingEvents(): number {
    return this.pending.length;
  }

  /** Records a `BlockStored` for the current step (see module doc for when to call). */
  blockStored(a: BlockStoredArgs): void {
    if (!this.enabled) return;
    this.pending.push(
      storedEvent({
        blockHashes: hashesFromBigInts(a.blockHashes),
        parentBlockHash: a.parentHash === null ? null : U64.fromBigInt(a.parentHash),
        tokenIds: Uint32Array.from(a.tokenIds),
        blockSize: a.blockSize,
        loraId: a.loraId ?? null,
        medium: a.medium,
        loraName: a.loraName ?? null,
      }),
    );
  }

  /** Records a `BlockRemoved` for the current step. */
  blockRemoved(hashes: readonly bigint[], medium: string): void {
    if (!this.enabled) return;
    const blockHashes: HashList = hashesFromBigInts(hashes);
    this.pending.push({ type: "BlockRemoved", blockHashes, medium, groupIdx: null });
  }

  /** Records an `AllBlocksCleared` for the current step. */
  allCleared(): void {
    if (!this.enabled) return;
    this.pending.push({ type: "AllBlocksCleared" });
  }

  /**
   * Publishes the collected events as one batch (call at the end of each engine step).
   * Resolves when the batch was handed to ZMQ; does nothing when no event is pending.
   * @returns the batch's seq, or null when nothing was published
   */
  async flush(): Promise<number | null> {
    if (!this.enabled || this.pending.length === 0 || this.closed) return null;
    const events = this.pending;
    this.pending = [];
    const seq = this.nextSeq++;
    const payload = encodeBatch(
      { ts: this.clock(), events, dataParallelRank: this.dataParallelRank },
      { events: this.encoding },
    );
    this.buffer.push({ seq, payload });
    if (this.buffer.length > this.bufferSteps) this.buffer.shift();
    this.stats.batches++;
    this.stats.events += events.length;
    if (this.lose > 0) {
      this.lose--;
      return seq;
    }
    const pub = this.pub!;
    const send = this.sendChain.then(() => pub.send([this.topicBuf, encodeSeq(seq), payload]));
    this.sendChain = send.catch(() => {});
    await send;
    return seq;
  }

  /**
   * Publishes a batch with an explicit seq (tests: simulate lost batches or a restart). The
   * batch is buffered for replay like any other; the next automatic seq is `seq + 1`.
   */
  async publishWithSeq(seq: number, events: KvEvent[]): Promise<void> {
    this.pending = events;
    this.nextSeq = seq;
    await this.flush();
  }

  /**
   * Test hook: the next `n` batches are buffered for replay but not sent live, as if the
   * network or a full high-water mark lost them.
   */
  loseNext(n: number): void {
    this.lose = n;
  }

  /** Drops buffered batches with seq < `seq` (tests: a replay buffer that lost them). */
  trimBuffer(seq: number): void {
    while (this.buffer.length > 0 && this.buffer[0]!.seq < seq) this.buffer.shift();
  }

  /** Subscriptions currently active on the PUB (each SUB filter counts once). */
  get subscribers(): number {
    return this.subs;
  }

  /**
   * Resolves once at least one subscription is active (immediately if one is). In connect mode
   * libzmq does not surface the SUB's subscription to the XPUB (observed with zeromq 6), so it
   * resolves on the first completed connection handshake instead; a batch sent right after may
   * still be filtered until the subscription arrives.
   */
  waitForSubscriber(): Promise<void> {
    if (this.subs > 0 || this.handshaken || !this.enabled) return Promise.resolve();
    return new Promise((resolve) => this.subWaiters.push(resolve));
  }

  private wakeWaiters(): void {
    const w = this.subWaiters;
    this.subWaiters = [];
    for (const f of w) f();
  }

  private async watchSubscriptions(pub: XPublisher): Promise<void> {
    try {
      for await (const [msg] of pub) {
        if (!msg || msg.length === 0) continue;
        if (msg[0] === 1) {
          this.subs++;
          this.wakeWaiters();
        } else if (msg[0] === 0 && this.subs > 0) this.subs--;
      }
    } catch (err) {
      if (!this.closed) log.warn({ err }, "KV-event publisher: subscription watcher stopped");
    }
  }

  private async serveReplay(router: Router): Promise<void> {
    try {
      for await (const frames of router) {
        const [id, , start] = frames;
        if (!id || !start || start.length !== 8) continue;
        const startSeq = Number(start.readBigUInt64BE(0));
        this.stats.replays++;
        for (const b of this.buffer.slice()) {
          if (b.seq < startSeq) continue;
          await router.send([id, "", this.topicBuf, encodeSeq(b.seq), b.payload]);
          this.stats.replayedBatches++;
        }
        await router.send([id, "", "", encodeSeq(0xffffffffffffffffn), ""]);
      }
    } catch (err) {
      if (!this.closed) log.warn({ err }, "KV-event publisher: replay server stopped");
    }
  }

  /** Closes the sockets; pending events are dropped. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const f of this.subWaiters) f();
    this.subWaiters = [];
    await this.sendChain;
    this.pub?.close();
    this.router?.close();
    await this.replayLoop;
    await this.subLoop;
  }
}
