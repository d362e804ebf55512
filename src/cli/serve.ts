/**
 * `llmd serve` — the vLLM-compatible model server (DESIGN.md "Processes", "Two engines").
 *
 * `--engine sim` (default) runs the simulated accelerator; `--engine llama --model FILE.gguf`
 * runs a real CPU engine (llama.cpp through node-llama-cpp, prebuilt binary only: never built or
 * downloaded; `--threads` default 1, see docs/llama.md). Flags follow vLLM / llm-d-inference-sim names (reference/engine.md §6.2);
 * latency flags take Go durations (`250us`, `12ms`, `1s`) or plain numbers as ms.
 * Defaults: model `llmd/sim-8b`, max-model-len 8192, max-num-seqs 16, max-num-batched-tokens
 * 2048, block-size 16, kv-cache-size 1024 blocks, the "8B on H100" latency profile
 * (prefill 30 ms + 250 µs/token, ITL 12 ms), time-scale 1.
 * P/D (docs/pd.md): KV geometry (`--num-layers 32 --num-kv-heads 8 --head-dim 128
 * --kv-cache-dtype bf16`, Llama-3.1-8B), `--kv-transfer-config`, `--side-channel-host/-port`,
 * `--kv-link` presets with `--kv-link-bandwidth/-latency`, `--kv-lease`,
 * `--kv-load-failure-policy`; failure injection: `--failure-injection-rate`, `--failure-types`,
 * `--failure-mid-stream-rate` (and the `X-Return-Error` header).
 */
import { type Command, InvalidArgumentError } from "commander";
import { MODEL_SERVER_PORT } from "../framework/ports.js";
import { logger } from "../log.js";
import { parseDurationMs } from "../framework/duration.js";
import { SIM_DEFAULTS, type SimEngineOptions } from "../modelserver/engines/sim/engine.js";
import { FAILURE_TYPES, parseFailureTypes } from "../modelserver/failures.js";
import { DEFAULT_KV_LINK, KV_LINK_PRESETS, kvLinkPreset, parseBandwidth } from "../modelserver/kv-link.js";
import { kvBytesPerToken } from "../modelserver/kv-transfer.js";
import { type DeferredKvEvents, deferKvEvents } from "../modelserver/kv-events/config.js";
import { type ModelServerOptions, startModelServer } from "../modelserver/server.js";

const int =
  (min: number) =>
  (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`expected an integer ≥ ${min}`);
    return n;
  };
const num =
  (min: number, strict = false) =>
  (v: string): number => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < min || (strict && n === min)) {
      throw new InvalidArgumentError(`expected a number ${strict ? ">" : "≥"} ${min}`);
    }
    return n;
  };
