/**
 * P/D between two in-process sim model servers over the real HTTP side channel: the prefill
 * server holds the KV and answers kv_transfer_params; the decode server checks the layout,
 * pulls, simulates the transfer, releases; metrics, lease expiry, layout mismatch, failure
 * policies and failure injection.
 */
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import type { KvTransferParams } from "../api/openai.js";
import { SimEngine, type SimEngineOptions } from "./engines/sim/engine.js";
import { kvBytesPerToken } from "./kv-transfer.js";
import { type RunningModelServer, startModelServer } from "./server.js";

const post = (url: string, b: unknown, headers: Record<string, string> = {}) =>
  fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(b),
  });

/** Sum of the samples of `name` (exact series name, any labels). */
function metric(text: string, name: string): number {
  let s = 0;
  for (const l of text.split("\n")) {
    if (l.startsWith(`${name}{`) || l.startsWith(`${name} `)) s += Number(l.split(" ").pop());
  }
  return s;
}

const PREFILL_KV = {
  do_remote_decode: true,
  do_remote_prefill: false,
  remote_engine_id: null,
  remote_block_ids: null,
  remote_host: null,
  remote_port: null,
};

// 100 words → the sim tokenizer gives one token per word piece; block size 16
const PROMPT = Array.from({ length: 100 }, (_, i) => `word${i % 37}`).join(" ");

async function until(cond: () => boolean | Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.fail(`timed out waiting for ${what}`);
}

