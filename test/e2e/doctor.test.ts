/**
 * `llmd doctor` against real stacks (router + sim servers on 127.0.0.1, time-scaled): passes
 * (exit 0) on a healthy P/D stack after traffic, and fails (exit 1, the failing check's id and
 * evidence in `--json`) on each broken stack: prefill server down, decider disabled (only
 * decode-only decisions), mismatched KV layouts (prefill with fp8 KV), side-channel host 0.0.0.0.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { CLI, freePort, type LlmdChild, runLlmd } from "./helpers.js";
import { complete, longPrompt, waitHealthy } from "./pd-helpers.js";

const PD_YAML = join(import.meta.dirname, "..", "..", "config", "pd.yaml");

interface Check {
  id: string;
  status: string;
  evidence: string;
}

/** Runs `llmd doctor --url <url> --json`; resolves with its exit code and checks. */
function doctor(url: string): Promise<{ code: number; checks: Check[] }> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ["--import", "tsx", CLI, "doctor", "--url", url, "--json"],
      { env: { ...process.env, LLMD_LOG_LEVEL: "warn" }, timeout: 60_000 },
      (err, stdout) => {
        const code = err ? ((err as { code?: number }).code ?? -1) : 0;
        try {
          const j = JSON.parse(stdout) as { checks: Check[] };
          resolve({ code: typeof code === "number" ? code : -1, checks: j.checks });
        } catch (e) {
          reject(new Error(`doctor output is not JSON (${(e as Error).message}): ${stdout}`));
        }
      },
    );
  });
}

const check = (checks: Check[], id: string): Check => {
  const c = checks.find((x) => x.id === id);
  assert.ok(c, `check ${id} present in ${JSON.stringify(checks.map((x) => x.id))}`);
  return c;
};

interface Stack {
  url: string;
  prefill: LlmdChild;
  decode: LlmdChild;
  router: LlmdChild;
  stop(): Promise<void>;
}

/** Starts one prefill server, one decode server and a router with a P/D config. */
async function startStack(
  o: { prefillArgs?: string[]; eppConfig?: string; timeScale?: number } = {},
): Promise<Stack> {
  const [pPort, dPort, rPort] = [await freePort(), await freePort(), await freePort()];
  const common = [
    "--mode",
    "echo",
    "--time-scale",
    String(o.timeScale ?? 20),
    "--block-size",
    "16",
    "--kv-cache-size",
    "512",
  ];
  const prefill = runLlmd(["serve", "--port", String(pPort), ...common, ...(o.prefillArgs ?? [])]);
  const decode = runLlmd(["serve", "--port", String(dPort), ...common]);
  const router = runLlmd([
    "router",
    "--port",
    String(rPort),
    "--epp-config",
    o.eppConfig ?? PD_YAML,
    "--endpoint",
    `127.0.0.1:${pPort},llm-d.ai/role=prefill`,
    "--endpoint",
    `127.0.0.1:${dPort},llm-d.ai/role=decode`,
  ]);
  const stop = async () => {
    await Promise.all([router.stop(), prefill.stop(), decode.stop()]);
  };
  const url = `http://127.0.0.1:${rPort}`;
  try {
    await Promise.all([
      waitHealthy(`http://127.0.0.1:${pPort}`, prefill),
      waitHealthy(`http://127.0.0.1:${dPort}`, decode),
      waitHealthy(url, router),
    ]);
    await waitReady(url, 2);
  } catch (e) {
    await stop();
    throw e;
  }
  return { url, prefill, decode, router, stop };
}

/** Waits until the router reports `n` ready endpoints (bounded). */
async function waitReady(url: string, n: number): Promise<void> {
  for (let i = 0; i < 300; i++) {
    const r = (await (await fetch(`${url}/llmd/endpoints`)).json()) as { endpoints: { ready: boolean }[] };
    if (r.endpoints.filter((e) => e.ready).length === n) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`router ${url}: never ${n} ready endpoints`);
}