const bandwidth = (v: string): number => {
  try {
    return parseBandwidth(v);
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
};
const dur = (v: string): number => {
  try {
    return parseDurationMs(v);
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
};

/** Flags of `llmd serve` as commander returns them (after the parsers above). */
export interface ServeFlags {
  engine: string;
  threads: number;
  port: number;
  host: string;
  model: string;
  servedModelName?: string[];
  maxModelLen: number;
  maxNumSeqs: number;
  maxNumBatchedTokens: number;
  blockSize: number;
  kvCacheSize?: number;
  numGpuBlocks?: number;
  mode: string;
  seed: number;
  latencyCalculator: string;
  timeToFirstToken: number;
  prefillOverhead: number;
  prefillTimePerToken: number;
  interTokenLatency: number;
  decodeBatchFactor: number;
  stepOverhead: number;
  timeScale: number;
  kvCacheTransferLatency: number;
  kvCacheTransferTimePerToken: number;
  maxWaitingQueueLength: number;
  maxRequestBodySizeMb: number;
  podName?: string;
  enablePromptTokensDetails: boolean;
  maxLoras: number;
  /** vLLM `--kv-events-config` JSON (KV events over ZMQ) */
  kvEventsConfig?: string;
  numLayers: number;
  numKvHeads: number;
  headDim: number;
  kvCacheDtype: string;
  attentionBackend: string;
  tensorParallelSize: number;
  kvTransferConfig?: string;
  sideChannelHost?: string;
  sideChannelPort?: number;
  kvLink: string;
  kvLinkBandwidth?: number;
  kvLinkLatency?: number;
  kvLease: number;
  kvLoadFailurePolicy?: string;
  engineId?: string;
  failureInjectionRate: number;
  failureTypes?: string;
  failureMidStreamRate: number;
}

/** What `--kv-transfer-config` may contain (reference/engine.md §5.1). */
interface KvTransferConfig {
  kv_connector?: string;
  kv_role?: string;
  kv_load_failure_policy?: string;
  kv_connector_extra_config?: { kv_lease_duration?: number; [k: string]: unknown };
  [k: string]: unknown;
}

/**
 * Parses `--kv-transfer-config` (JSON). Only `NixlConnector` is accepted; `kv_role` is ignored
 * as NixlConnector does (reference/engine.md §5.1).
 * @throws Error on invalid JSON or another connector
 */
export function parseKvTransferConfig(v: string): KvTransferConfig {
  let c: KvTransferConfig;
  try {
    c = JSON.parse(v) as KvTransferConfig;
  } catch (e) {
    throw new Error(`--kv-transfer-config: not JSON (${(e as Error).message})`);
  }
  if (c === null || typeof c !== "object" || Array.isArray(c)) throw new Error("--kv-transfer-config: expected a JSON object");
  if (c.kv_connector !== undefined && c.kv_connector !== "NixlConnector") {
    throw new Error(`--kv-transfer-config: kv_connector ${JSON.stringify(c.kv_connector)} is not supported (NixlConnector only)`);
  }
  return c;
}

/**
 * Maps parsed flags to server options.
 * @throws Error on an invalid mode or latency calculator
 */
export function serveOptionsFromFlags(f: ServeFlags): ModelServerOptions {
  if (f.mode !== "echo" && f.mode !== "random") throw new Error(`--mode ${f.mode}: expected echo or random`);
  if (!["", "constant", "per-token"].includes(f.latencyCalculator)) {
    throw new Error(`--latency-calculator ${f.latencyCalculator}: expected constant or per-token`);
  }
  const ktc = f.kvTransferConfig ? parseKvTransferConfig(f.kvTransferConfig) : {};
  const policy = f.kvLoadFailurePolicy ?? ktc.kv_load_failure_policy ?? "fail";
  if (policy !== "fail" && policy !== "recompute") {
    throw new Error(`--kv-load-failure-policy ${policy}: expected fail or recompute`);
  }
  const link = kvLinkPreset(f.kvLink ?? DEFAULT_KV_LINK);
  const leaseS = ktc.kv_connector_extra_config?.kv_lease_duration;
  const sim: Partial<SimEngineOptions> = {
    model: f.model,
    maxModelLen: f.maxModelLen,
    maxNumSeqs: f.maxNumSeqs,
    maxNumBatchedTokens: f.maxNumBatchedTokens,
    blockSize: f.blockSize,
    numGpuBlocks: f.kvCacheSize ?? f.numGpuBlocks ?? SIM_DEFAULTS.numGpuBlocks,
    maxWaitingQueueLength: f.maxWaitingQueueLength,
    mode: f.mode,
    seed: f.seed,
    latencyCalculator: f.latencyCalculator as SimEngineOptions["latencyCalculator"],
    timeToFirstTokenMs: f.timeToFirstToken,
    prefillOverheadMs: f.prefillOverhead,
    prefillTimePerTokenMs: f.prefillTimePerToken,
    interTokenLatencyMs: f.interTokenLatency,
    decodeBatchFactor: f.decodeBatchFactor,
    stepOverheadMs: f.stepOverhead,
    timeScale: f.timeScale,
    kvCacheTransferLatencyMs: f.kvCacheTransferLatency,
    kvCacheTransferTimePerTokenMs: f.kvCacheTransferTimePerToken,
    numLayers: f.numLayers,
    numKvHeads: f.numKvHeads,
    headDim: f.headDim,
    kvCacheDtype: f.kvCacheDtype,
    attentionBackend: f.attentionBackend,
    tensorParallelSize: f.tensorParallelSize,
    kvLeaseMs: typeof leaseS === "number" && leaseS > 0 ? leaseS * 1000 : f.kvLease,
    kvLinkBandwidthBytesPerS: f.kvLinkBandwidth ?? link.bandwidthBytesPerS,
    kvLinkLatencyMs: f.kvLinkLatency ?? link.latencyMs,
    kvLoadFailurePolicy: policy,
    engineId: f.engineId ?? "",
  };
  // validates the dtype early (unknown → error)
  kvBytesPerToken(f.numLayers, f.numKvHeads, f.headDim, f.kvCacheDtype);
  for (const [k, v] of [
    ["--failure-injection-rate", f.failureInjectionRate],
    ["--failure-mid-stream-rate", f.failureMidStreamRate],
  ] as const) {
    if (v > 100) throw new Error(`${k} ${v}: expected 0..100`);
  }
  return {
    sim,
    host: f.host,
    port: f.port,
    servedModelNames: f.servedModelName && f.servedModelName.length > 0 ? f.servedModelName : [f.model],
    maxRequestBodySizeMb: f.maxRequestBodySizeMb,
    podName: f.podName ?? (process.env.POD_NAME || undefined),
    enablePromptTokensDetails: f.enablePromptTokensDetails,
    maxLoras: f.maxLoras,
    sideChannelHost: f.sideChannelHost ?? (process.env.VLLM_NIXL_SIDE_CHANNEL_HOST || undefined),
    sideChannelPort: f.sideChannelPort,
    failures: {
      rate: f.failureInjectionRate,
      types: f.failureTypes ? parseFailureTypes(f.failureTypes) : [],
      midStreamRate: f.failureMidStreamRate,
    },
  };
}

/** Adds `llmd serve` to the CLI. */
export function registerServe(program: Command): void {
  const d = SIM_DEFAULTS;
  const cmd = program
    .command("serve")
    .description("run a vLLM-compatible model server (--engine sim: simulated accelerator)")
    .option(
      "--engine <engine>",
      "engine: sim (simulated accelerator) or llama (GGUF file given by --model)",
      "sim",
    )
    .option(
      "--threads <n>",
      "llama engine: CPU threads (1 is fastest for decode on small machines)",
      int(1),
      1,
    )
    .option("--port <port>", "listen port (0 = any free port)", int(0), MODEL_SERVER_PORT)
    .option("--host <host>", "listen address", "127.0.0.1")
    .option("--model <name>", "model name", d.model)
    .option("--served-model-name <names...>", "names accepted in `model` (default: --model)")
    .option("--max-model-len <tokens>", "max prompt + output tokens", int(2), d.maxModelLen)
    .option("--max-num-seqs <n>", "max running requests", int(1), d.maxNumSeqs)
    .option(
      "--max-num-batched-tokens <tokens>",
      "token budget per engine step",
      int(1),
      d.maxNumBatchedTokens,
    )
    .option("--block-size <tokens>", "tokens per KV block", int(1), d.blockSize)
    .option("--kv-cache-size <blocks>", `KV blocks (default ${d.numGpuBlocks})`, int(1))
    .option("--num-gpu-blocks <blocks>", "alias of --kv-cache-size", int(1))
    .option("--mode <mode>", "output text: random | echo", d.mode)
    .option("--seed <n>", "random-mode seed", int(0), d.seed)
    .option(
      "--latency-calculator <name>",
      "constant | per-token (default: constant if --time-to-first-token)",
      "",
    )
    .option(
      "--time-to-first-token <dur>",
      "constant-calculator TTFT (Go duration like 250us/12ms/1s, or ms)",
      dur,
      d.timeToFirstTokenMs,
    )
    .option(
      "--prefill-overhead <dur>",
      "per-token calculator: overhead of a step with prefill (Go duration like 250us/12ms/1s, or ms)",
      dur,
      d.prefillOverheadMs,
    )
    .option(
      "--prefill-time-per-token <dur>",
      "per-token calculator: time per prefill token (Go duration like 250us/12ms/1s, or ms)",
      dur,
      d.prefillTimePerTokenMs,
    )
    .option(
      "--inter-token-latency <dur>",
      "decode step time for one sequence (Go duration like 250us/12ms/1s, or ms)",
      dur,
      d.interTokenLatencyMs,
    )
    .option(
      "--decode-batch-factor <f>",
      "extra fraction of ITL per additional decoding sequence",
      num(0),
      d.decodeBatchFactor,
    )
    .option(
      "--step-overhead <dur>",
      "fixed cost of every engine step (Go duration like 250us/12ms/1s, or ms)",
      dur,
      d.stepOverheadMs,
    )
    .option("--time-scale <f>", "speed-up: every duration is divided by it", num(0, true), d.timeScale)
    .option(
      "--kv-cache-transfer-latency <dur>",
      "P/D decode side: constant KV pull time (0 = per-token time) (Go duration like 250us/12ms/1s, or ms)",
      dur,
      d.kvCacheTransferLatencyMs,
    )
    .option(
      "--kv-cache-transfer-time-per-token <dur>",
      "P/D decode side: KV pull time per prompt token (Go duration like 250us/12ms/1s, or ms)",
      dur,
      d.kvCacheTransferTimePerTokenMs,
    )
    .option("--max-waiting-queue-length <n>", "waiting requests before 429", int(0), d.maxWaitingQueueLength)
    .option("--max-request-body-size-mb <mb>", "request body limit, MiB", num(0, true), 4)
    .option("--pod-name <name>", "x-inference-pod header (default: $POD_NAME, else host:port)")
    .option(
      "--enable-prompt-tokens-details",
      "report usage.prompt_tokens_details.cached_tokens (default)",
      true,
    )
    .option("--no-enable-prompt-tokens-details", "omit usage.prompt_tokens_details")
    .option("--max-loras <n>", "max_lora label of vllm:lora_requests_info", int(0), 1)
    .option(
      "--kv-events-config <json>",
      'KV events over ZMQ, vLLM\'s JSON: \'{"enable_kv_cache_events":true,"publisher":"zmq","endpoint":"tcp://*:5557","replay_endpoint":"tcp://*:5558","topic":"kv@<ip>:<port>@<model>"}\' (topic "" = kv@<host>:<port>@<model>; llmd extension "bind": true binds a non-wildcard endpoint)',
    )
    .option("--num-layers <n>", "KV geometry: layers (default Llama-3.1-8B)", int(1), d.numLayers)
    .option("--num-kv-heads <n>", "KV geometry: KV heads", int(1), d.numKvHeads)
    .option("--head-dim <n>", "KV geometry: head dimension", int(1), d.headDim)
    .option("--kv-cache-dtype <dtype>", "KV dtype: bf16 | fp16 | fp8 | fp32", d.kvCacheDtype)
    .option("--attention-backend <name>", "attention backend advertised in the KV layout", d.attentionBackend)
    .option("--tensor-parallel-size <n>", "tensor-parallel size advertised (tp_size)", int(1), d.tensorParallelSize)
    .option(
      "--kv-transfer-config <json>",
      'P/D: e.g. \'{"kv_connector":"NixlConnector","kv_role":"kv_both"}\' (NixlConnector only; kv_load_failure_policy, kv_connector_extra_config.kv_lease_duration read)',
    )
    .option(
      "--side-channel-host <host>",
      "P/D: host advertised in remote_host (default: $VLLM_NIXL_SIDE_CHANNEL_HOST, else --host); must be routable, not 0.0.0.0",
    )
    .option("--side-channel-port <port>", "P/D: port advertised in remote_port (default: the HTTP port)", int(1))
    .option(
      "--kv-link <preset>",
      `P/D: simulated link of KV pulls: ${Object.keys(KV_LINK_PRESETS).join(" | ")} (see docs/pd.md)`,
      DEFAULT_KV_LINK,
    )
    .option("--kv-link-bandwidth <bw>", "P/D: link bandwidth override (bytes/s, or 25Gbps, 10GB/s)", bandwidth)
    .option("--kv-link-latency <dur>", "P/D: fixed latency per transfer override (Go duration or ms)", dur)
    .option("--kv-lease <dur>", "P/D prefill side: how long KV is held for a remote decode (wall clock)", dur, d.kvLeaseMs)
    .option("--kv-load-failure-policy <policy>", "P/D decode side: fail (default) | recompute")
    .option("--engine-id <id>", "P/D: engine id (remote_engine_id; default: a random uuid)")
    .option("--failure-injection-rate <pct>", "inject errors into this % of requests (0..100)", num(0), 0)
    .option("--failure-types <list>", `comma list of: ${FAILURE_TYPES.join(",")} (default all)`)
    .option(
      "--failure-mid-stream-rate <pct>",
      "cut this % of streamed responses after their first chunk (0..100)",
      num(0),
      0,
    );
  cmd.action(async (f: ServeFlags) => {
    if (f.engine !== "sim" && f.engine !== "llama") {
      cmd.error(`llmd serve: unknown engine "${f.engine}" (use sim or llama)`, { exitCode: 2 });
    }
    let opts: ModelServerOptions | undefined;
    try {
      opts = serveOptionsFromFlags(f);
      if (f.engine === "llama") {
        const { createLlamaEngine } = await import("../modelserver/engines/llama/engine.js");
        // Only flags given on the command line override the llama engine's own defaults.
        const given = (k: string) => cmd.getOptionValueSource(k) === "cli";
        const engine = await createLlamaEngine({
          modelPath: f.model,
          model: f.servedModelName?.[0],
          maxModelLen: given("maxModelLen") ? f.maxModelLen : undefined,
          maxNumSeqs: given("maxNumSeqs") ? f.maxNumSeqs : undefined,
          threads: f.threads,
          blockSize: f.blockSize,
          maxWaitingQueueLength: f.maxWaitingQueueLength,
          // P/D settings shared with the sim (--kv-lease, --kv-load-failure-policy, --engine-id)
          kvLeaseMs: opts.sim?.kvLeaseMs,
          kvLoadFailurePolicy: opts.sim?.kvLoadFailurePolicy,
          engineId: f.engineId || undefined,
        });
        opts = {
          ...opts,
          sim: undefined,
          engine,
          servedModelNames: f.servedModelName?.length ? f.servedModelName : [engine.info.model],
        };
      }
    } catch (e) {
      cmd.error(`llmd serve: ${(e as Error).message}`, { exitCode: 2 });
    }
    if (!opts) return;
    let kvEvents: DeferredKvEvents | null = null;
    if (f.kvEventsConfig !== undefined) {
      try {
        kvEvents = deferKvEvents(f.kvEventsConfig);
      } catch (e) {
        cmd.error(`llmd serve: ${(e as Error).message}`, { exitCode: 2 });
      }
      const ev = kvEvents!;
      opts = { ...opts, observers: [...(opts.observers ?? []), ev.observer], onPrefixCacheReset: () => ev.cleared() };
    }
    const log = logger.child({ component: "serve" });
    const server = await startModelServer(opts);
    if (kvEvents) {
      try {
        const feed = await kvEvents.start({ host: f.host, port: server.port, model: opts.servedModelNames?.[0] ?? server.engine.info.model });
        log.info({ endpoint: feed.publisher.endpoint, topic: feed.publisher.topic, enabled: feed.publisher.enabled }, "KV events");
      } catch (e) {
        log.error({ err: (e as Error).message }, "llmd serve: cannot open the KV-event publisher (--kv-events-config)");
        await server.close();
        process.exit(1);
      }
    }
    const info = server.engine.info;
    if (info.maxModelLen > info.numGpuBlocks * info.blockSize) {
      log.warn(
        { maxModelLen: info.maxModelLen, kvCacheTokens: info.numGpuBlocks * info.blockSize },
        "max-model-len exceeds the KV cache (kv-cache-size × block-size): requests needing more blocks than the cache get 400",
      );
    }
    log.info(
      {
        url: server.url,
        engine: info.kind,
        model: info.model,
        maxModelLen: info.maxModelLen,
        blockSize: info.blockSize,
        numGpuBlocks: info.numGpuBlocks,
      },
      `llmd serve: listening on ${server.url} (engine ${info.kind}, model ${info.model})`,
    );
    let stopping = false;
    const stop = (sig: string) => {
      if (stopping) return;
      stopping = true;
      log.info({ signal: sig }, "llmd serve: shutting down");
      server.close().then(() => kvEvents?.close()).then(
        () => process.exit(0),
        (e: Error) => {
          log.error({ err: e.message }, "llmd serve: error while closing");
          process.exit(1);
        },
      );
    };
    process.once("SIGTERM", () => stop("SIGTERM"));
    process.once("SIGINT", () => stop("SIGINT"));
  });
}
