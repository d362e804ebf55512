/**
 * Router overhead: added p50 latency of going through `llmd router` vs calling a
 * zero-latency sim server directly, measured in the same run, at concurrency 32.
 * Target (issue: foundation): ≤ 1 ms added at p50.
 *
 *   node --import tsx bench/router-overhead.ts [--requests 4000] [--concurrency 32]
 */
import { Pool } from "undici";
import { freePort, killAll, llmd, percentile, waitReady } from "./lib.js";

const arg = (name: string, def: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};
const REQUESTS = arg("requests", 4000);
const CONCURRENCY = arg("concurrency", 32);
const MODEL = "llmd/sim-8b";

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
  for (let i = 0; i < rounds; i++) {
    d.push(...(await load(direct)));
    r.push(...(await load(routed)));
  }
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
} finally {
  await killAll([server, router]);
}
