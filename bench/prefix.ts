/**
 * Cost of `approx-prefix-cache-producer.produce()` for an 8k-token prompt (estimate backend:
 * 32 KiB of text → 8192 pseudo tokens → 128 blocks of 64) against 16 endpoints with a warm
 * index (every endpoint holds 2000 other prompts' blocks; 8 endpoints hold the measured prompt's
 * first half, 4 hold all of it). Prints p50/p99 in µs of: the estimate tokenization alone,
 * produce() with tokens already present, and tokenization + produce().
 *
 * Run: node --import tsx bench/prefix.ts
 */
import { performance } from "node:perf_hooks";
import {
  emptyMetrics,
  type Endpoint,
  type InferenceRequest,
  TOKENIZED_PROMPT,
} from "../src/framework/types.js";
import { estimateTokens } from "../src/kvcache/estimate-tokens.js";
import { ApproxPrefixCacheProducer } from "../src/plugins/producers/approx-prefix-cache-producer.js";

const ENDPOINTS = 16;
const PROMPT_BYTES = 32 * 1024;
const ITER = 3000;

function endpoint(i: number): Endpoint {
  return {
    metadata: {
      id: `ep-${i}`,
      name: `ep-${i}`,
      namespace: "default",
      address: "10.0.0.1",
      port: 8000 + i,
      hostPort: `10.0.0.1:${8000 + i}`,
      labels: {},
    },
    metrics: emptyMetrics(),
    models: new Set(),
    attributes: new Map(),
  };
}

function text(seed: number, bytes: number): string {
  let s = `${seed}:`;
  let x = (seed * 2654435761) >>> 0;
  while (s.length < bytes) {
    x = (x * 1103515245 + 12345) >>> 0;
    s += `w${x.toString(36)} `;
  }
  return s.slice(0, bytes);
}

function request(prompt: string): InferenceRequest {
  return {
    requestId: "r",
    incomingModel: "m",
    targetModel: "m",
    path: "/v1/completions",
    body: { model: "m", prompt },
    headers: {},
    objectives: { priority: 0 },
    fairnessId: "default-flow",
    requestSizeBytes: prompt.length,
    attributes: new Map(),
  };
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

const eps = Array.from({ length: ENDPOINTS }, (_, i) => endpoint(i));
const producer = new ApproxPrefixCacheProducer("approx", {
  autoTune: false,
  blockSizeTokens: 64,
  lruCapacityPerServer: 1_000_000,
});

// warm the index: 2000 distinct 4 KiB prompts per endpoint
const t0 = performance.now();
for (let i = 0; i < ENDPOINTS; i++) {
  for (let j = 0; j < 2000; j++) {
    const r = request(text(i * 100_000 + j, 4096));
    producer.produce(r, [eps[i]]);
    producer.preRequest(r, {
      primaryProfileName: "d",
      profileResults: { d: { targetEndpoints: [eps[i]], scoredCandidates: [] } },
    });
  }
}
const prompt = text(42, PROMPT_BYTES);
const half = request(prompt.slice(0, PROMPT_BYTES / 2));
for (let i = 0; i < 8; i++) {
  producer.produce(half, [eps[i]]);
  producer.preRequest(half, {
    primaryProfileName: "d",
    profileResults: { d: { targetEndpoints: [eps[i]], scoredCandidates: [] } },
  });
}
for (let i = 0; i < 4; i++) {
  const full = request(prompt);
  producer.produce(full, [eps[i]]);
  producer.preRequest(full, {
    primaryProfileName: "d",
    profileResults: { d: { targetEndpoints: [eps[i]], scoredCandidates: [] } },
  });
}
const warmMs = performance.now() - t0;

const tokenize: number[] = [];
const produceOnly: number[] = [];
const both: number[] = [];
for (let k = 0; k < ITER + 200; k++) {
  const r = request(prompt);
  let s = performance.now();
  const ids = estimateTokens(r);
  const tTok = performance.now() - s;
  r.attributes.set(TOKENIZED_PROMPT, { tokenIds: ids, source: "estimate" });
  s = performance.now();
  producer.produce(r, eps);
  const tProd = performance.now() - s;
  const r2 = request(prompt);
  s = performance.now();
  producer.produce(r2, eps);
  const tBoth = performance.now() - s;
  if (k >= 200) {
    tokenize.push(tTok * 1000);
    produceOnly.push(tProd * 1000);
    both.push(tBoth * 1000);
  }
}

const info = eps.map(
  (e) => (e.attributes.get("prefix-match-info/approx") as { matchBlocks: number }).matchBlocks,
);
console.log(`index: ${producer.indexSize()} distinct block hashes, warmed in ${warmMs.toFixed(0)} ms`);
console.log(`match blocks per endpoint: ${info.join(",")} (of ${Math.ceil(PROMPT_BYTES / 4 / 64)})`);
for (const [name, xs] of [
  ["estimate tokenize (32 KiB)", tokenize],
  ["produce(), tokens given", produceOnly],
  ["produce() incl. estimate", both],
] as const) {
  console.log(
    `${name.padEnd(28)} p50 ${pct(xs, 50).toFixed(1)} µs  p99 ${pct(xs, 99).toFixed(1)} µs  (n=${xs.length})`,
  );
}

// ── the whole request-control path with the default config (queue ×2, kv ×2, prefix ×3) ──
{
  const { loadConfig } = await import("../src/framework/config/index.js");
  const { builtinRegistry } = await import("../src/plugins/builtins.js");
  const { Scheduler } = await import("../src/scheduler/scheduler.js");
  const { Director, pluginDurationRecorder } = await import("../src/requestcontrol/director.js");
  const { createEppMetrics } = await import("../src/metrics/epp.js");
  const cfg = loadConfig(null, builtinRegistry(), { warn: () => {} });
  const metrics = createEppMetrics();
  const director = new Director(
    cfg,
    new Scheduler(cfg, { onPluginDuration: pluginDurationRecorder(metrics) }),
    metrics,
  );
  const fleet = Array.from({ length: ENDPOINTS }, (_, i) => endpoint(i));
  // warm: 64 distinct 8k prompts, each sent twice
  for (let j = 0; j < 64; j++) {
    for (let rep = 0; rep < 2; rep++)
      await director.handleRequest(request(text(900 + j, PROMPT_BYTES)), fleet);
  }
  const prompts = Array.from({ length: 64 }, (_, j) => text(900 + j, PROMPT_BYTES));
  const full: number[] = [];
  for (let k = 0; k < 1200; k++) {
    for (const e of fleet) e.attributes.clear();
    const r = request(prompts[k % prompts.length]);
    const s = performance.now();
    await director.handleRequest(r, fleet);
    if (k >= 200) full.push((performance.now() - s) * 1000);
  }
  console.log(
    `${"Director.handleRequest".padEnd(28)} p50 ${pct(full, 50).toFixed(1)} µs  p90 ${pct(full, 90).toFixed(1)} µs  p99 ${pct(full, 99).toFixed(1)} µs  (n=${full.length}; default config, estimate tokens, ${ENDPOINTS} endpoints)`,
  );
}
