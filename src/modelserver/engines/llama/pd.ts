/**
 * P/D bookkeeping of the llama engine on the prefill side: KV states held for a remote decode
 * under a lease, served by the HTTP side channel (`kv-transfer.ts`) and freed by the decode
 * side's notification or when the lease runs out.
 *
 * vLLM's NixlConnector keeps the prefill's blocks after a length-capped prefill until the
 * decode side has READ them and sent a notification, or until the lease (`kv_lease_duration`,
 * default 30 s) expires (reference/engine.md §5.1–5.2; `vllm:nixl_num_kv_expired_reqs`). Here
 * the "blocks" are one envelope (`kv-state.ts`: header + llama.cpp sequence state) per request:
 * llama.cpp has no paged block table that a remote reader could address.
 */

/** Default lease of KV held for a remote decode, ms (vLLM `kv_lease_duration` 30 s). */
export const DEFAULT_KV_LEASE_MS = 30_000;

/** One held KV state. */
interface Held {
  /** envelope bytes */
  bytes: Buffer;
  /** tokens whose KV the envelope holds */
  tokens: number;
  timer: NodeJS.Timeout;
  pulls: number;
}

/** Counters of a {@link KvLeaseStore} (cumulative since start). */
export interface KvLeaseStats {
  /** states held now */
  held: number;
  /** bytes held now */
  heldBytes: number;
  /** states stored */
  stored: number;
  /** successful pulls (a state may be pulled more than once before its release) */
  pulled: number;
  /** states freed by a release notification */
  released: number;
  /** states dropped when their lease ran out */
  expired: number;
}

/**
 * KV states held for remote decodes, keyed by `remote_request_id`, each with a lease timer
 * (unref'd: it never keeps the process alive).
 */
export class KvLeaseStore {
  private readonly held = new Map<string, Held>();
  private readonly counts = { stored: 0, pulled: 0, released: 0, expired: 0 };

  /**
   * @param leaseMs how long a state is kept without a release, ms (> 0)
   * @param onExpired called after a lease ran out and its state was dropped
   */
  constructor(
    readonly leaseMs: number = DEFAULT_KV_LEASE_MS,
    private readonly onExpired: (id: string, tokens: number) => void = () => {},
  ) {
    if (!(leaseMs > 0)) throw new RangeError("kv lease must be > 0 ms");
  }

  /** Holds `bytes` under `id` (replacing a previous state of the same id). */
  put(id: string, bytes: Buffer, tokens: number): void {
    this.drop(id);
    const timer = setTimeout(() => {
      if (this.held.get(id)?.timer !== timer) return;
      this.held.delete(id);
      this.counts.expired++;
      this.onExpired(id, tokens);
    }, this.leaseMs);
    timer.unref();
    this.held.set(id, { bytes, tokens, timer, pulls: 0 });
    this.counts.stored++;
  }

  /** The state held under `id`, or null (unknown, released or expired). */
  get(id: string): Buffer | null {
    const h = this.held.get(id);
    if (!h) return null;
    h.pulls++;
    this.counts.pulled++;
    return h.bytes;
  }

  /** Frees the state under `id` (the NIXL notification). @returns false when unknown */
  release(id: string): boolean {
    if (!this.drop(id)) return false;
    this.counts.released++;
    return true;
  }

  /** Whether a state is held under `id`. */
  has(id: string): boolean {
    return this.held.has(id);
  }

  stats(): KvLeaseStats {
    let heldBytes = 0;
    for (const h of this.held.values()) heldBytes += h.bytes.length;
    return { held: this.held.size, heldBytes, ...this.counts };
  }

  /** Drops every state and timer (engine close). */
  clear(): void {
    for (const id of [...this.held.keys()]) this.drop(id);
  }

  private drop(id: string): boolean {
    const h = this.held.get(id);
    if (!h) return false;
    clearTimeout(h.timer);
    this.held.delete(id);
    return true;
  }
}
