/**
 * Scheduler decision latency (run: `node --import tsx bench/scheduler.ts [decisions]`).
 *
 * Built-in default config (queue-scorer w2, kv-cache-utilization-scorer w2,
 * prefix-cache-scorer w3, max-score-picker, single-profile-handler), 16 endpoints with varied
 * metrics, 8k-token prompts (64 shared 6,144-token prefixes + 2,048 unique tokens). Metrics
 * change between decisions (outside the timed region); the approx prefix producer's
 * preRequest records each decision (outside the timed region) so matches build up.
 *
 * Figures (µs per decision, after warm-up, one run):
 * 1. scheduler only — `Scheduler.schedule()` (the producer ran before, untimed);
 * 2. scheduler with the plugin-duration callback on (as the EPP runs it with metrics);
 * 3. producer + scheduler — `approx-prefix-cache-producer.produce()` + `schedule()`.
 * Targets: p50 ≤ 50 µs, p99 ≤ 200 µs (scheduler, 16 endpoints, 8k-token prompts).
 */
import { loadConfig } from "../src/framework/config/index.js";
import { isDataProducer, isPreRequest, type DataProducer, type PreRequest } from "../src/framework/plugin.js";
import {
  type Endpoint,
  emptyMetrics,
  type InferenceRequest,
  TOKENIZED_PROMPT,
  type TokenizedPrompt,
} from "../src/framework/types.js";
import { builtinRegistry } from "../src/plugins/builtins.js";
import { Scheduler } from "../src/scheduler/scheduler.js";

const DECISIONS = Number(process.argv[2] ?? 20_000);
const WARMUP = 3_000;
const ENDPOINTS = 16;
const PROMPT_TOKENS = 8192;
const SHARED_TOKENS = 6144;
const DOCS = 64;
const TARGET_P50_US = 50;
const TARGET_P99_US = 200;

// deterministic RNG (mulberry32)
let seed = 12345;
const rand = () => {
  seed = (seed + 0x6d2b79f5) | 0;
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};

const endpoints: Endpoint[] = [];
for (let i = 0; i < ENDPOINTS; i++) {
  endpoints.push({
    metadata: {
      id: `default/vllm-${i}`,
      name: `vllm-${i}`,
      namespace: "default",
      address: `10.0.0.${i + 1}`,
      port: 8000,
      hostPort: `10.0.0.${i + 1}:8000`,
      labels: {},
    },
    metrics: { ...emptyMetrics(), cacheBlockSize: 64, cacheNumBlocks: 31250, updateTime: Date.now() },
    models: new Set(["m"]),
    attributes: new Map(),
  });
}
const churnMetrics = () => {
  for (const e of endpoints) {
    e.metrics.waitingQueueSize = Math.floor(rand() * 12);
    e.metrics.runningRequestsSize = Math.floor(rand() * 64);
    e.metrics.kvCacheUsagePercent = rand() * 0.95;
  }
};

const docs: Uint32Array[] = [];
for (let d = 0; d < DOCS; d++) {
  const t = new Uint32Array(SHARED_TOKENS);
  for (let i = 0; i < t.length; i++) t[i] = Math.floor(rand() * 150_000);
  docs.push(t);
}
let reqNo = 0;
const makeRequest = (): InferenceRequest => {
  const tokens = new Uint32Array(PROMPT_TOKENS);
  tokens.set(docs[Math.floor(rand() * DOCS)]!, 0);
  for (let i = SHARED_TOKENS; i < PROMPT_TOKENS; i++) tokens[i] = Math.floor(rand() * 150_000);
  const attributes = new Map<string, unknown>();
  attributes.set(TOKENIZED_PROMPT, { tokenIds: tokens, source: "vllm" } satisfies TokenizedPrompt);
  return {
    requestId: `r${reqNo++}`,
    incomingModel: "m",
    targetModel: "m",
    path: "/v1/completions",
    body: { model: "m", prompt: "" },
    headers: {},
    objectives: { priority: 0 },
    fairnessId: "default-flow",
    requestSizeBytes: PROMPT_TOKENS * 4,
    attributes,
  };
};

const config = loadConfig(null, builtinRegistry(), { warn: () => {} });
const producer = config.plugins.find(
  (p) => p.type === "approx-prefix-cache-producer" && isDataProducer(p) && isPreRequest(p),
) as (DataProducer & PreRequest) | undefined;
if (!producer) {
  console.error("approx-prefix-cache-producer is not in the default config; cannot bench");
  process.exit(1);
}
const plain = new Scheduler(config);
let sink = 0;
const withDurations = new Scheduler(config, {
  onPluginDuration: (_p, _t, _n, s) => {
    sink += s;
  },
});

type Mode = "scheduler" | "scheduler+durations" | "producer+scheduler";
function run(mode: Mode, n: number): Float64Array {
  const out = new Float64Array(n);
  const sched = mode === "scheduler+durations" ? withDurations : plain;
  for (let i = 0; i < n; i++) {
    churnMetrics();
    const req = makeRequest();
    let t0: bigint;
    let res: ReturnType<Scheduler["schedule"]>;
    if (mode === "producer+scheduler") {
      t0 = process.hrtime.bigint();
      producer!.produce(req, endpoints);
      res = sched.schedule(req, endpoints);
    } else {
      producer!.produce(req, endpoints);
      t0 = process.hrtime.bigint();
      res = sched.schedule(req, endpoints);
    }
    out[i] = Number(process.hrtime.bigint() - t0) / 1000;
    producer!.preRequest(req, res);
  }
  return out;
}

const pct = (sorted: Float64Array, p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
function report(mode: Mode) {
  run(mode, WARMUP);
  const lat = run(mode, DECISIONS).sort();
  const p50 = pct(lat, 50);
  const p90 = pct(lat, 90);
  const p99 = pct(lat, 99);
  const max = lat[lat.length - 1]!;
  console.log(
    `${mode.padEnd(20)} n=${DECISIONS}  p50=${p50.toFixed(1)}µs  p90=${p90.toFixed(1)}µs  p99=${p99.toFixed(1)}µs  max=${max.toFixed(0)}µs` +
      `  p50/target=${(p50 / TARGET_P50_US).toFixed(2)}  p99/target=${(p99 / TARGET_P99_US).toFixed(2)}`,
  );
}

console.log(
  `default config, ${ENDPOINTS} endpoints, ${PROMPT_TOKENS}-token prompts (${DOCS} shared ${SHARED_TOKENS}-token prefixes), node ${process.version}`,
);
console.log(`targets: p50 ≤ ${TARGET_P50_US} µs, p99 ≤ ${TARGET_P99_US} µs (ratio ≤ 1.00 meets the target)`);
report("scheduler");
report("scheduler+durations");
report("producer+scheduler");
if (sink < 0) console.log(sink);
