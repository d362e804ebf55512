/**
 * A list+watch loop for one namespaced resource (client-go's Reflector, in small):
 * 1. **list** (through `@kubernetes/client-node`'s generated API) → the full set of objects and
 *    the list's `resourceVersion` → {@link ReflectorHandlers.onSync};
 * 2. **watch** from that `resourceVersion` with `allowWatchBookmarks=true` (the client's
 *    `Watch`); `ADDED`/`MODIFIED`/`DELETED` → {@link ReflectorHandlers.onEvent}; every event and
 *    `BOOKMARK` advances the resourceVersion;
 * 3. a watch that ends (server timeout, dropped connection, inactivity) is re-opened from the
 *    last resourceVersion; **410 Gone** (HTTP status or an `ERROR` event with `code: 410`)
 *    means the version is too old → relist (step 1);
 * 4. failures (list errors, watch errors) retry with exponential backoff (`initialBackoffMs`
 *    doubling to `maxBackoffMs`), reset after a successful list or event.
 * Semantics follow Kubernetes API concepts "Efficient detection of changes" and "Watch
 * bookmarks" (kubernetes.io/docs/reference/using-api/api-concepts/).
 */
import { type KubeConfig, Watch } from "@kubernetes/client-node";

/** The fields of a Kubernetes object the reflector reads. */
export interface KubeObject {
  metadata?: { name?: string; namespace?: string; resourceVersion?: string; [k: string]: unknown };
  [k: string]: unknown;
}

/** A list result: objects and the list's resourceVersion. */
export interface ListResult<T extends KubeObject> {
  items: T[];
  resourceVersion: string;
}

/** Callbacks of a reflector. */
export interface ReflectorHandlers<T extends KubeObject> {
  /** the complete set after each (re)list */
  onSync(items: T[]): void;
  /** one watch event */
  onEvent(type: "ADDED" | "MODIFIED" | "DELETED", obj: T): void;
  /** a BOOKMARK advanced the resourceVersion to `rv` */
  onBookmark?(rv: string): void;
  /** a failure that will be retried (for logging) */
  onError?(err: Error, phase: "list" | "watch"): void;
}

/** Options of {@link Reflector}. */
export interface ReflectorOptions<T extends KubeObject> {
  kubeConfig: KubeConfig;
  /** API path of the collection, e.g. `/api/v1/namespaces/default/pods` */
  path: string;
  /** lists the collection */
  list(): Promise<ListResult<T>>;
  /** first retry delay, ms (default 200) */
  initialBackoffMs?: number;
  /** largest retry delay, ms (default 30 000) */
  maxBackoffMs?: number;
  /** server-side watch timeout, s (default 300–600, random; as client-go) */
  watchTimeoutSeconds?: number;
  /**
   * inactivity timeout of one watch connection, ms (default: the server-side timeout + 30 s, so
   * a quiet collection is closed by the server, not by this timer)
   */
  watchInactivityMs?: number;
}

/** Counters, for tests and diagnostics. */
export interface ReflectorStats {
  lists: number;
  watches: number;
  gone: number;
  errors: number;
}

class GoneError extends Error {}

/** List+watch loop (see file header). */
export class Reflector<T extends KubeObject> {
  private stopped = false;
  private abort?: AbortController;
  private wakeup?: () => void;
  private rv = "";
  private loop?: Promise<void>;
  readonly stats: ReflectorStats = { lists: 0, watches: 0, gone: 0, errors: 0 };
  /** true after the first successful list */
  synced = false;

  constructor(
    private readonly opts: ReflectorOptions<T>,
    private readonly handlers: ReflectorHandlers<T>,
  ) {}

  /** API path of the collection */
  get path(): string {
    return this.opts.path;
  }

  /** last seen resourceVersion */
  get resourceVersion(): string {
    return this.rv;
  }

  /** Starts the loop (idempotent). */
  start(): void {
    this.loop ??= this.run();
  }

  /** Stops the loop and closes the watch; resolves when the loop has exited. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.abort?.abort();
    this.wakeup?.();
    await this.loop;
  }

  private async run(): Promise<void> {
    const initial = this.opts.initialBackoffMs ?? 200;
    let backoff = initial;
    let needList = true;
    while (!this.stopped) {
      try {
        if (needList) {
          const r = await this.opts.list();
          if (this.stopped) return;
          this.stats.lists++;
          this.rv = r.resourceVersion;
          this.synced = true;
          this.handlers.onSync(r.items);
          needList = false;
          backoff = initial;
        }
        const progressed = await this.watchOnce();
        if (progressed) backoff = initial;
        // a clean end re-opens the watch from the last resourceVersion at once
        continue;
      } catch (e) {
        if (this.stopped) return;
        if (e instanceof GoneError) {
          this.stats.gone++;
          needList = true;
          continue;
        }
        this.stats.errors++;
        this.handlers.onError?.(e as Error, needList ? "list" : "watch");
      }
      await this.sleep(backoff);
      backoff = Math.min(backoff * 2, this.opts.maxBackoffMs ?? 30_000);
    }
  }

  /** One watch connection; resolves true if any event arrived, rejects on errors / 410. */
  private watchOnce(): Promise<boolean> {
    return new Promise((resolve, reject) => {
      const w = new Watch(this.opts.kubeConfig);
      // the client's inactivity timer (private field, default 30 s)
      const timeoutSeconds = this.opts.watchTimeoutSeconds ?? 300 + Math.floor(Math.random() * 300);
      (w as unknown as { requestTimeoutMs: number }).requestTimeoutMs =
        this.opts.watchInactivityMs ?? (timeoutSeconds + 30) * 1000;
      let progressed = false;
      let gone = false;
      this.stats.watches++;
      w.watch(
        this.opts.path,
        {
          allowWatchBookmarks: true,
          resourceVersion: this.rv,
          timeoutSeconds,
        },
        (type: string, obj: T & { code?: number }) => {
          if (this.stopped || gone) return;
          if (type === "ERROR") {
            if (obj?.code === 410) {
              gone = true;
              this.abort?.abort();
            }
            return;
          }
          const rv = obj?.metadata?.resourceVersion;
          if (rv) this.rv = rv;
          progressed = true;
          if (type === "BOOKMARK") {
            if (rv) this.handlers.onBookmark?.(rv);
            return;
          }
          if (type === "ADDED" || type === "MODIFIED" || type === "DELETED") this.handlers.onEvent(type, obj);
        },
        (err: unknown) => {
          this.abort = undefined;
          if (gone || (err as { statusCode?: number } | null)?.statusCode === 410) {
            reject(new GoneError("410 Gone"));
            return;
          }
          if (err && !this.stopped && !isAbort(err)) {
            reject(err instanceof Error ? err : new Error(String(err)));
            return;
          }
          resolve(progressed);
        },
      ).then(
        (ctrl) => {
          if (ctrl) this.abort = ctrl;
          if (this.stopped) ctrl?.abort();
        },
        (err) => reject(err),
      );
    });
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.wakeup = undefined;
        resolve();
      }, ms);
      this.wakeup = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }
}

function isAbort(err: unknown): boolean {
  const name = (err as { name?: string }).name;
  return name === "AbortError";
}
