/**
 * Routing quality on llm-d's shared-prefix workload, in one run: `llmd up` with the default
 * EPP config vs the same stack with a random picker, same workload and the same offered load
 * (Poisson arrivals at a fixed rate). Prints fleet prefix-cache hit rate vs the oracle, and
 * TTFT p50 of both. Targets (issue: foundation): default hit rate ≥ 0.9 × oracle; default
 * TTFT p50 ≤ 0.5 × random's.
 *
 *   node --import tsx bench/routing-quality.ts [--rate 16] [--extra "bench flags"]
 */
import { join } from "node:path";
import { benchAgainstStack, ROOT } from "./lib.js";

const argv = process.argv.slice(2);
const flag = (name: string, def: string) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1]! : def;
};
const RATE = flag("rate", "16");
const EXTRA = flag("extra", "").split(" ").filter(Boolean);

interface Report {
  requests: number;
  completed: number;
  errors: number;
  ttft_ms: { p50: number; p90: number; p99: number };
  itl_ms: { p50: number; p90: number; p99: number };
  e2e_ms: { p50: number; p90: number; p99: number };
  prefix_cache_hit_rate: number | null;
  oracle_hit_rate: number;
  output_tokens_per_s: number;
}

function runStack(config: string | null): Promise<Report> {
  return benchAgainstStack<Report>(config ? ["--epp-config", config] : [], [
    "--workload",
    "shared-prefix",
    "--rate",
    RATE,
    ...EXTRA,
  ]);
}

console.log(`== default EPP config (queue 2, kv-cache 2, prefix-cache 3), rate ${RATE}/s ==`);
const def = await runStack(null);
console.log(`== random-picker config, rate ${RATE}/s ==`);
const rnd = await runStack(join(ROOT, "config/random-picker.yaml"));

const f = (x: number | null | undefined, d = 3) => (x === null || x === undefined ? "n/a" : x.toFixed(d));
console.log("\nrouting quality, shared-prefix workload (bench defaults), same offered load");
console.log("                 hit rate  oracle  hit/oracle  TTFT p50 ms  TTFT p90 ms  ITL p50 ms  errors");
for (const [name, r] of [
  ["default", def],
  ["random", rnd],
] as const) {
  const ratio = r.prefix_cache_hit_rate === null ? null : r.prefix_cache_hit_rate / r.oracle_hit_rate;
  console.log(
    `  ${name.padEnd(12)}  ${f(r.prefix_cache_hit_rate).padStart(8)}  ${f(r.oracle_hit_rate).padStart(6)}  ${f(ratio).padStart(10)}  ${f(r.ttft_ms.p50, 1).padStart(11)}  ${f(r.ttft_ms.p90, 1).padStart(11)}  ${f(r.itl_ms.p50, 1).padStart(10)}  ${r.errors}/${r.requests}`,
  );
}
const hitRatio =
  def.prefix_cache_hit_rate === null ? Number.NaN : def.prefix_cache_hit_rate / def.oracle_hit_rate;
const ttftRatio = def.ttft_ms.p50 / rnd.ttft_ms.p50;
console.log(
  `\ndefault hit rate / oracle = ${f(hitRatio)} (target ≥ 0.9: ${hitRatio >= 0.9 ? "met" : "NOT met"})`,
);
console.log(
  `default TTFT p50 / random TTFT p50 = ${f(ttftRatio)} (target ≤ 0.5: ${ttftRatio <= 0.5 ? "met" : "NOT met"})`,
);
