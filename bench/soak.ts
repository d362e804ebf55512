/**
 * Soak: `llmd up` (default 4 sim servers) under a steady mixed load for a long time, sampling
 * the resident memory of the router and of every server, to catch leaks and lost requests.
 *
 * Load (open loop, `--rate` requests/s): chat and text completions, streamed or not, with a
 * shared-prefix prompt (one of 8 long system prompts) or a unique one, and a share of client
 * aborts (after the first streamed bytes or after a random delay). Every request ends as
 * `completed` (200 and a whole body: `[DONE]` for streams), `errors` (by kind) or `aborted`
 * (by us); `lost` = sent − all of those after the end-of-run drain, and must be 0.
 *
 * RSS: `VmRSS` of `/proc/<pid>/status` for the router and each server (children of the
 * `llmd up` process, told apart by their command line), every `--sample-s` seconds. Printed:
 * the figures after warm-up (`--warmup-s`) and at the end, growth % (target < 10 %), both as
 * single samples and as medians of the 60 s windows after warm-up and before the end (one
 * sample can land anywhere in a GC cycle).
 *
 * Usage: `node --import tsx bench/soak.ts [--duration-s 600] [--warmup-s 120] [--rate 20]
 *   [--replicas 4] [--sample-s 10]`. Linux only (reads /proc).
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { Agent, request } from "undici";
import { freePort, killAll, llmd, waitReady } from "./lib.js";

const { values: a } = parseArgs({
  options: {
    "duration-s": { type: "string", default: "600" },
    "warmup-s": { type: "string", default: "120" },
    rate: { type: "string", default: "20" },
    replicas: { type: "string", default: "4" },
    "sample-s": { type: "string", default: "10" },
  },
});
const durationS = Number(a["duration-s"]);
const warmupS = Number(a["warmup-s"]);
const rate = Number(a.rate);
const replicas = Number(a.replicas);
const sampleS = Number(a["sample-s"]);
const MODEL = "llmd/sim-8b";

/** Resident set size of `pid` in KiB, or NaN when the process is gone. */
function rssKiB(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

/** Direct children of `pid` (Linux `/proc/<pid>/task/<tid>/children`). */
function childrenOf(pid: number): number[] {
  try {
    const out: number[] = [];
    for (const tid of readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/))
      if (tid) out.push(Number(tid));
    return out;
  } catch {
    return [];
  }
}

const cmdline = (pid: number) => {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
  } catch {
    return [];
  }
};

const routerPort = await freePort();
const firstServerPort = 20000 + Math.floor(Math.random() * 20000);
const up = llmd([
  "up",
  "--port",
  String(routerPort),
  "--replicas",
  String(replicas),
  "--first-server-port",
  String(firstServerPort),
]);
const url = `http://127.0.0.1:${routerPort}`;
const stopAll = async () => {
  await killAll([up]);
};
process.on("SIGINT", () => void stopAll().then(() => process.exit(130)));

await waitReady(
  `${url}/llmd/endpoints`,
  (b) =>
    (JSON.parse(b) as { endpoints: { ready: boolean }[] }).endpoints.filter((e) => e.ready).length ===
    replicas,
  120_000,
);
const kids = childrenOf(up.pid!);
const routerPid = kids.find((p) => cmdline(p).includes("router"));
const serverPids = kids.filter((p) => cmdline(p).includes("serve"));
if (routerPid === undefined || serverPids.length !== replicas) {
  await stopAll();
  throw new Error(`could not find the router and ${replicas} servers among ${kids.join(",")}`);
}
console.log(
  `soak: router pid ${routerPid}, servers ${serverPids.join(",")}; ${durationS}s at ${rate} req/s, warm-up ${warmupS}s`,
);

const SYSTEMS = Array.from(
  { length: 8 },
  (_, i) => `You are assistant number ${i}. ${"Follow the house style guide carefully. ".repeat(40)}`,
);
const dispatcher = new Agent({ connections: 256, keepAliveTimeout: 10_000 });
const counts = { sent: 0, completed: 0, aborted: 0, errors: 0 };
const errorKinds = new Map<string, number>();
const err = (k: string) => {
  counts.errors++;
  errorKinds.set(k, (errorKinds.get(k) ?? 0) + 1);
};
let seq = 0;

