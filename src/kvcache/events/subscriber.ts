/**
 * KV-event subscriber of one endpoint (pod-discovery mode, reference/engine.md §3.1–3.2, §4.3):
 * a ZMQ SUB dialing the endpoint's publisher, feeding a {@link KvBlockIndex}.
 *
 * - Topic filter `kv@` (configurable); the topic's model names the chain (`lora_name` wins per
 *   event); the endpoint's own `ip:port` is the index id, **overriding the topic's podId**.
 * - Sequence continuity: seq n+1 after n is applied. A **gap** triggers a replay request
 *   (`["", start BE8]` on a DEALER to the endpoint's replay endpoint; answers
 *   `["", topic, seq, payload]`, end `["", "", 0xFF…FF, ""]`; the older 2-frame form
 *   `["", seq, payload]` / `["", END, ""]` is accepted too). Live batches that arrive during the
 *   replay are held and applied after it. Without a replay endpoint, or when the replay fails
 *   or cannot cover the gap, the endpoint is **resynced**: its index entries are cleared
 *   (counted) and indexing continues from the current batch — blocks stored before are
 *   unknown, and children of them will be dropped as `unknown_parent` (counted).
 * - Joining with a first seq > 0 triggers a replay from 0 when a replay endpoint is configured
 *   and `replayOnJoin` (default true); otherwise it is counted as a late join.
 * - **Catch-up at connection** (same conditions): when the SUB's ZMTP handshake with the
 *   publisher completes before any batch arrived, a replay from 0 fetches what the publisher
 *   sent before the subscription existed (a PUB drops messages for subscribers it does not know
 *   yet — ZMQ's "slow joiner"). Without it, an endpoint that published once and then went quiet
 *   would stay unknown to the index with no later seq to reveal the gap. Counted in `catchUps`
 *   (not `replays`), events `catch-up` (0) and `replay-done`; option `catchUpOnConnect`.
 * - A seq that goes backwards means the publisher restarted: the endpoint is cleared (counted).
 * - Payloads are decoded and applied by a {@link BatchIngester} (ingest.ts: vLLM's array-form
 *   batches without building event objects, anything else through `decodeBatch`); a payload
 *   that does not decode is counted as `decode_error` and changes nothing.
 * - Every outcome is counted in {@link SubscriberStats} (for metrics and `llmd doctor`), and
 *   emitted as events for tests and logs: `batch` (seq), `gap` (expected, got), `replay`
 *   (from), `replay-done` (applied), `resync` (reason), `restart`, `error` (err).
 */
import { EventEmitter } from "node:events";
import { Dealer, Subscriber } from "zeromq";
import type { DropReason, KvBlockIndex } from "../precise/index.js";
import { BatchIngester } from "./ingest.js";
import { decodeSeq, KV_TOPIC_PREFIX, parseKvTopic } from "./types.js";

/** Drop reasons counted by a subscriber: the index's plus message-level ones. */
export type SubscriberDropReason =
  | DropReason
  | "decode_error"
  | "bad_topic"
  | "bad_frames"
  | "replay_overflow";

/** Counters of one endpoint's subscription. */
export interface SubscriberStats {
  /** index id of the endpoint (`ip:port`) */
  endpointId: string;
  /** dialled address, e.g. `tcp://10.0.0.1:5557` */
  address: string;
  replayAddress: string | null;
  /** batches applied */
  batches: number;
  /** events applied (including partially dropped ones) */
  events: number;
  /** sequence gaps seen */
  gaps: number;
  /** replay requests sent */
  replays: number;
  /** replays that timed out or failed */
  replayFailures: number;
  /** endpoint entries cleared to recover from an unrecoverable gap */
  resyncs: number;
  /** publisher restarts (seq went backwards) */
  restarts: number;
  /** first seq > 0 without replay */
  lateJoins: number;
  /** replays from 0 at connection, before any batch (see module doc) */
  catchUps: number;
  /** drops by reason */
  drops: Record<SubscriberDropReason, number>;
  /** seq of the last applied batch (-1 = none) */
  lastSeq: number;
  /** ms since the epoch when the last batch was applied (0 = never) */
  lastBatchAt: number;
  /** receive time − batch `ts` of the last batch, ms (engine→EPP lag; clock skew included) */
  lagMs: number;
  /** models the endpoint published events for (topic model, and LoRA names of events) */
  models: string[];
  /** podId of the last topic (informational: the endpoint id overrides it) */
  topicPodId: string | null;
}