/** Long and short prompts through the router; returns the statuses. */
async function traffic(url: string, tag: string, n = 3): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    out.push((await complete(url, longPrompt(`${tag}${i}`))).status);
    out.push((await complete(url, `a short question ${tag} ${i}`)).status);
  }
  return out;
}

describe("llmd doctor on real stacks", () => {
  const stacks: Stack[] = [];
  after(async () => {
    for (const s of stacks) await s.stop();
  });

  it("passes on a healthy P/D stack after traffic, then fails prefill-endpoints when the prefill server is down", async () => {
    // time-scale 5: simulated prefill times dominate process noise in the TTFT comparison
    const s = await startStack({ timeScale: 5 });
    stacks.push(s);
    assert.deepEqual(await traffic(s.url, "healthy"), [200, 200, 200, 200, 200, 200]);
    const ok = await doctor(s.url);
    assert.equal(
      ok.code,
      0,
      `doctor failed on a healthy stack: ${JSON.stringify(ok.checks.filter((c) => c.status === "fail"))}`,
    );
    for (const id of [
      "prefill-endpoints",
      "pd-decisions",
      "kv-transfers",
      "ttft-split",
      "kv-layout",
      "side-channel-host",
    ]) {
      assert.equal(check(ok.checks, id).status, "pass", `${id}: ${check(ok.checks, id).evidence}`);
    }
    assert.match(check(ok.checks, "kv-transfers").evidence, /^3 transfers/);

    await s.prefill.stop();
    // the router notices the prefill server is gone (bounded wait)
    await waitReady(s.url, 1);
    const down = await doctor(s.url);
    assert.equal(down.code, 1);
    const pe = check(down.checks, "prefill-endpoints");
    assert.equal(pe.status, "fail");
    assert.match(pe.evidence, /0\/1 prefill endpoints ready/);
  });

  it("fails pd-decisions when the disagg handler has no decider (decode-only only)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "llmd-doctor-"));
    const cfg = join(dir, "pd-no-decider.yaml");
    writeFileSync(
      cfg,
      readFileSync(PD_YAML, "utf8").replace(
        /- type: disagg-profile-handler\n {2}parameters:\n {4}deciders:\n {6}prefill: prefix-based-pd-decider\n/,
        "- type: disagg-profile-handler\n",
      ),
    );
    assert.doesNotMatch(readFileSync(cfg, "utf8"), /deciders:/);
    const s = await startStack({ eppConfig: cfg });
    stacks.push(s);
    assert.deepEqual(await traffic(s.url, "nodecider"), [200, 200, 200, 200, 200, 200]);
    const r = await doctor(s.url);
    assert.equal(r.code, 1);
    const c = check(r.checks, "pd-decisions");
    assert.equal(c.status, "fail");
    assert.match(c.evidence, /^0 prefill-decode, 6 decode-only decisions/);
    await s.stop();
  });

  it("fails kv-layout when the prefill server runs fp8 KV (and the transfers are refused, not garbage)", async () => {
    const s = await startStack({ prefillArgs: ["--kv-cache-dtype", "fp8"] });
    stacks.push(s);
    const statuses = await traffic(s.url, "fp8", 2);
    assert.deepEqual(statuses, [400, 200, 400, 200], "P/D requests refused with 400, short ones served");
    const r = await doctor(s.url);
    assert.equal(r.code, 1);
    const c = check(r.checks, "kv-layout");
    assert.equal(c.status, "fail");
    assert.match(c.evidence, /kv_cache_dtype fp8≠bf16/);
    await s.stop();
  });

  it("fails side-channel-host when a server advertises 0.0.0.0", async () => {
    const s = await startStack({ prefillArgs: ["--side-channel-host", "0.0.0.0"] });
    stacks.push(s);
    await traffic(s.url, "zero", 1);
    const r = await doctor(s.url);
    assert.equal(r.code, 1);
    const c = check(r.checks, "side-channel-host");
    assert.equal(c.status, "fail");
    assert.match(c.evidence, /advertise side_channel_host 0\.0\.0\.0/);
    await s.stop();
  });
});
