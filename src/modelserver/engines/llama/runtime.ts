/**
 * The process-wide node-llama-cpp instance (reference/llama-engine.md §1, §7).
 *
 * - No build, no download: `NODE_LLAMA_CPP_SKIP_DOWNLOAD=true` is set in-process before
 *   node-llama-cpp is imported, and `getLlama` is always called with
 *   `{ gpu: false, build: "never", skipDownload: true }` (plus `maxThreads`). A missing prebuilt
 *   binary then throws `NoBinaryFoundError` instead of building or downloading (§1).
 * - Once per process: `getLlama()` tests the prebuilt binary in a child process on Linux and
 *   takes 470–720 ms (§1), so engines share one instance.
 * - Threads: node-llama-cpp's default `maxThreads` is `max(4, cores)`, which oversubscribes a
 *   2-core machine (32 tokens in 16 s); 1 thread decodes fastest on small models (§1 "Main
 *   pitfall: threads"). The first caller's `maxThreads` wins; contexts set their own `threads`.
 */
import type { Llama } from "node-llama-cpp";

process.env.NODE_LLAMA_CPP_SKIP_DOWNLOAD = "true";

/** The node-llama-cpp module, imported after the environment is set. */
export type NodeLlamaCpp = typeof import("node-llama-cpp");

let modPromise: Promise<NodeLlamaCpp> | null = null;
let llamaPromise: Promise<Llama> | null = null;
let llamaMaxThreads = 0;

/** Imports node-llama-cpp (once) with downloads disabled. */
export function nodeLlamaCpp(): Promise<NodeLlamaCpp> {
  process.env.NODE_LLAMA_CPP_SKIP_DOWNLOAD = "true";
  modPromise ??= import("node-llama-cpp");
  return modPromise;
}

/**
 * The shared Llama instance (created on first call: 0.5–0.7 s).
 * @param maxThreads CPU threads llama.cpp may use (default 1); only the first call's value is used
 * @throws NoBinaryFoundError when the prebuilt CPU binary is missing (never builds or downloads)
 */
export async function sharedLlama(maxThreads = 1): Promise<Llama> {
  if (!llamaPromise) {
    llamaMaxThreads = Math.max(1, Math.floor(maxThreads));
    llamaPromise = nodeLlamaCpp().then((m) =>
      m.getLlama({
        gpu: false,
        build: "never",
        skipDownload: true,
        maxThreads: llamaMaxThreads,
        logLevel: m.LlamaLogLevel.error,
      }),
    );
    llamaPromise.catch(() => {
      llamaPromise = null;
    });
  }
  return llamaPromise;
}

/** `maxThreads` the shared instance was created with (0 before the first {@link sharedLlama}). */
export function sharedLlamaMaxThreads(): number {
  return llamaMaxThreads;
}
