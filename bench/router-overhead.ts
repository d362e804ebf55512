/**
 * Router overhead: added p50 latency of going through `llmd router` vs calling a
 * zero-latency sim server directly, measured in the same run, at concurrency 32.
 * Target (issue: foundation): ≤ 1 ms added at p50.
 *
 * Also prints the CPU time (user + system, from /proc/<pid>/stat) the router process spent per
 * request over the measured router rounds, and the sim server's per request over the measured
 * direct rounds: on a shared machine these are robust to other load, where latency is not.
 *
 *   node --import tsx bench/router-overhead.ts [--requests 4000] [--concurrency 32]
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { Pool } from "undici";
import { freePort, killAll, llmd, percentile, waitReady } from "./lib.js";

const arg = (name: string, def: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};
const REQUESTS = arg("requests", 4000);
const CONCURRENCY = arg("concurrency", 32);
const MODEL = "llmd/sim-8b";

/** Clock ticks per second of /proc/<pid>/stat times (`getconf CLK_TCK`, usually 100). */
const CLK_TCK = (() => {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** CPU time (utime + stime) of a process so far, µs; NaN where /proc is unavailable. */
function cpuMicros(pid: number | undefined): number {
  if (pid === undefined) return Number.NaN;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // fields after the `(comm)`, which may contain spaces: state is field 3, utime 14, stime 15
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return ((Number(f[11]) + Number(f[12])) / CLK_TCK) * 1e6;
  } catch {
    return Number.NaN;
  }
}

async function load(base: string): Promise<number[]> {
  const pool = new Pool(base, { connections: CONCURRENCY });
  const body = JSON.stringify({ model: MODEL, prompt: "measure the router overhead please", max_tokens: 1 });
  const lat: number[] = [];
  let next = 0;
  const worker = async () => {
    while (next < REQUESTS) {
      next++;
      const t0 = process.hrtime.bigint();
      const r = await pool.request({
        method: "POST",
        path: "/v1/completions",
        headers: { "content-type": "application/json" },
        body,
      });
      await r.body.text();
      if (r.statusCode !== 200) throw new Error(`HTTP ${r.statusCode}`);
      lat.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  await pool.close();
  return lat;
}

const serverPort = await freePort();
const routerPort = await freePort();
const zero = [
  "--prefill-overhead",
  "0",
  "--prefill-time-per-token",
  "0",
  "--inter-token-latency",
  "0",
  "--time-to-first-token",
  "0",
];
const server = llmd([
  "serve",
  "--port",
  String(serverPort),
  "--model",
  MODEL,
  "--max-num-seqs",
  "256",
  ...zero,
]);
const router = llmd(["router", "--port", String(routerPort), "--endpoint", `127.0.0.1:${serverPort}`]);
try {
  const direct = `http://127.0.0.1:${serverPort}`;
  const routed = `http://127.0.0.1:${routerPort}`;
  await waitReady(`${direct}/health`);
  await waitReady(`${routed}/health`);
  // warm-up both paths (JIT, connections)
  await load(direct);
  await load(routed);
  const rounds = 3;
  const d: number[] = [];
  const r: number[] = [];
  let serverCpu = 0; // µs of the sim server over the direct rounds
  let routerCpu = 0; // µs of the router over the router rounds
  for (let i = 0; i < rounds; i++) {
    let c0 = cpuMicros(server.pid);
    d.push(...(await load(direct)));
    serverCpu += cpuMicros(server.pid) - c0;
    c0 = cpuMicros(router.pid);
    r.push(...(await load(routed)));
    routerCpu += cpuMicros(router.pid) - c0;
  }
  const n = rounds * REQUESTS;
  const dp50 = percentile(d, 50);
  const rp50 = percentile(r, 50);
  const added = rp50 - dp50;
  console.log(
    `router overhead, concurrency ${CONCURRENCY}, ${rounds}×${REQUESTS} requests per path (interleaved rounds)`,
  );
  console.log(`  direct  p50 ${dp50.toFixed(3)} ms  p99 ${percentile(d, 99).toFixed(3)} ms`);
  console.log(`  router  p50 ${rp50.toFixed(3)} ms  p99 ${percentile(r, 99).toFixed(3)} ms`);
  console.log(
    `  added p50 ${added.toFixed(3)} ms  (target ≤ 1 ms: ${added <= 1 ? "met" : "NOT met"}, ratio to target ${(added / 1).toFixed(2)})`,
  );
  console.log(
    `  CPU per request (/proc utime+stime, ${(1e6 / CLK_TCK).toFixed(0)} µs ticks): router ${(routerCpu / n).toFixed(1)} µs (router rounds), sim server ${(serverCpu / n).toFixed(1)} µs (direct rounds)`,
  );
} finally {
  await killAll([server, router]);
}