/** Options of {@link KvEventSubscriber}. */
export interface KvEventSubscriberOptions {
  /** index id of the endpoint, its `ip:port` */
  endpointId: string;
  /** ZMQ address of the endpoint's publisher, e.g. `tcp://10.0.0.1:5557` */
  address: string;
  /** ZMQ address of its replay ROUTER; null/undefined = no replay (gaps resync) */
  replayAddress?: string | null;
  /** SUB topic filter; default `kv@` */
  topicFilter?: string;
  /** replay from 0 when the first seq is > 0 (needs replayAddress); default true */
  replayOnJoin?: boolean;
  /**
   * replay from 0 when the connection is established before any batch arrived (needs
   * replayAddress and replayOnJoin); default true. Tests of other replay paths turn it off.
   */
  catchUpOnConnect?: boolean;
  /** ms to wait to send the replay request and for each replay message; default 2000 */
  replayTimeoutMs?: number;
  /** max live batches held during a replay; default 10000 (overflow → resync) */
  maxHeld?: number;
}

interface Msg {
  topic: string;
  seq: number;
  payload: Uint8Array;
}

const emptyDrops = (): Record<SubscriberDropReason, number> => ({
  unknown_parent: 0,
  block_size_mismatch: 0,
  token_count_mismatch: 0,
  unknown_engine_key: 0,
  decode_error: 0,
  bad_topic: 0,
  bad_frames: 0,
  replay_overflow: 0,
});

/** One endpoint's KV-event subscription (see module doc). Call {@link start}, then {@link close}. */
export class KvEventSubscriber extends EventEmitter {
  readonly stats: SubscriberStats;
  private readonly sub: Subscriber;
  private readonly slot: number;
  /** decodes payloads into the index (see ingest.ts) */
  private readonly ingester: BatchIngester;
  private replaying = false;
  private held: Msg[] = [];
  private closed = false;
  private loop: Promise<void> | null = null;
  private replayRun: Promise<void> | null = null;
  private dealer: Dealer | null = null;
  private readonly replayOnJoin: boolean;
  private readonly replayTimeoutMs: number;
  private readonly maxHeld: number;

  constructor(
    private readonly index: KvBlockIndex,
    private readonly opts: KvEventSubscriberOptions,
  ) {
    super();
    this.slot = index.endpointSlot(opts.endpointId);
    this.ingester = new BatchIngester(index);
    this.replayOnJoin = opts.replayOnJoin ?? true;
    this.replayTimeoutMs = opts.replayTimeoutMs ?? 2000;
    this.maxHeld = opts.maxHeld ?? 10_000;
    this.stats = {
      endpointId: opts.endpointId,
      address: opts.address,
      replayAddress: opts.replayAddress ?? null,
      batches: 0,
      events: 0,
      gaps: 0,
      replays: 0,
      replayFailures: 0,
      resyncs: 0,
      restarts: 0,
      lateJoins: 0,
      catchUps: 0,
      drops: emptyDrops(),
      lastSeq: -1,
      lastBatchAt: 0,
      lagMs: 0,
      models: [],
      topicPodId: null,
    };
    this.sub = new Subscriber({ linger: 0 });
  }

  /** Connects and starts receiving. Connection is asynchronous (ZMQ reconnects by itself). */
  start(): void {
    if (this.loop) return;
    if (this.opts.replayAddress && this.replayOnJoin && this.opts.catchUpOnConnect !== false)
      this.sub.events.on("handshake", () => this.onHandshake());
    this.sub.connect(this.opts.address);
    this.sub.subscribe(this.opts.topicFilter ?? KV_TOPIC_PREFIX);
    this.loop = this.receive();
  }

  /** Connection to the publisher established: catch up when nothing arrived yet (module doc). */
  private onHandshake(): void {
    if (this.closed || this.replaying || this.stats.lastSeq !== -1) return;
    this.stats.catchUps++;
    this.emit("catch-up", 0);
    this.replaying = true;
    this.replayRun = this.replay(0);
  }

  private async receive(): Promise<void> {
    try {
      for await (const frames of this.sub) {
        if (frames.length !== 3) {
          this.stats.drops.bad_frames++;
          continue;
        }
        const seq = decodeSeq(frames[1]!);
        if (seq === null || !Number.isFinite(seq)) {
          this.stats.drops.bad_frames++;
          continue;
        }
        this.onMessage({ topic: frames[0]!.toString("utf8"), seq, payload: frames[2]! });
      }
    } catch (err) {
      if (!this.closed) this.emit("error", err);
    }
  }

  private onMessage(m: Msg): void {
    // after close() the endpoint's index slot may already be freed and reused
    if (this.closed) return;
    if (this.replaying) {
      if (this.held.length >= this.maxHeld) {
        this.stats.drops.replay_overflow++;
        return;
      }
      this.held.push(m);
      return;
    }
    const last = this.stats.lastSeq;
    const hasReplay = !!this.opts.replayAddress;
    if (last === -1) {
      if (m.seq > 0) {
        if (hasReplay && this.replayOnJoin) {
          this.held.push(m);
          this.startReplay(0);
          return;
        }
        this.stats.lateJoins++;
      }
      this.apply(m);
      return;
    }
    if (m.seq === last + 1) {
      this.apply(m);
      return;
    }
    if (m.seq <= last) {
      // publisher restarted: its cache is new
      this.stats.restarts++;
      this.index.clearEndpoint(this.slot);
      this.emit("restart", m.seq);
      this.apply(m);
      return;
    }
    this.stats.gaps++;
    this.emit("gap", last + 1, m.seq);
    if (hasReplay) {
      this.held.push(m);
      this.startReplay(last + 1);
      return;
    }
    this.resync("gap without replay endpoint");
    this.apply(m);
  }

