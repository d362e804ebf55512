/**
 * P/D vs aggregated on the `long-prompt` workload (long prompts mixed with ongoing decodes),
 * in one run: the same total servers (4) and the same offered load (Poisson `--rate`), once as
 * `llmd up --prefill 1 --decode 3` (config/pd.yaml) and once as `llmd up --replicas 4`
 * (default config). Prints ITL p99 and TTFT p50/p99 of both and the ratios, plus the P/D
 * decisions and transfers the bench read from /metrics. Target (issue "P/D disaggregation end to
 * end"): ITL p99 at least 2× lower with P/D. Prints figures only; asserts nothing.
 *
 *   node --import tsx bench/pd.ts [--rate 5] [--requests 300] [--time-scale 2] [--json FILE]
 *     [--server-args "--max-num-batched-tokens 256 --prefill-overhead 5ms"] [--pd-config FILE]
 *     [--output-tokens 256] [--long-prompt-tokens 4096]
 *
 * Defaults (the scenario of the issue's figure): 300 requests at Poisson 5 req/s, short requests
 * with 256 output tokens (the ongoing decodes), every server with 256-token prefill chunks and a
 * 5 ms per-step prefill overhead, and llm-d's own `pd-epp-config.yaml` for the P/D stack
 * (`nonCachedTokens: 16`: every prompt is prefilled on the prefill server, so decode servers run
 * decode steps only; read from `../shared/fixtures/epp-configs/`, falling back to
 * `config/pd.yaml` when that file is absent). `--pd-config config/pd.yaml` (`nonCachedTokens:
 * 256`) keeps short prompts on the decode servers instead.
 *
 * Why 5 ms: the sim charges its prefill overhead once per engine step that carries prefill work;
 * inference-sim's "8B on H100" 30 ms is a per-request TTFT overhead, and as a per-step GPU cost
 * it would make every 64-token prefill a 3.9× stall (61.6 vs 15.6 ms) of the decodes sharing its step on both
 * stacks. 5 ms is the same for both stacks, so the comparison stays like for like.
 * Why 5 req/s: the stalled fraction of ITL samples must pass 1 % for p99 to see it (see below),
 * and the one prefill server stays below saturation (4096-token prompt ≈ 1.1 s simulated).
 *
 * Why the chunk size matters for ITL p99: a long prefill stalls the decodes sharing its steps,
 * so the fraction of ITL samples that are stalled ≈ (long prompts per server per second) ×
 * (prefill chunks per long prompt) × ITL. With 2048-token chunks (2 per 4096-token prompt) that
 * stays under 1 % at any load one prefill server can sustain, so p99 cannot see it (the stalls
 * show in p99.9 and the maximum); with 256-token chunks (16 per prompt) it passes 1 %.
 *
 * Servers: the sim's default latency profile (prefill 0.25 ms/token, ITL 12 ms,
 * Llama-3.1-8B KV geometry, link rdma-100g) with the server args above, `--kv-cache-size 4096` blocks so that several
 * 4096-token prompts fit. Latencies are wall-clock as the client sees them: with `--time-scale`
 * s they are the simulated ones ÷ s (ratios are unaffected).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { type BenchReport, runBench } from "../src/bench/index.js";
import { freePort, killAll, ROOT } from "./lib.js";

const argv = process.argv.slice(2);
const flag = (name: string, def: string) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1]! : def;
};
const RATE = Number(flag("rate", "5"));
const REQUESTS = Number(flag("requests", "300"));
const TIME_SCALE = flag("time-scale", "2");
const JSON_OUT = flag("json", "");
/** extra `llmd serve` flags for every server of both stacks, e.g. "--max-num-batched-tokens 256" */
const SERVER_ARGS = flag("server-args", "--max-num-batched-tokens 256 --prefill-overhead 5ms")
  .split(" ")
  .filter(Boolean);
/** EndpointPickerConfig of the P/D stack (default: llm-d's pd-epp-config.yaml, else config/pd.yaml) */
const LLMD_PD_CONFIG = join(ROOT, "../shared/fixtures/epp-configs/pd-epp-config.yaml");
const PD_CONFIG = flag("pd-config", existsSync(LLMD_PD_CONFIG) ? LLMD_PD_CONFIG : "");
/** completion tokens of the short requests (the ongoing decodes) */
const OUTPUT_TOKENS = Number(flag("output-tokens", "256"));
/** prompt length of the long requests, tokens */
const LONG_TOKENS = Number(flag("long-prompt-tokens", "4096"));
const CLI = join(ROOT, "src/cli/main.ts");

