/**
 * Adapter from the engine's {@link EngineObserver} events to a {@link KvEventPublisher}: the
 * one-liner the model server uses to publish vLLM KV events for any engine
 * (`combineObservers(metricsObserver, kvEventObserver(publisher))`).
 *
 * - `onBlocksStored(run)` → `BlockStored` (hashes, parent, tokens, block size, `medium`, and
 *   `lora_name` from the run's optional `loraName` field, else the option);
 * - `onBlocksRemoved(hashes)` → `BlockRemoved` with `medium`;
 * - `onStepEnd()` → `flush()`: one batch per engine step (nothing sent for a step without
 *   events); a failed send is logged, never thrown into the engine loop;
 * - {@link KvEventObserver.cleared} → `AllBlocksCleared` (call it on a prefix-cache reset or
 *   sleep, then `onStepEnd`).
 *
 * Source: reference/engine.md §3.1 (one batch per scheduler step), §3.3 (event semantics).
 */
import { logger } from "../../log.js";
import type { EngineObserver, StoredBlocks } from "../engine.js";
import type { KvEventPublisher } from "./publisher.js";

const log = logger.child({ component: "kv-event-publisher" });

/** An {@link EngineObserver} that also knows about cache resets. */
export interface KvEventObserver extends EngineObserver {
  /** records `AllBlocksCleared` (prefix-cache reset, sleep) */
  cleared(): void;
}

/** Options of {@link kvEventObserver}. */
export interface KvEventObserverOptions {
  /** tier of the engine's cache; default `"GPU"` */
  medium?: string;
  /** LoRA adapter name stamped on stored blocks (null = base model); default null */
  loraName?: string | null;
}

/** Builds the adapter (see module doc). */
export function kvEventObserver(pub: KvEventPublisher, opts: KvEventObserverOptions = {}): KvEventObserver {
  const medium = opts.medium ?? "GPU";
  return {
    onBlocksStored(e: StoredBlocks & { loraName?: string | null }): void {
      // a per-run LoRA (when the engine reports one) wins over the static option
      pub.blockStored({ ...e, medium, loraName: e.loraName ?? opts.loraName ?? null });
    },
    onBlocksRemoved(hashes: bigint[]): void {
      pub.blockRemoved(hashes, medium);
    },
    onStepEnd(): void {
      pub.flush().catch((err) => log.warn({ err }, "KV-event batch not sent"));
    },
    cleared(): void {
      pub.allCleared();
    },
  };
}
