/**
 * Precise prefix-cache routing end to end (real processes, real ZMQ on 127.0.0.1):
 * - `llmd up --routing precise --replicas 2`: a repeat of a long prompt goes to the server that
 *   holds it (its `cached_tokens` ≈ the prompt), `GET /llmd/kv-events` shows events from every
 *   server and no gaps, `llmd doctor --json` passes its KV-event checks;
 * - `llmd up --prefill 1 --decode 2 --routing precise`: events from prefill and decode servers
 *   reach the index and the producer reports matches for the server holding the prefix;
 * - broken: a server without `--kv-events-config` that serves traffic → the doctor's
 *   `kv-events-flowing` check fails naming it.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { discoveryFileText } from "../../src/datalayer/discovery-file.js";
import { KV_EVENTS_PORT_LABEL, KV_EVENTS_REPLAY_PORT_LABEL } from "../../src/framework/labels.js";
import { PRECISE_CONFIG_PATH, preciseConfigText, upKvEventsConfig } from "../../src/cli/up.js";
import { CLI, freePort, type LlmdChild, runLlmd } from "./helpers.js";

const MODEL = "llmd/sim-8b";
const TIME_SCALE = ["--server-arg=--time-scale", "--server-arg=20"];
const T = { timeout: 180_000 };
const children: LlmdChild[] = [];
after(async () => {
  for (const c of children.reverse()) await c.stop();
});

interface Feed {
  endpointId: string;
  events: number;
  gaps: number;
  resyncs: number;
  lastSeq: number;
  lookupHits: number;
  matchedBlocks: number;
  models: string[];
}
interface KvView {
  configured: boolean;
  producers: { lookups: number; lookupHits: number; unusableTokenRequests: number; endpoints: Feed[] }[];
}

/** A long prompt of `words` one-token words, unique per `seed`. */
const prompt = (seed: string, words = 800) =>
  Array.from({ length: words }, (_, i) => `${seed}${i}`).join(" ");