describe("P/D between two sim servers", () => {
  const servers: RunningModelServer[] = [];
  const start = async (o: Partial<SimEngineOptions>, extra: Parameters<typeof startModelServer>[0] = {}) => {
    const engine = new SimEngine({ model: "m", mode: "echo", timeScale: 1000, historySize: 50, ...o });
    const s = await startModelServer({ engine, ...extra });
    servers.push(s);
    return { s, engine };
  };
  after(async () => {
    for (const s of servers) await s.close();
  });

  it("prefill holds the KV, decode pulls it (no prefill compute), releases, and answers as aggregated", async () => {
    const { s: p, engine: pe } = await start({});
    const { s: d, engine: de } = await start({});
    const { s: agg } = await start({});
    const body = { model: "m", prompt: PROMPT, max_tokens: 5 };
    const pr = await post(`${p.url}/v1/completions`, {
      ...body,
      kv_transfer_params: PREFILL_KV,
      max_tokens: 1,
      min_tokens: 1,
    });
    assert.equal(pr.status, 200);
    const pj = (await pr.json()) as {
      kv_transfer_params: KvTransferParams;
      usage: { prompt_tokens: number };
    };
    const kv = pj.kv_transfer_params;
    const n = pj.usage.prompt_tokens;
    const full = Math.floor(n / 16);
    assert.equal(kv.do_remote_prefill, true);
    assert.equal(kv.do_remote_decode, false);
    assert.equal(kv.remote_engine_id, pe.engineId);
    assert.equal(kv.remote_host, "127.0.0.1");
    assert.equal(kv.remote_port, p.port);
    assert.equal(kv.tp_size, 1);
    assert.equal(typeof kv.remote_request_id, "string");
    assert.equal((kv.remote_block_ids as number[]).length, full, "full prompt blocks only");
    assert.equal(pe.pd.heldCount, 1, "blocks held for the decode side");
    assert.ok(pe.stats().kvCacheUsage > 0, "held blocks count in kv_cache_usage_perc");
    const pm = await (await fetch(`${p.url}/metrics`)).text();
    assert.ok(metric(pm, "vllm:kv_cache_usage_perc") > 0);

    const layout = (await (await fetch(`${p.url}/llmd/kv/layout`)).json()) as Record<string, unknown>;
    assert.equal(layout.bytes_per_token, kvBytesPerToken(32, 8, 128, "bf16"));
    assert.equal(layout.bytes_per_token, 131072);
    assert.equal(layout.side_channel_port, p.port);

    const dr = await post(`${d.url}/v1/completions`, { ...body, kv_transfer_params: kv });
    assert.equal(dr.status, 200);
    const dj = (await dr.json()) as { choices: { text: string }[] };
    const ar = (await (await post(`${agg.url}/v1/completions`, body)).json()) as {
      choices: { text: string }[];
    };
    assert.equal(dj.choices[0]!.text, ar.choices[0]!.text, "P/D text equals aggregated text");

    const rec = de.finished.at(-1)!;
    assert.equal(rec.prefillTokens, n - full * 16, "only the remainder past the last full block is computed");
    await until(() => pe.pd.heldCount === 0, "release");
    assert.equal(pe.stats().kvCacheUsage, 0);
    const dm = await (await fetch(`${d.url}/metrics`)).text();
    assert.equal(metric(dm, "vllm:nixl_xfer_time_seconds_count"), 1);
    assert.equal(metric(dm, "vllm:nixl_post_time_seconds_count"), 1);
    assert.equal(metric(dm, "vllm:nixl_bytes_transferred_sum"), full * 16 * 131072);
    assert.equal(metric(dm, "vllm:nixl_num_descriptors_sum"), 32 * 2 * full);
    assert.equal(metric(dm, "vllm:nixl_num_failed_transfers_total"), 0);
    assert.match(dm, /vllm:nixl_xfer_time_seconds_bucket\{model_name="m",engine="0",le="0.005"\}/);
    // the pull after release is a 404
    assert.equal((await fetch(`${p.url}/llmd/kv/blocks/${kv.remote_request_id}`)).status, 404);
  });

  it("a second decode of the same prompt moves only blocks it does not cache", async () => {
    const { s: p } = await start({});
    const { s: d } = await start({});
    const body = { model: "m", prompt: PROMPT, max_tokens: 2 };
    for (let i = 0; i < 2; i++) {
      const pj = (await (
        await post(`${p.url}/v1/completions`, { ...body, kv_transfer_params: PREFILL_KV, max_tokens: 1 })
      ).json()) as { kv_transfer_params: KvTransferParams };
      assert.equal(
        (await post(`${d.url}/v1/completions`, { ...body, kv_transfer_params: pj.kv_transfer_params }))
          .status,
        200,
      );
    }
    const dm = await (await fetch(`${d.url}/metrics`)).text();
    // the second decode found every pulled block in its prefix cache: nothing moved, no transfer recorded
    assert.equal(metric(dm, "vllm:nixl_xfer_time_seconds_count"), 1);
  });

  it("a KV layout mismatch is refused with 400 naming both layouts, counted, never garbage", async () => {
    const { s: p } = await start({ kvCacheDtype: "fp8" });
    const { s: d } = await start({});
    const body = { model: "m", prompt: PROMPT, max_tokens: 3 };
    const pj = (await (
      await post(`${p.url}/v1/completions`, { ...body, kv_transfer_params: PREFILL_KV, max_tokens: 1 })
    ).json()) as { kv_transfer_params: KvTransferParams };
    for (const stream of [false, true]) {
      const r = await post(`${d.url}/v1/completions`, {
        ...body,
        stream,
        kv_transfer_params: pj.kv_transfer_params,
      });
      assert.equal(r.status, 400);
      const e = (await r.json()) as { error: { message: string } };
      assert.match(e.error.message, /KV layout mismatch/);
      assert.match(e.error.message, /kv_cache_dtype: prefill fp8 ≠ decode bf16/);
      assert.match(e.error.message, /dtype fp8.*dtype bf16/);
    }
    const dm = await (await fetch(`${d.url}/metrics`)).text();
    assert.equal(metric(dm, "vllm:nixl_num_failed_transfers_total"), 2);
    assert.equal(metric(dm, "vllm:nixl_xfer_time_seconds_count"), 0);
  });

  it("held KV expires after the lease (counted) and a pull of it fails: fail → 502, recompute → local prefill", async () => {
    const { s: p, engine: pe } = await start({ kvLeaseMs: 30 });
    const { s: dFail } = await start({});
    const { s: dRe, engine: reE } = await start({ kvLoadFailurePolicy: "recompute" });
    const body = { model: "m", prompt: PROMPT, max_tokens: 3 };
    const pj = (await (
      await post(`${p.url}/v1/completions`, { ...body, kv_transfer_params: PREFILL_KV, max_tokens: 1 })
    ).json()) as { kv_transfer_params: KvTransferParams };
    await until(() => pe.pd.heldCount === 0, "lease expiry");
    assert.equal(pe.stats().kvCacheUsage, 0);
    const pm = await (await fetch(`${p.url}/metrics`)).text();
    assert.equal(metric(pm, "vllm:nixl_num_kv_expired_reqs_total"), 1);
    const f = await post(`${dFail.url}/v1/completions`, {
      ...body,
      kv_transfer_params: pj.kv_transfer_params,
    });
    assert.equal(f.status, 502);
    assert.match(
      ((await f.json()) as { error: { message: string } }).error.message,
      /KV transfer failed.*404/,
    );
    const fm = await (await fetch(`${dFail.url}/metrics`)).text();
    assert.equal(metric(fm, "vllm:nixl_num_failed_transfers_total"), 1);
    const r = await post(`${dRe.url}/v1/completions`, { ...body, kv_transfer_params: pj.kv_transfer_params });
    assert.equal(r.status, 200);
    const rec = reE.finished.at(-1)!;
    assert.equal(rec.prefillTokens, rec.promptTokens, "recomputed locally");
  });

  it("a release the prefill side cannot take is counted as a failed notification; the request still succeeds", async () => {
    const pEngine = new SimEngine({ model: "m", mode: "echo", timeScale: 1000 });
    const p = await startModelServer({ engine: pEngine });
    // a slow link at real time: the transfer takes ≥ 300 ms, the prefill server goes away meanwhile
    const { s: d, engine: de } = await start({ timeScale: 1, kvLinkLatencyMs: 300 });
    const body = { model: "m", prompt: PROMPT, max_tokens: 2 };
    const pj = (await (
      await post(`${p.url}/v1/completions`, { ...body, kv_transfer_params: PREFILL_KV, max_tokens: 1 })
    ).json()) as { kv_transfer_params: KvTransferParams };
    const dr = post(`${d.url}/v1/completions`, { ...body, kv_transfer_params: pj.kv_transfer_params });
    await until(() => de.stats().waiting === 1, "the decode request waiting for its KV");
    await p.close();
    const r = await dr;
    assert.equal(r.status, 200);
    await until(
      async () =>
        metric(await (await fetch(`${d.url}/metrics`)).text(), "vllm:nixl_num_failed_notifications_total") ===
        1,
      "the failed notification",
    );
    const dm = await (await fetch(`${d.url}/metrics`)).text();
    assert.equal(metric(dm, "vllm:nixl_xfer_time_seconds_count"), 1, "the transfer itself completed");
    assert.equal(metric(dm, "vllm:nixl_num_failed_transfers_total"), 0);
  });

  it("a streaming prefill request is refused", async () => {
    const { s: p } = await start({});
    const r = await post(`${p.url}/v1/completions`, {
      model: "m",
      prompt: "a b c",
      stream: true,
      kv_transfer_params: PREFILL_KV,
    });
    assert.equal(r.status, 400);
    assert.match(
      ((await r.json()) as { error: { message: string } }).error.message,
      /Prefill does not support streaming/,
    );
  });
});

