/**
 * Precise vs approximate prefix-cache routing on llm-d's shared-prefix workload, in one run,
 * same offered load (seeded Poisson arrivals at `--rate`): `llmd up --routing precise`
 * (config/precise.yaml: the index follows the servers' KV events) vs `llmd up` with the default
 * EPP config (approx-prefix-cache-producer: the index guesses from routing history). The
 * working set is sized to several times one server's KV cache so that servers evict and the
 * approximate index goes stale: default 4 servers × 512 blocks × 16 tokens (8192 tokens each),
 * 16 groups × 2048-token system prompts = 32768 tokens = 4 × one server's cache.
 * 32 prompts per group (512 requests): the first prompt of each group is a compulsory miss
 * whatever the routing, and with llm-d's 8 prompts per group those are 12.5 % of the requests,
 * so TTFT p90 is a full prefill under any router and cannot tell two routers apart; with 32 they
 * are 3.1 % and p90 measures the misses the routing causes.
 * Prints fleet prefix-cache hit rate, oracle hit rate and TTFT p50/p90 of both, and the ratios
 * precise/approximate (target: precise better on both). No assertions.
 *
 *   node --import tsx bench/precise-routing.ts [--rate 6] [--replicas 4] [--groups 16]
 *     [--prompts-per-group 32] [--system-prompt-tokens 2048] [--question-tokens 64]
 *     [--output-tokens 16] [--kv-cache-size 512] [--extra "more llmd bench flags"]
 */
import { benchAgainstStack } from "./lib.js";

const argv = process.argv.slice(2);
const flag = (name: string, def: string) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1]! : def;
};
const RATE = flag("rate", "6");
const REPLICAS = flag("replicas", "4");
const GROUPS = flag("groups", "16");
const PPG = flag("prompts-per-group", "32");
const SYS = flag("system-prompt-tokens", "2048");
const Q = flag("question-tokens", "64");
const OUT = flag("output-tokens", "16");
const KV_BLOCKS = flag("kv-cache-size", "512");
const EXTRA = flag("extra", "").split(" ").filter(Boolean);

interface Report {
  requests: number;
  completed: number;
  errors: number;
  ttft_ms: { p50: number; p90: number; p99: number };
  prefix_cache_hit_rate: number | null;
  oracle_hit_rate: number;
}

function runStack(routing: "precise" | "approximate"): Promise<Report> {
  return benchAgainstStack<Report>(
    [
      "--replicas",
      REPLICAS,
      "--routing",
      routing,
      "--server-arg=--kv-cache-size",
      `--server-arg=${KV_BLOCKS}`,
    ],
    [
      "--workload",
      "shared-prefix",
      "--groups",
      GROUPS,
      "--prompts-per-group",
      PPG,
      "--system-prompt-tokens",
      SYS,
      "--question-tokens",
      Q,
      "--output-tokens",
      OUT,
      "--rate",
      RATE,
      ...EXTRA,
    ],
  );
}

const perServer = Number(KV_BLOCKS) * 16;
const working = Number(GROUPS) * Number(SYS);
console.log(
  `shared-prefix: ${GROUPS} groups × ${PPG} prompts, system prompt ${SYS} + question ${Q} tokens, output ${OUT}; ` +
    `${REPLICAS} servers × ${KV_BLOCKS} blocks × 16 tokens = ${perServer} tokens each; ` +
    `working set ${working} tokens = ${(working / perServer).toFixed(1)} × one server's cache; rate ${RATE}/s; ` +
    `compulsory (first-of-group) requests ${((100 * Number(GROUPS)) / (Number(GROUPS) * Number(PPG))).toFixed(1)} %`,
);
console.log("== precise (llmd up --routing precise) ==");
const pre = await runStack("precise");
console.log("== approximate (default EPP config) ==");
const apx = await runStack("approximate");

const f = (x: number | null | undefined, d = 3) => (x === null || x === undefined ? "n/a" : x.toFixed(d));
console.log("\n                 hit rate  oracle  TTFT p50 ms  TTFT p90 ms  errors");
for (const [name, r] of [
  ["precise", pre],
  ["approximate", apx],
] as const) {
  console.log(
    `  ${name.padEnd(12)}  ${f(r.prefix_cache_hit_rate).padStart(8)}  ${f(r.oracle_hit_rate).padStart(6)}  ${f(r.ttft_ms.p50, 1).padStart(11)}  ${f(r.ttft_ms.p90, 1).padStart(11)}  ${r.errors}/${r.requests}`,
  );
}
const hit =
  pre.prefix_cache_hit_rate !== null && apx.prefix_cache_hit_rate
    ? pre.prefix_cache_hit_rate / apx.prefix_cache_hit_rate
    : Number.NaN;
const ttft = pre.ttft_ms.p90 / apx.ttft_ms.p90;
console.log(
  `\nprecise hit rate / approximate hit rate = ${f(hit)} (target > 1: ${hit > 1 ? "met" : "NOT met"})`,
);
console.log(
  `precise TTFT p90 / approximate TTFT p90 = ${f(ttft)} (target < 1: ${ttft < 1 ? "met" : "NOT met"})`,
);