async function complete(base: string, p: string): Promise<{ port: string; cached: number; prompt: number }> {
  const r = await fetch(`${base}/v1/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: MODEL, prompt: p, max_tokens: 4 }),
  });
  assert.equal(r.status, 200, await r.clone().text());
  const j = (await r.json()) as {
    usage: { prompt_tokens: number; prompt_tokens_details?: { cached_tokens: number } };
  };
  return {
    port: r.headers.get("x-inference-port") ?? "",
    cached: j.usage.prompt_tokens_details?.cached_tokens ?? 0,
    prompt: j.usage.prompt_tokens,
  };
}

const kvView = async (url: string) => (await (await fetch(`${url}/llmd/kv-events`)).json()) as KvView;
const feedOf = (v: KvView, hostPort: string) =>
  v.producers[0]!.endpoints.find((f) => f.endpointId === hostPort);

/** Polls `/llmd/kv-events` until `pred` holds (bounded: 600 × 25 ms; the machine may be loaded). */
async function untilKv(url: string, pred: (v: KvView) => boolean, what: string): Promise<KvView> {
  let v = await kvView(url);
  for (let i = 0; i < 600 && !pred(v); i++) {
    await new Promise((r) => setTimeout(r, 25));
    v = await kvView(url);
  }
  assert.ok(pred(v), `${what}; /llmd/kv-events: ${JSON.stringify(v)}`);
  return v;
}

/** Runs `llmd doctor --url <url> --json` to completion. */
function doctor(
  url: string,
): Promise<{ code: number | null; checks: { id: string; status: string; evidence: string }[] }> {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, ["--import", "tsx", CLI, "doctor", "--url", url, "--json"], {
      stdio: ["ignore", "pipe", "inherit"],
      env: { ...process.env, LLMD_LOG_LEVEL: "warn" },
    });
    let out = "";
    c.stdout!.on("data", (d) => {
      out += d;
    });
    c.on("error", reject);
    c.on("exit", (code) => {
      try {
        resolve({ code, checks: (JSON.parse(out) as { checks: never[] }).checks });
      } catch (e) {
        reject(new Error(`doctor output not JSON: ${out} (${(e as Error).message})`));
      }
    });
  });
}

async function up(args: string[], servers: number): Promise<{ url: string; hostPorts: string[] }> {
  const port = await freePort();
  const first = await freePort();
  const c = runLlmd([
    "up",
    "--port",
    String(port),
    "--first-server-port",
    String(first),
    "--routing",
    "precise",
    ...args,
    ...TIME_SCALE,
  ]);
  children.push(c);
  const line = await c.waitForLine(/router ready at (http:\/\/\S+) with .* sim servers \(([^)]+)\)/, 90_000);
  const m = /ready at (\S+) with .* sim servers \(([^)]+)\)/.exec(line)!;
  const hostPorts = m[2]!.split(", ");
  assert.equal(hostPorts.length, servers);
  return { url: m[1]!, hostPorts };
}

describe("llmd up --routing precise (aggregated)", () => {
  test(
    "a repeated long prompt goes to the server holding it; events from every server; doctor passes",
    T,
    async () => {
      const { url, hostPorts } = await up(["--replicas", "2"], 2);
      const p = prompt("alpha");
      const first = await complete(url, p);
      assert.equal(first.prompt, 800);
      const holder = `127.0.0.1:${first.port}`;
      assert.ok(hostPorts.includes(holder));
      // the holder's BlockStored events reach the index before the repeat is scheduled
      await untilKv(url, (v) => (feedOf(v, holder)?.events ?? 0) > 0, `no KV events from ${holder}`);
      for (let i = 0; i < 3; i++) {
        const r = await complete(url, p);
        assert.equal(
          `127.0.0.1:${r.port}`,
          holder,
          `repeat ${i} went to ${r.port}, not the holder ${holder}`,
        );
        assert.ok(r.cached >= 800 - 16, `cached_tokens ${r.cached} < ${800 - 16}`);
      }
      // traffic on the other server, straight to it: its events are ingested too
      const other = hostPorts.find((h) => h !== holder)!;
      await complete(`http://${other}`, prompt("beta"));
      const v = await untilKv(url, (x) => (feedOf(x, other)?.events ?? 0) > 0, `no KV events from ${other}`);
      const prod = v.producers[0]!;
      assert.equal(prod.endpoints.length, 2);
      for (const f of prod.endpoints) {
        assert.ok(f.events > 0, `${f.endpointId}: no events`);
        assert.equal(f.gaps, 0, `${f.endpointId}: gaps`);
        assert.equal(f.resyncs, 0, `${f.endpointId}: resyncs`);
        assert.deepEqual(f.models, [MODEL]);
      }
      assert.equal(prod.unusableTokenRequests, 0);
      assert.ok((feedOf(v, holder)?.lookupHits ?? 0) >= 3, "holder matched the 3 repeats");
      assert.ok((feedOf(v, holder)?.matchedBlocks ?? 0) >= 3 * 50);

      const d = await doctor(url);
      const kv = d.checks.filter((c) => c.id.startsWith("kv-events") || c.id === "precise-hits");
      assert.equal(kv.length, 6);
      for (const c of kv) assert.equal(c.status, "pass", `${c.id}: ${c.status} (${c.evidence})`);
      assert.equal(d.code, 0);
    },
  );
});

describe("llmd up --prefill 1 --decode 2 --routing precise", () => {
  test(
    "prefill and decode servers' events reach the index; the holder matches; doctor sees every feed",
    T,
    async () => {
      const { url, hostPorts } = await up(["--prefill", "1", "--decode", "2"], 3);
      const [prefill, ...decodes] = hostPorts as [string, ...string[]];
      const p = prompt("gamma");
      const first = await complete(url, p);
      const holder = `127.0.0.1:${first.port}`;
      assert.ok(decodes.includes(holder), `${holder} is not a decode server`);
      // the prefill leg's blocks (prefill server) and the pulled blocks (decode server) are announced
      await untilKv(
        url,
        (v) => (feedOf(v, holder)?.events ?? 0) > 0 && (feedOf(v, prefill)?.events ?? 0) > 0,
        "no KV events from the prefill or the decode server",
      );
      const again = await complete(url, p);
      assert.equal(`127.0.0.1:${again.port}`, holder);
      assert.ok(again.cached >= 800 - 16, `cached_tokens ${again.cached}`);
      const other = decodes.find((h) => h !== holder)!;
      await complete(`http://${other}`, prompt("delta", 100));
      const v = await untilKv(url, (x) => (feedOf(x, other)?.events ?? 0) > 0, `no KV events from ${other}`);
      for (const hp of hostPorts) {
        const f = feedOf(v, hp)!;
        assert.ok(f.events > 0, `${hp}: no events`);
        assert.equal(f.gaps, 0);
      }
      assert.ok(feedOf(v, holder)!.lookupHits >= 1, "decode holder never matched");
    // the prefill server's blocks (from the prefill leg) are in the same index and scored too
    assert.ok(feedOf(v, prefill)!.lookupHits >= 1, "prefill server never matched");
      assert.ok(feedOf(v, holder)!.matchedBlocks >= 49);
      const d = await doctor(url);
      const flowing = d.checks.find((c) => c.id === "kv-events-flowing")!;
      assert.equal(flowing.status, "pass", flowing.evidence);
      assert.equal(flowing.evidence.match(/ events \(last seq \d+\)/g)?.length, 3, flowing.evidence);
      assert.equal(d.checks.find((c) => c.id === "precise-hits")!.status, "pass");
    },
  );
});