/** One request of the mix; resolves when it has ended one way or another (never rejects). */
async function one(): Promise<void> {
  const n = seq++;
  const chat = n % 2 === 0;
  const stream = n % 3 !== 0;
  const shared = n % 4 !== 3;
  const abortMode = n % 17 === 5 ? "first-byte" : n % 23 === 7 ? "delay" : "none";
  const user = `question ${n}: ${"tell me something new ".repeat(1 + (n % 5))}`;
  const prompt = shared ? `${SYSTEMS[n % SYSTEMS.length]}\n${user}` : `${n} ${Math.random()} ${user}`;
  const body: Record<string, unknown> = chat
    ? {
        model: MODEL,
        messages: [
          { role: "system", content: prompt },
          { role: "user", content: user },
        ],
      }
    : { model: MODEL, prompt };
  body.max_tokens = 8 + (n % 25);
  if (stream) body.stream = true;
  const ac = new AbortController();
  let abortedByUs = false;
  if (abortMode === "delay")
    setTimeout(
      () => {
        abortedByUs = true;
        ac.abort();
      },
      20 + (n % 200),
    );
  counts.sent++;
  try {
    const r = await request(`${url}${chat ? "/v1/chat/completions" : "/v1/completions"}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
      signal: ac.signal,
      dispatcher,
    });
    if (r.statusCode !== 200) {
      await r.body.dump();
      err(`http-${r.statusCode}`);
      return;
    }
    let text = "";
    for await (const c of r.body) {
      text += (c as Buffer).toString("utf8");
      if (abortMode === "first-byte" && stream) {
        abortedByUs = true;
        ac.abort();
      }
    }
    if (stream) {
      if (!text.trimEnd().endsWith("data: [DONE]")) err("stream-truncated");
      else if (text.includes('data: {"error"')) err("stream-error-event");
      else counts.completed++;
    } else {
      JSON.parse(text);
      counts.completed++;
    }
  } catch (e) {
    if (abortedByUs) counts.aborted++;
    else err(`exception-${(e as { code?: string }).code ?? (e as Error).name}`);
  }
}

interface Sample {
  t: number;
  router: number;
  servers: number[];
}
const samples: Sample[] = [];
const sample = (t: number) => {
  const s = { t, router: rssKiB(routerPid), servers: serverPids.map(rssKiB) };
  samples.push(s);
  const mib = (k: number) => (k / 1024).toFixed(1);
  console.log(
    `t=${t}s rss router ${mib(s.router)} MiB, servers ${s.servers.map(mib).join("/")} MiB; sent ${counts.sent} completed ${counts.completed} aborted ${counts.aborted} errors ${counts.errors}`,
  );
};

const t0 = Date.now();
const inflight = new Set<Promise<void>>();
sample(0);
let nextSample = sampleS;
const intervalMs = 1000 / rate;
let next = Date.now();
while (Date.now() - t0 < durationS * 1000) {
  const p = one();
  inflight.add(p);
  void p.finally(() => inflight.delete(p));
  next += intervalMs;
  const el = (Date.now() - t0) / 1000;
  if (el >= nextSample) {
    sample(Math.round(el));
    nextSample += sampleS;
  }
  const wait = next - Date.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
}
// drain: every request must end (bounded)
const drainDeadline = Date.now() + 60_000;
while (inflight.size > 0 && Date.now() < drainDeadline)
  await Promise.race([...inflight, new Promise((r) => setTimeout(r, 1000))]);
sample(Math.round((Date.now() - t0) / 1000));

const total = (s: Sample) => s.router + s.servers.reduce((x, y) => x + y, 0);
const warm = samples.find((s) => s.t >= warmupS) ?? samples[0]!;
const end = samples.at(-1)!;
const pct = (x: number, y: number) => (((y - x) / x) * 100).toFixed(1);
const lost = counts.sent - counts.completed - counts.errors - counts.aborted;
console.log("---- soak result");
console.log(
  `requests: sent ${counts.sent}, completed ${counts.completed}, aborted by client ${counts.aborted}, errors ${counts.errors} ${JSON.stringify(Object.fromEntries(errorKinds))}, lost ${lost} (still in flight after drain: ${inflight.size})`,
);
console.log(
  `router RSS: ${(warm.router / 1024).toFixed(1)} MiB at t=${warm.t}s → ${(end.router / 1024).toFixed(1)} MiB at t=${end.t}s (growth ${pct(warm.router, end.router)} %)`,
);
serverPids.forEach((_, i) => {
  console.log(
    `server ${i} RSS: ${(warm.servers[i]! / 1024).toFixed(1)} → ${(end.servers[i]! / 1024).toFixed(1)} MiB (growth ${pct(warm.servers[i]!, end.servers[i]!)} %)`,
  );
});
console.log(
  `total RSS: ${(total(warm) / 1024).toFixed(1)} → ${(total(end) / 1024).toFixed(1)} MiB (growth ${pct(total(warm), total(end))} %); target < 10 %`,
);
// single samples land anywhere in a GC cycle: also compare medians of 60 s windows
const median = (xs: number[]) => {
  const s = [...xs].sort((x, y) => x - y);
  return s[Math.floor(s.length / 2)] ?? Number.NaN;
};
const warmWin = samples.filter((s) => s.t >= warmupS && s.t < warmupS + 60);
const endWin = samples.filter((s) => s.t > end.t - 60);
const mRouter = [median(warmWin.map((s) => s.router)), median(endWin.map((s) => s.router))] as const;
const mTotal = [median(warmWin.map(total)), median(endWin.map(total))] as const;
console.log(
  `median of 60 s windows: router ${(mRouter[0] / 1024).toFixed(1)} → ${(mRouter[1] / 1024).toFixed(1)} MiB (growth ${pct(mRouter[0], mRouter[1])} %), total ${(mTotal[0] / 1024).toFixed(1)} → ${(mTotal[1] / 1024).toFixed(1)} MiB (growth ${pct(mTotal[0], mTotal[1])} %)`,
);
await dispatcher.close();
await stopAll();
process.exit(lost === 0 ? 0 : 1);
