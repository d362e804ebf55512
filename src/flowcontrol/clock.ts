/**
 * Time source and timers of the flow-control engine, injectable so queue tests are
 * deterministic (no sleeps): {@link ManualClock} only moves when a test calls `advance`.
 */

/** A cancellable timer. */
export interface TimerHandle {
  cancel(): void;
}

/** Clock: `now()` in ms since the epoch (same base as `Endpoint.metrics.updateTime`). */
export interface Clock {
  now(): number;
  /** Runs `fn` once after `ms` milliseconds (≥ 0). */
  setTimeout(fn: () => void, ms: number): TimerHandle;
}

/** Wall clock (`Date.now`) with unref'd Node timers (they never keep the process alive). */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout(fn, ms) {
    const t = setTimeout(fn, Math.max(0, ms));
    t.unref?.();
    return { cancel: () => clearTimeout(t) };
  },
};

/**
 * A clock for tests: time stands still until {@link ManualClock.advance}, which fires due timers
 * in time order (each sees `now()` equal to its due time).
 */
export class ManualClock implements Clock {
  private t: number;
  private seq = 0;
  private readonly timers = new Map<number, { at: number; fn: () => void }>();
  /** @param start ms since the epoch */
  constructor(start = 1_000_000) {
    this.t = start;
  }
  now(): number {
    return this.t;
  }
  setTimeout(fn: () => void, ms: number): TimerHandle {
    const id = this.seq++;
    this.timers.set(id, { at: this.t + Math.max(0, ms), fn });
    return { cancel: () => this.timers.delete(id) };
  }
  /** Number of pending timers. */
  get pending(): number {
    return this.timers.size;
  }
  /**
   * Moves time forward by `ms`, firing every timer that comes due (timers set while firing
   * are honoured if due within the window). Bounded: at most 100,000 firings.
   */
  advance(ms: number): void {
    const end = this.t + ms;
    for (let i = 0; i < 100_000; i++) {
      let nextId = -1;
      let nextAt = Number.POSITIVE_INFINITY;
      for (const [id, tm] of this.timers) {
        if (tm.at < nextAt || (tm.at === nextAt && id < nextId)) {
          nextAt = tm.at;
          nextId = id;
        }
      }
      if (nextId < 0 || nextAt > end) break;
      const tm = this.timers.get(nextId)!;
      this.timers.delete(nextId);
      this.t = Math.max(this.t, tm.at);
      tm.fn();
    }
    this.t = end;
  }
}