  private resync(reason: string): void {
    this.stats.resyncs++;
    this.index.clearEndpoint(this.slot);
    this.emit("resync", reason);
  }

  private apply(m: Msg): void {
    this.stats.lastSeq = m.seq;
    const t = parseKvTopic(m.topic);
    if (t === null) {
      this.stats.drops.bad_topic++;
      return;
    }
    this.stats.topicPodId = t.podId;
    if (!this.stats.models.includes(t.model)) this.stats.models.push(t.model);
    const ing = this.ingester;
    try {
      ing.ingest(this.slot, t.model, m.payload, this.stats.drops, this.stats.models);
    } catch (err) {
      this.stats.drops.decode_error++;
      this.emit("decode-error", err);
      return;
    }
    const now = Date.now();
    this.stats.batches++;
    this.stats.events += ing.events;
    this.stats.lastBatchAt = now;
    this.stats.lagMs = now - ing.ts * 1000;
    this.emit("batch", m.seq);
  }

  private startReplay(from: number): void {
    this.replaying = true;
    this.stats.replays++;
    this.emit("replay", from);
    this.replayRun = this.replay(from);
  }

  private async replay(from: number): Promise<void> {
    let applied = 0;
    let ok = false;
    // both timeouts: a DEALER with no reachable peer would otherwise wait forever on send
    const dealer = new Dealer({
      linger: 0,
      sendTimeout: this.replayTimeoutMs,
      receiveTimeout: this.replayTimeoutMs,
    });
    this.dealer = dealer;
    try {
      dealer.connect(this.opts.replayAddress!);
      const start = Buffer.alloc(8);
      start.writeBigUInt64BE(BigInt(from));
      await dealer.send(["", start]);
      for (;;) {
        let frames = await dealer.receive();
        if (frames.length > 0 && frames[0]!.length === 0) frames = frames.slice(1); // delimiter
        let m: Msg | null;
        if (frames.length === 3) {
          const seq = decodeSeq(frames[1]!);
          if (seq === null) throw new Error("bad replay seq frame");
          if (seq === Number.POSITIVE_INFINITY) break;
          m = { topic: frames[0]!.toString("utf8"), seq, payload: frames[2]! };
        } else if (frames.length === 2) {
          // older vLLM: [seq, payload], end [END, ""]; no topic: reuse the held one's
          const seq = decodeSeq(frames[0]!);
          if (seq === null) throw new Error("bad replay seq frame");
          if (seq === Number.POSITIVE_INFINITY) break;
          m = { topic: this.held[0]?.topic ?? "", seq, payload: frames[1]! };
        } else {
          throw new Error(`unexpected replay message of ${frames.length} frames`);
        }
        if (this.applyReplayed(m)) applied++;
      }
      ok = true;
    } catch (err) {
      if (!this.closed) {
        this.stats.replayFailures++;
        this.emit("replay-failed", err);
      }
    } finally {
      dealer.close();
      this.dealer = null;
    }
    if (this.closed) return;
    if (!ok) this.resync("replay failed");
    // drain the live batches held during the replay, in order
    this.replaying = false;
    const held = this.held;
    this.held = [];
    // batches dropped beyond maxHeld show up as a gap at the next live batch
    for (const m of held) this.onHeld(m, ok);
    this.emit("replay-done", applied);
  }

  /** A held live batch after a replay: apply in order, resync over a remaining gap. */
  private onHeld(m: Msg, replayOk: boolean): void {
    const last = this.stats.lastSeq;
    if (last === -1 || m.seq === last + 1) {
      this.apply(m);
      return;
    }
    if (m.seq <= last) return;
    // the replay did not cover the gap (buffer too short) or failed
    if (replayOk) this.resync("replay did not cover the gap");
    this.apply(m);
  }

  /** A replayed batch: skip what we have, apply the next one, resync over a hole. */
  private applyReplayed(m: Msg): boolean {
    if (this.closed) return false;
    const last = this.stats.lastSeq;
    if (m.seq <= last) return false;
    if (last >= 0 && m.seq > last + 1) this.resync("replay buffer does not reach the gap");
    else if (last === -1 && m.seq > 0) this.stats.lateJoins++;
    this.apply(m);
    return true;
  }

  /** Resolves when a running replay (if any) has finished. */
  async settled(): Promise<void> {
    await this.replayRun;
  }

  /** Closes the sockets. The endpoint's index entries are left to the caller. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.sub.close();
    this.dealer?.close();
    await this.loop;
    await this.replayRun;
  }
}