describe("doctor: a server without --kv-events-config", () => {
  test("serving traffic with no KV events → kv-events-flowing fails naming it", T, async () => {
    const dir = mkdtempSync(join(tmpdir(), "llmd-precise-"));
    const [okPort, badPort, zPub, zReplay, zBad, routerPort] = await Promise.all(
      Array.from({ length: 6 }, () => freePort()),
    );
    const serve = (port: number, extra: string[]) => {
      const c = runLlmd([
        "serve",
        "--port",
        String(port),
        "--time-scale",
        "20",
        "--pod-name",
        `p${port}`,
        ...extra,
      ]);
      children.push(c);
      return c;
    };
    serve(okPort!, ["--kv-events-config", upKvEventsConfig("127.0.0.1", okPort!, zPub!, zReplay!, MODEL)]);
    serve(badPort!, []);
    for (const port of [okPort, badPort]) {
      let ok = false;
      for (let i = 0; i < 400 && !ok; i++) {
        ok = await fetch(`http://127.0.0.1:${port}/health`).then(
          (r) => r.ok,
          () => false,
        );
        if (!ok) await new Promise((res) => setTimeout(res, 50));
      }
      assert.ok(ok, `server ${port} not healthy`);
    }
    const discovery = join(dir, "endpoints.json");
    writeFileSync(
      discovery,
      discoveryFileText([
        {
          name: "good",
          address: "127.0.0.1",
          port: okPort!,
          labels: { [KV_EVENTS_PORT_LABEL]: String(zPub), [KV_EVENTS_REPLAY_PORT_LABEL]: String(zReplay) },
        },
        {
          name: "silent",
          address: "127.0.0.1",
          port: badPort!,
          labels: { [KV_EVENTS_PORT_LABEL]: String(zBad) },
        },
      ]),
    );
    const cfg = join(dir, "precise.yaml");
    writeFileSync(cfg, preciseConfigText(PRECISE_CONFIG_PATH, `http://127.0.0.1:${okPort}`));
    const router = runLlmd([
      "router",
      "--port",
      String(routerPort),
      "--discovery-file",
      discovery,
      "--epp-config",
      cfg,
    ]);
    children.push(router);
    const url = `http://127.0.0.1:${routerPort}`;
    let ready = 0;
    for (let i = 0; i < 200 && ready < 2; i++) {
      const r = await fetch(`${url}/llmd/endpoints`).then(
        (x) => x.json() as Promise<{ endpoints: { ready: boolean }[] }>,
        () => null,
      );
      ready = r ? r.endpoints.filter((e) => e.ready).length : 0;
      if (ready === 2) break;
      await new Promise((res) => setTimeout(res, 50));
    }
    assert.equal(ready, 2, "router pool not ready");
    // traffic on both servers (straight to each, so both surely serve)
    await complete(`http://127.0.0.1:${okPort}`, prompt("eps", 200));
    await complete(`http://127.0.0.1:${badPort}`, prompt("zeta", 200));
    await complete(url, prompt("eta", 200));
    await untilKv(
      url,
      (v) => (feedOf(v, `127.0.0.1:${okPort}`)?.events ?? 0) > 0,
      "no events from the good server",
    );
    const d = await doctor(url);
    assert.equal(d.code, 1);
    const flowing = d.checks.find((c) => c.id === "kv-events-flowing")!;
    assert.equal(flowing.status, "fail");
    assert.match(
      flowing.evidence,
      new RegExp(`silent \\(127\\.0\\.0\\.1:${badPort}\\): \\d+ requests served, 0 KV events received`),
    );
    assert.doesNotMatch(flowing.evidence, /good \(/);
  });
});
