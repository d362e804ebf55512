/**
 * Chaos through the real router: three sim servers with failure injection (10 % of requests
 * answered 503 `server_error`, 10 % of streams cut after their first chunk), steady load
 * from an in-test client (bounded concurrency, streamed and non-streamed requests), one server
 * SIGKILLed while a stream is running on it, then restarted on the same port.
 *
 * Invariants (counts, not timings): every request ends as a success or a clear error — an
 * HTTP error with the OpenAI shape, or a stream that ends with a `data: {"error":…}` event and
 * `[DONE]` — and none ends without a response or with a silently truncated body; requests
 * refused before the first byte are retried on another server and succeed there (the router's
 * retry log lines, matched by `x-request-id`); every non-streamed failure the client sees is a
 * last-candidate answer; the pool recovers: the restarted server is listed ready by
 * `GET /llmd/endpoints` and serves requests again.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { Pool } from "undici";
import * as H from "../../src/framework/headers.js";
import { freePort, type LlmdChild, runLlmd } from "./helpers.js";
import { fakeUpstream, runBounded, waitEndpoints } from "./router-helpers.js";

const MODEL = "llmd/sim-8b";
const SERVER_ARGS = [
  "--time-scale",
  "5",
  "--failure-injection-rate",
  "10",
  "--failure-types",
  "server_error",
  "--failure-mid-stream-rate",
  "10",
];
const PHASE1 = 160;
const PHASE2 = 100;
const KILL_AFTER = 50;
const CONCURRENCY = 8;
/** extra rounds of 2 × CONCURRENCY requests while waiting for a stream on server 0 */
const EXTRA_ROUNDS = 20;

let ports: number[] = [];
const servers: (LlmdChild | undefined)[] = [];
let router: LlmdChild;
let url: string;
let pool: Pool;

const startServer = (port: number) =>
  runLlmd(["serve", "--port", String(port), "--model", MODEL, ...SERVER_ARGS]);

before(async () => {
  ports = [await freePort(), await freePort(), await freePort()];
  for (const p of ports) servers.push(startServer(p));
  const rport = await freePort();
  router = runLlmd([
    "router",
    "--port",
    String(rport),
    ...ports.flatMap((p) => ["--endpoint", `127.0.0.1:${p}`]),
    "--refresh-metrics-interval",
    "50",
  ]);
  url = `http://127.0.0.1:${rport}`;
  await waitEndpoints(url, (eps) => eps.length === 3 && eps.every((e) => e.ready), 60_000);
  pool = new Pool(url, { connections: CONCURRENCY, keepAliveTimeout: 30_000 });
});

after(async () => {
  await pool?.close();
  await router?.stop();
  await Promise.all(servers.map((s) => s?.stop()));
});

type Kind = "ok" | "http-error" | "stream-error-event" | "silent";
interface Result {
  id: string;
  stream: boolean;
  kind: Kind;
  status: number;
  served: string;
  detail: string;
}

interface KillState {
  armed: boolean;
  /** request id of the stream running on the killed server when it was killed */
  victim?: string;
  killed?: Promise<unknown>;
}

