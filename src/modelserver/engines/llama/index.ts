/** The llama.cpp engine (node-llama-cpp): see `engine.ts`. */
export {
  createLlamaEngine,
  type KvExport,
  kvGeometryOf,
  LlamaEngine,
  type LlamaEngineFinish,
  type LlamaEngineOptions,
  type LlamaSamplingParams,
} from "./engine.js";
export {
  checkKvState,
  decodeKvState,
  describeGeometry,
  encodeKvState,
  type KvGeometry,
  KV_STATE_MAGIC,
  type KvStateHeader,
  KvStateMismatchError,
  LLAMA_STATE_SEQ_MAGIC,
  LLAMA_STATE_SEQ_VERSION,
  restreamSeqState,
} from "./kv-state.js";
export { DEFAULT_KV_LEASE_MS, type KvLeaseStats, KvLeaseStore } from "./pd.js";
export { nodeLlamaCpp, sharedLlama } from "./runtime.js";
export { LlamaTokenizer } from "./tokenizer.js";