describe("failure injection", () => {
  const servers: RunningModelServer[] = [];
  after(async () => {
    for (const s of servers) await s.close();
  });

  it("X-Return-Error answers that status; rate 100 with one type always fails with it", async () => {
    const s = await startModelServer({ sim: { model: "m", timeScale: 1000 } });
    servers.push(s);
    const r = await post(
      `${s.url}/v1/completions`,
      { model: "m", prompt: "hi" },
      { "x-return-error": "429" },
    );
    assert.equal(r.status, 429);
    assert.equal(((await r.json()) as { error: { code: number } }).error.code, 429);
    const f = await startModelServer({
      sim: { model: "m", timeScale: 1000 },
      failures: { rate: 100, types: ["server_error"], midStreamRate: 0 },
    });
    servers.push(f);
    for (let i = 0; i < 3; i++) {
      const x = await post(`${f.url}/v1/completions`, { model: "m", prompt: "hi" });
      assert.equal(x.status, 503);
      assert.equal(
        ((await x.json()) as { error: { message: string } }).error.message,
        "The server is overloaded or not ready yet.",
      );
    }
  });

  it("mid-stream rate 100 cuts every stream after its first chunk", async () => {
    const s = await startModelServer({
      sim: { model: "m", timeScale: 1000, mode: "echo" },
      failures: { rate: 0, types: [], midStreamRate: 100 },
    });
    servers.push(s);
    const r = await post(`${s.url}/v1/chat/completions`, {
      model: "m",
      messages: [{ role: "user", content: "one two three four five six" }],
      stream: true,
    });
    assert.equal(r.status, 200);
    await assert.rejects(r.text(), "the body ends with a socket error, not [DONE]");
    // a non-streamed request is unaffected
    const ok = await post(`${s.url}/v1/completions`, { model: "m", prompt: "x y", max_tokens: 2 });
    assert.equal(ok.status, 200);
  });
});