async function one(i: number, phase: string, kill: KillState): Promise<Result> {
  const id = `chaos-${phase}-${i}`;
  const stream = i % 2 === 0;
  const chat = i % 3 !== 0;
  const shared = phase === "p1" && i % 4 !== 0;
  const text = shared
    ? `shared system prompt ${i % 5} ${"lorem ipsum ".repeat(30)}`
    : `unique ${id} ${Math.random()}`;
  const body = chat
    ? { model: MODEL, messages: [{ role: "user", content: text }], max_tokens: 24, stream }
    : { model: MODEL, prompt: text, max_tokens: 24, stream };
  const res: Result = { id, stream, kind: "silent", status: 0, served: "", detail: "" };
  try {
    const r = await pool.request({
      method: "POST",
      path: chat ? "/v1/chat/completions" : "/v1/completions",
      headers: { "content-type": "application/json", [H.REQUEST_ID]: id },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(30_000),
    });
    res.status = r.statusCode;
    res.served = String(r.headers[H.DESTINATION_ENDPOINT_SERVED] ?? "");
    let t = "";
    for await (const c of r.body) {
      t += (c as Buffer).toString("utf8");
      if (
        kill.armed &&
        stream &&
        r.statusCode === 200 &&
        res.served === `127.0.0.1:${ports[0]}` &&
        t.includes("data: {")
      ) {
        // a stream is running on server 0: kill it now, mid-stream
        kill.armed = false;
        kill.victim = id;
        servers[0]!.child.kill("SIGKILL");
        kill.killed = servers[0]!.stop();
      }
    }
    res.detail = t.slice(-300);
    if (r.statusCode !== 200) {
      const e = (JSON.parse(t) as { error?: { message?: unknown; type?: unknown } }).error;
      res.kind = typeof e?.message === "string" && typeof e?.type === "string" ? "http-error" : "silent";
      return res;
    }
    if (!stream) {
      const j = JSON.parse(t) as { choices?: unknown[] };
      res.kind = Array.isArray(j.choices) && j.choices.length === 1 ? "ok" : "silent";
      return res;
    }
    if (!t.trimEnd().endsWith("data: [DONE]")) res.kind = "silent";
    else if (/(^|\n)data: \{"error":/.test(t)) res.kind = "stream-error-event";
    else res.kind = t.includes('"finish_reason":"') ? "ok" : "silent";
  } catch (e) {
    res.detail = `${(e as { code?: string }).code ?? ""} ${(e as Error).message}`;
  }
  return res;
}

interface LogLine {
  msg?: string;
  requestId?: string;
  attempt?: number;
  of?: number;
}
const routerLogs = (): LogLine[] =>
  router.lines.flatMap((l) => {
    try {
      return [JSON.parse(l) as LogLine];
    } catch {
      return [];
    }
  });

test("chaos: kill + restart + 10 % injected failures: every request ends clearly, retries succeed, the pool recovers", async (t) => {
  const kill: KillState = { armed: false };
  const t0 = performance.now();
  const at = () => `${((performance.now() - t0) / 1000).toFixed(1)} s`;
  const p1 = await runBounded(PHASE1, CONCURRENCY, (i) => {
    if (i === KILL_AFTER) kill.armed = true;
    return one(i, "p1", kill);
  });
  // The scheduler decides where streams go: if none ran on server 0 after the kill was armed,
  // keep sending (bounded) until one does, so the mid-stream kill always happens.
  for (let round = 0; !kill.victim && round < EXTRA_ROUNDS; round++) {
    const base = PHASE1 + round * CONCURRENCY * 2;
    p1.push(...(await runBounded(CONCURRENCY * 2, CONCURRENCY, (i) => one(base + i, "p1", kill))));
  }
  assert.ok(kill.victim, "a stream ran on server 0 after the kill was armed");
  await kill.killed;
  t.diagnostic(`phase 1 done at ${at()}`);
  // restart on the same port, with the same failure injection
  servers[0] = startServer(ports[0]!);
  await waitEndpoints(url, (eps) => eps.find((e) => e.port === ports[0])?.ready === true, 45_000);
  t.diagnostic(`restarted server ready at ${at()}`);
  const p2 = await runBounded(PHASE2, CONCURRENCY, (i) => one(i, "p2", kill));
  const all = [...p1, ...p2];
  t.diagnostic(`phase 2 done at ${at()}`);

  const count = (k: Kind, rs = all) => rs.filter((r) => r.kind === k).length;
  const summary = {
    requests: all.length,
    ok: count("ok"),
    httpErrors: count("http-error"),
    streamErrorEvents: count("stream-error-event"),
    silent: count("silent"),
  };
  t.diagnostic(JSON.stringify(summary));

  // 1. every request got a response: a success or a clear error, never a silent failure
  const silent = all.filter((r) => r.kind === "silent");
  assert.deepEqual(
    silent.map((r) => `${r.id} ${r.status} ${r.detail}`),
    [],
    "requests without a response or silently truncated",
  );
  assert.equal(summary.ok + summary.httpErrors + summary.streamErrorEvents, all.length);

  // 2. the stream running on the killed server ended with an error event
  const victim = all.find((r) => r.id === kill.victim)!;
  assert.equal(victim.kind, "stream-error-event", `${victim.id}: ${victim.detail}`);
  // and the injected mid-stream cuts showed up as error events too (10 % of ~175 streams)
  assert.ok(summary.streamErrorEvents >= 2, JSON.stringify(summary));

  // 3. retries: requests refused before the first byte were tried again and succeeded
  const logs = routerLogs();
  const retried = new Set(
    logs.filter((l) => l.msg?.includes("trying the next candidate")).map((l) => l.requestId),
  );
  const lastCandidate = new Map(
    logs.filter((l) => l.msg?.includes("on the last candidate")).map((l) => [l.requestId, l] as const),
  );
  const retriedOk = all.filter((r) => retried.has(r.id) && r.kind === "ok");
  t.diagnostic(
    `retried ${retried.size}, of which ok ${retriedOk.length}; last-candidate answers ${lastCandidate.size}`,
  );
  assert.ok(
    retriedOk.filter((r) => !r.stream).length >= 3,
    `non-streamed retries that succeeded: ${retriedOk.length}`,
  );
  // every non-streamed failure the client saw was the last candidate's answer (or none could serve)
  for (const r of all.filter((x) => !x.stream && x.kind === "http-error")) {
    const l = lastCandidate.get(r.id);
    const noneServed = r.detail.includes("upstream_unavailable");
    assert.ok(
      (l !== undefined && l.attempt === l.of) || noneServed,
      `${r.id} failed with ${r.status} without exhausting its candidates: ${r.detail}`,
    );
  }
  // with three servers the injected 503s are mostly absorbed by retries
  assert.ok(summary.ok >= 0.8 * all.length, JSON.stringify(summary));

  // 4. recovery: the restarted server is ready and serves again
  const s0 = `127.0.0.1:${ports[0]}`;
  // (passive outlier ejection may have taken a server out for a few seconds after three
  // injected failures in a row; ejections expire by themselves)
  await waitEndpoints(url, (e) => e.find((x) => x.port === ports[0])?.ready === true, 30_000);
  const servedByS0 = p2.filter((r) => r.served === s0 && r.kind !== "silent").length;
  t.diagnostic(`phase 2 served by the restarted server: ${servedByS0} of ${p2.length}`);
  assert.ok(servedByS0 > 0, "the restarted server got requests again");
});

test("a non-streamed answer cut between its headers and its body is retried on another server", async (t) => {
  // the broken server is idle (preferred by queue-scorer); the healthy one reports a queue
  const broken = await fakeUpstream("m", { dieAfterHeaders: true });
  const healthy = await fakeUpstream("m", { waiting: 3 });
  const port = await freePort();
  const r = runLlmd([
    "router",
    "--port",
    String(port),
    "--endpoint",
    broken.hostPort,
    "--endpoint",
    healthy.hostPort,
  ]);
  try {
    const base = `http://127.0.0.1:${port}`;
    await waitEndpoints(base, (eps) => eps.length === 2 && eps.every((e) => e.ready));
    const results = await runBounded(20, 2, async (i) => {
      const res = await fetch(`${base}/v1/completions`, {
        method: "POST",
        headers: { "content-type": "application/json", [H.REQUEST_ID]: `cut-${i}` },
        body: JSON.stringify({ model: "m", prompt: `p${i}` }),
      });
      return {
        status: res.status,
        served: res.headers.get(H.DESTINATION_ENDPOINT_SERVED),
        body: await res.text(),
      };
    });
    t.diagnostic(`broken server saw ${broken.seen.length} requests, healthy ${healthy.seen.length}`);
    assert.ok(broken.seen.length >= 1, "the broken server was tried first");
    for (const x of results) {
      assert.equal(x.status, 200, x.body);
      assert.equal(x.served, healthy.hostPort);
      assert.equal((JSON.parse(x.body) as { choices: { text: string }[] }).choices[0]!.text, "ok");
    }
    const retried = r.lines.filter((l) => l.includes("before its first body byte")).length;
    assert.equal(retried, broken.seen.length, "every cut answer was retried");
  } finally {
    await r.stop();
    await broken.close();
    await healthy.close();
  }
});