async function startUp(args: string[]): Promise<{ url: string; child: ChildProcess }> {
  const port = await freePort();
  const first = 20000 + Math.floor(Math.random() * 20000);
  const child = spawn(
    process.execPath,
    [
      "--import",
      "tsx",
      CLI,
      "up",
      "--port",
      String(port),
      "--first-server-port",
      String(first),
      "--server-arg=--time-scale",
      `--server-arg=${TIME_SCALE}`,
      "--server-arg=--kv-cache-size",
      "--server-arg=4096",
      ...SERVER_ARGS.map((a) => `--server-arg=${a}`),
      ...args,
    ],
    { cwd: ROOT, stdio: ["ignore", "pipe", "inherit"], env: { ...process.env, LLMD_LOG_LEVEL: "warn" } },
  );
  const url = await new Promise<string>((resolve, reject) => {
    const rl = createInterface({ input: child.stdout! });
    rl.on("line", (l) => {
      const m = /router ready at (\S+)/.exec(l);
      if (m) resolve(m[1]!);
    });
    child.once("exit", (c) => reject(new Error(`llmd up exited ${c}`)));
  });
  return { url, child };
}

async function run(label: string, upArgs: string[]): Promise<BenchReport> {
  const { url, child } = await startUp(upArgs);
  try {
    process.stderr.write(`${label}: ${url}, ${REQUESTS} requests at ${RATE} req/s\n`);
    return await runBench({
      url,
      workload: "long-prompt",
      rate: RATE,
      requests: REQUESTS,
      seed: 7,
      outputTokens: OUTPUT_TOKENS,
      longPrompt: { longPromptTokens: LONG_TOKENS },
    });
  } finally {
    await killAll([child]);
  }
}

const f = (v: number | null | undefined) => (v === null || v === undefined ? "-" : v.toFixed(2));
const ratio = (a: number | null, b: number | null) => (a && b ? (a / b).toFixed(2) : "-");

const agg = await run("aggregated 4", ["--replicas", "4"]);
const pd = await run("P/D 1+3", [
  "--prefill",
  "1",
  "--decode",
  "3",
  ...(PD_CONFIG ? ["--epp-config", PD_CONFIG] : []),
]);

const lines = [
  `long-prompt workload (${LONG_TOKENS}-token prompts 25 %, 64-token prompts with ${OUTPUT_TOKENS} outputs), ${REQUESTS} requests, Poisson ${RATE} req/s, time-scale ${TIME_SCALE}, P/D config ${PD_CONFIG || "config/pd.yaml"}${SERVER_ARGS.length ? `, servers: ${SERVER_ARGS.join(" ")}` : ""}`,
  "",
  "                      aggregated 4     P/D 1P+3D     aggregated / P/D",
  `  ITL p99 (ms)      ${f(agg.itl_ms.p99).padStart(12)} ${f(pd.itl_ms.p99).padStart(13)} ${ratio(agg.itl_ms.p99, pd.itl_ms.p99).padStart(12)}×`,
  `  ITL p50 (ms)      ${f(agg.itl_ms.p50).padStart(12)} ${f(pd.itl_ms.p50).padStart(13)} ${ratio(agg.itl_ms.p50, pd.itl_ms.p50).padStart(12)}×`,
  `  TTFT p50 (ms)     ${f(agg.ttft_ms.p50).padStart(12)} ${f(pd.ttft_ms.p50).padStart(13)} ${ratio(agg.ttft_ms.p50, pd.ttft_ms.p50).padStart(12)}×`,
  `  TTFT p99 (ms)     ${f(agg.ttft_ms.p99).padStart(12)} ${f(pd.ttft_ms.p99).padStart(13)} ${ratio(agg.ttft_ms.p99, pd.ttft_ms.p99).padStart(12)}×`,
  `  E2E p99 (ms)      ${f(agg.e2e_ms.p99).padStart(12)} ${f(pd.e2e_ms.p99).padStart(13)}`,
  `  completed/errors  ${`${agg.completed}/${agg.errors}`.padStart(12)} ${`${pd.completed}/${pd.errors}`.padStart(13)}`,
  "",
  `  P/D decisions: ${pd.pd ? `${pd.pd.prefill_decode} prefill-decode, ${pd.pd.decode_only} decode-only; ${pd.pd.transfers} KV transfers, mean ${f(pd.pd.mean_transfer_ms)} ms` : "none"}`,
  `  aggregated pd: ${JSON.stringify(agg.pd)}`,
  `  target: ITL p99 ≥ 2× lower with P/D → ${agg.itl_ms.p99 && pd.itl_ms.p99 && agg.itl_ms.p99 / pd.itl_ms.p99 >= 2 ? "met" : "NOT met"}`,
];
process.stdout.write(`${lines.join("\n")}\n`);
if (JSON_OUT) writeFileSync(JSON_OUT, JSON.stringify({ aggregated: agg, pd }, null, 2));
