/**
 * `--kv-events-config` of `llmd serve`: vLLM's `KVEventsConfig` JSON (reference/engine.md §3.1)
 * turned into a running {@link KvEventPublisher} and the engine observer that feeds it.
 *
 * Accepted keys: `enable_kv_cache_events` (default false), `publisher` (`zmq` | `null`),
 * `endpoint` (default `tcp://*:5557`; binds when it has `*`/`::`, connects otherwise — vLLM's
 * rule), `replay_endpoint`, `buffer_steps` (10000), `hwm` (100000), `max_queue_size`
 * (accepted), `topic` (default "" → `kv@<host>:<port>@<served model>` here, so that the llm-d
 * EPP can parse it), plus llmd extensions `encoding` (`array` | `map`) and `bind` (bool: bind
 * or connect regardless of the rule; `llmd up` binds `tcp://127.0.0.1:<port>`). Unknown keys
 * are an error (vLLM's dataclass rejects them too). Topics are literal: `${POD_IP}`-style
 * placeholders are expanded by the shell or Kubernetes, never here — an unexpanded one is an
 * error rather than a topic no EPP can parse.
 */
import { DEFAULT_BUFFER_STEPS, DEFAULT_HWM, KvEventPublisher, type KvEventPublisherOptions } from "./publisher.js";
import type { EngineObserver } from "../engine.js";
import { type KvEventObserver, kvEventObserver } from "./observer.js";

const KEYS = new Set([
  "enable_kv_cache_events",
  "publisher",
  "endpoint",
  "replay_endpoint",
  "buffer_steps",
  "hwm",
  "max_queue_size",
  "topic",
  "encoding",
  "bind",
]);

/** Where the server listens, for the default topic. */
export interface KvEventsServerIdentity {
  /** HTTP listen host, e.g. `127.0.0.1` */
  host: string;
  /** HTTP listen port */
  port: number;
  /** first served model name */
  model: string;
}

/**
 * Parses and checks the JSON (see module doc); the topic is left as given ("" = default).
 * @throws Error naming the key on invalid JSON, an unknown key, a wrong type or an
 *   unexpanded `${…}` in `topic`
 */
export function parseKvEventsConfig(json: string): KvEventPublisherOptions {
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch (e) {
    throw new Error(`--kv-events-config: not JSON (${(e as Error).message})`);
  }
  if (raw === null || typeof raw !== "object" || Array.isArray(raw))
    throw new Error("--kv-events-config: expected a JSON object");
  const o = raw as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!KEYS.has(k)) throw new Error(`--kv-events-config: unknown key "${k}"`);
  const type = (k: string, t: "boolean" | "string" | "number", nullable = false) => {
    const v = o[k];
    if (v === undefined || (nullable && v === null)) return;
    if (typeof v !== t || (t === "number" && !(Number.isInteger(v) && (v as number) >= 0)))
      throw new Error(`--kv-events-config: ${k} must be a ${t === "number" ? "non-negative integer" : t}`);
  };
  type("enable_kv_cache_events", "boolean");
  type("publisher", "string");
  type("endpoint", "string");
  type("replay_endpoint", "string", true);
  type("buffer_steps", "number");
  type("hwm", "number");
  type("max_queue_size", "number");
  type("topic", "string");
  type("encoding", "string");
  type("bind", "boolean");
  if (o.publisher !== undefined && o.publisher !== "zmq" && o.publisher !== "null")
    throw new Error(`--kv-events-config: publisher "${o.publisher}" is not supported (zmq or null)`);
  if (o.encoding !== undefined && o.encoding !== "array" && o.encoding !== "map")
    throw new Error(`--kv-events-config: encoding must be "array" or "map"`);
  if (typeof o.topic === "string" && /\$\{[^}]*\}|\$\([^)]*\)/.test(o.topic))
    throw new Error(
      `--kv-events-config: topic ${JSON.stringify(o.topic)} has an unexpanded placeholder; give the literal topic (kv@<ip:port>@<model>) — the shell or Kubernetes expands variables, llmd does not`,
    );
  return {
    ...(o as KvEventPublisherOptions),
    buffer_steps: (o.buffer_steps as number | undefined) ?? DEFAULT_BUFFER_STEPS,
    hwm: (o.hwm as number | undefined) ?? DEFAULT_HWM,
  };
}

/** The default topic `kv@<host>:<port>@<model>` (llm-d's `kv@<podId>@<model>`, engine.md §4.3). */
export function defaultKvTopic(id: KvEventsServerIdentity): string {
  const host = id.host.includes(":") ? `[${id.host}]` : id.host;
  return `kv@${host}:${id.port}@${id.model}`;
}

/** A running KV-event feed of a server. */
export interface KvEventsFeed {
  publisher: KvEventPublisher;
  observer: KvEventObserver;
  /** records `AllBlocksCleared` and publishes it as one batch (prefix-cache reset) */
  cleared(): void;
  close(): Promise<void>;
}

/**
 * Opens the publisher for `opts` (from {@link parseKvEventsConfig}); an empty topic becomes
 * {@link defaultKvTopic}.
 * @throws Error when a socket cannot be bound or connected (port in use…)
 */
export async function startKvEvents(
  opts: KvEventPublisherOptions,
  id: KvEventsServerIdentity,
): Promise<KvEventsFeed> {
  const topic = opts.topic ? opts.topic : defaultKvTopic(id);
  const publisher = await KvEventPublisher.create({ ...opts, topic });
  const observer = kvEventObserver(publisher);
  return {
    publisher,
    observer,
    cleared() {
      observer.cleared();
      observer.onStepEnd?.();
    },
    close: () => publisher.close(),
  };
}

/**
 * KV events of a server whose port is known only once it listens: {@link observer} and
 * {@link cleared} can be handed to `startModelServer` at once, {@link start} opens the
 * publisher afterwards (engine events before it are not published: nothing runs before the
 * server listens).
 */
export interface DeferredKvEvents {
  /** the parsed config */
  readonly options: KvEventPublisherOptions;
  /** forwards to the feed once started */
  readonly observer: EngineObserver;
  /** `AllBlocksCleared` (prefix-cache reset) */
  cleared(): void;
  /** opens the publisher; @throws Error when its socket cannot be bound */
  start(id: KvEventsServerIdentity): Promise<KvEventsFeed>;
  /** the feed, once started */
  readonly feed: KvEventsFeed | null;
  close(): Promise<void>;
}

/**
 * Parses `--kv-events-config` now (errors before the server starts) and defers the publisher.
 * @throws Error as {@link parseKvEventsConfig}
 */
export function deferKvEvents(json: string): DeferredKvEvents {
  const options = parseKvEventsConfig(json);
  let feed: KvEventsFeed | null = null;
  return {
    options,
    observer: {
      onBlocksStored: (e) => feed?.observer.onBlocksStored?.(e),
      onBlocksRemoved: (h) => feed?.observer.onBlocksRemoved?.(h),
      onStepEnd: () => feed?.observer.onStepEnd?.(),
    },
    cleared: () => feed?.cleared(),
    async start(id) {
      feed = await startKvEvents(options, id);
      return feed;
    },
    get feed() {
      return feed;
    },
    async close() {
      await feed?.close();
    },
  };
}
