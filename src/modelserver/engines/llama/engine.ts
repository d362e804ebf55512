/**
 * The llama engine: a real CPU engine behind the model server's {@link Engine} interface
 * (DESIGN.md "Two engines"), running GGUF models through node-llama-cpp's prebuilt llama.cpp
 * (reference/llama-engine.md; never builds or downloads, see `runtime.ts`).
 *
 * **Slots.** One llama context with `maxNumSeqs` sequences ("slots"), each with
 * `maxModelLen` tokens of KV (§6: `contextSize` is per sequence). A request takes a free slot
 * or waits FIFO (`waiting`); requests on different slots are batched into shared
 * `llama_decode` calls by node-llama-cpp (§6). Batched greedy output is not always
 * token-identical to running alone (§6), so bit-exact comparisons use one request at a time.
 *
 * **Prefix reuse** (§5). A slot keeps its tokens' KV after its request ends. A new request takes
 * the free slot whose cached tokens share the longest prefix with its prompt (ties: least
 * recently used), keeps that prefix (`adaptStateToTokens(prompt[0..n−1), false)`), evaluates
 * only the rest of `prompt[0..n−1)`, then evaluates the last prompt token alone and samples.
 * The last token always gets its own evaluate call, as the P/D import path does (§4 "for exact
 * reproducibility, always compute the last prompt token in its own evaluate call"), so an
 * aggregated run and an export→import run compute the same numbers. `usage.cachedTokens` =
 * tokens kept (≤ n − 1, like vLLM, which always computes the last prompt token).
 *
 * **Sampling.** `temperature` 0 → greedy; otherwise temperature, `topP` (default 1), `topK`
 * (default 0 = off, vLLM's −1) and `seed` (a random one when absent). `temperature` absent →
 * `defaultTemperature` (1.0, vLLM's default). EOS/EOT ends the request with `stop` (the EOS id
 * is returned and counted, as in vLLM, and decodes to ""); `ignoreEos` keeps going;
 * `minTokens` bans end-of-generation tokens until reached; `maxTokens` → `length`.
 *
 * **Stats** from real counts: running = busy slots, waiting = queued requests,
 * prefix queries/hits in tokens, prompt/generation tokens, `kvCacheUsage` = KV cells held by
 * busy slots / all cells (cells of idle slots are reusable cache and count as free, like vLLM's
 * cached-unreferenced blocks); `onIteration` reports the tokens of every `llama_decode` batch.
 *
 * **KV transfer primitives** for P/D (§4): {@link LlamaEngine.exportPrefix} and
 * {@link LlamaEngine.importAndGenerate}, with the envelope and checks of `kv-state.ts`.
 */
import { randomBytes } from "node:fs/promises" with {} as never;
