/**
 * The model server (`llmd serve`): a vLLM-compatible HTTP surface over one engine interface.
 * See README.md. The contract test suite is in `contract.ts` (imported by tests only).
 */
export type {
  Engine,
  EngineFinish,
  EngineInfo,
  EngineObserver,
  EngineOutput,
  EngineRequest,
  EngineStats,
  EngineTimings,
  EngineUsage,
  FinishReason,
  SamplingParams,
} from "./engine.js";
export {
  SIM_DEFAULTS,
  SimEngine,
  type SimEngineOptions,
  type RequestRecord,
  type StepRecord,
} from "./engines/sim/engine.js";
export { blockHashes, firstBlockExtra, hashBlock, type KvBlock, KvCache } from "./engines/sim/kv-cache.js";
export { parseDurationMs } from "../framework/duration.js";
export { FastHistogram } from "../metrics/fast-histogram.js";
export { ModelServerMetrics } from "./metrics.js";
export {
  DEFAULT_COMPLETION_MAX_TOKENS,
  type ModelServerOptions,
  type RunningModelServer,
  startModelServer,
} from "./server.js";
export {
  renderChatTemplate,
  SimTokenizer,
  type StreamDecoder,
  splitTokens,
  type TemplateMessage,
  type Tokenizer,
  tokenId,
} from "./tokenizer.js";
