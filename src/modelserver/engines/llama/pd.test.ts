/**
 * P/D with the llama engine over the real HTTP side channel: a prefill engine and a decode
 * engine, each behind its own model server on 127.0.0.1 (one process, two llama contexts).
 *
 * Exactness: the aggregated reference runs the same split computation — `prompt[0..n−1)` in
 * one evaluate call, then the last prompt token alone (engine.ts module doc; reference/
 * llama-engine.md §4 "always compute the last prompt token in its own evaluate call") — and
 * every request runs alone on its engine (one sequence each), because batched greedy output
 * is not always token-identical to running alone (§6). So the decode side, which loads the
 * exported KV and evaluates only the last token, must produce exactly the aggregated tokens.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { ApiError } from "../../../api/errors.js";
import type { KvTransferParams } from "../../../api/openai.js";
import { createModel } from "../../../gguf/model.js";
import type { EngineOutput, EngineRequest, KvTransferEvent, SamplingParams } from "../../engine.js";
import type { KvLayout } from "../../kv-transfer.js";
import { type RunningModelServer, startModelServer } from "../../server.js";
import { createLlamaEngine, type LlamaEngine, type LlamaEngineFinish } from "./engine.js";

const dir = mkdtempSync(join(tmpdir(), "llmd-llama-pd-"));
const modelPath = join(dir, "m1.gguf");
const otherModelPath = join(dir, "m1-other-seed.gguf");

const PARAGRAPH =
  "The people of this city said that there was a great story about water and the sea. " +
  "Every morning the children walk to school along the river, and their mother tells them to stay together. ";

const greedy = (maxTokens: number): SamplingParams => ({
  maxTokens,
  minTokens: 0,
  ignoreEos: true,
  temperature: 0,
});

let rid = 0;
const req = (promptTokens: number[], params: SamplingParams, kv?: KvTransferParams): EngineRequest => ({
  requestId: `pd${++rid}`,
  promptTokens,
  params,
  kvTransferParams: kv ?? null,
});

async function collect(it: AsyncIterable<EngineOutput>) {
  const tokens: number[] = [];
  let fin: LlamaEngineFinish | undefined;
  for await (const o of it) {
    tokens.push(...o.tokens);
    if (o.finish) fin = o.finish as LlamaEngineFinish;
  }
  assert.ok(fin, "a final output");
  return { tokens, fin };
}

/** Sum of a metric's samples in a Prometheus text page (0 when absent). */
function metricSum(text: string, name: string): number {
  let sum = 0;
  for (const line of text.split("\n")) {
    if (line.startsWith(`${name}{`) || line.startsWith(`${name} `)) sum += Number(line.split(" ").at(-1));
  }
  return sum;
}

const PREFILL_KV: KvTransferParams = {
  do_remote_decode: true,
  do_remote_prefill: false,
  remote_engine_id: null,
  remote_block_ids: null,
  remote_host: null,
  remote_port: null,
};

let prefill: LlamaEngine;
let decode: LlamaEngine;
let pServer: RunningModelServer;
let dServer: RunningModelServer;

before(async () => {
  await createModel({ out: modelPath, params: "1m", seed: 11 });
  await createModel({ out: otherModelPath, params: "1m", seed: 12 });
  prefill = await createLlamaEngine({ modelPath, maxNumSeqs: 1, maxModelLen: 1024 });
  decode = await createLlamaEngine({ modelPath, maxNumSeqs: 1, maxModelLen: 1024 });
  pServer = await startModelServer({ engine: prefill });
  dServer = await startModelServer({ engine: decode });
});
after(async () => {
  await pServer?.close();
  await dServer?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("llama P/D over the HTTP side channel", () => {
  test("the layout names the model file, geometry and side channel", async () => {
    const r = await fetch(`${pServer.url}/llmd/kv/layout`);
    assert.equal(r.status, 200);
    const l = (await r.json()) as KvLayout;
    assert.equal(l.engine_id, prefill.engineId);
    assert.equal(l.model, prefill.info.model);
    assert.equal(l.model_hash, prefill.modelHash);
    assert.equal(l.kv_connector, "NixlConnector");
    assert.equal(l.block_size, 16);
    assert.equal(l.kv_cache_dtype, "f16");
    // the 1m shape: 4 layers, 4 KV heads of 32 (dim 128)
    assert.equal(l.num_layers, 4);
    assert.equal(l.num_kv_heads, 4);
    assert.equal(l.head_dim, 32);
    assert.equal(l.tp_size, 1);
    assert.equal(l.bytes_per_token, 2 * 4 * 4 * 32 * 2);
    assert.match(l.attention_backend, /^llama\.cpp-cpu/);
    assert.equal(l.side_channel_host, "127.0.0.1");
    assert.equal(l.side_channel_port, pServer.port);
    assert.equal((await fetch(`${pServer.url}/llmd/kv/blocks/nope`)).status, 404);
    assert.equal((await fetch(`${pServer.url}/llmd/kv/release/nope`, { method: "POST" })).status, 404);
  });

  test("prefill → pull → decode gives exactly the aggregated greedy tokens, evaluating 1 prompt token", async () => {
    const text = PARAGRAPH.repeat(3);
    const prompt = prefill.tokenizer.encode(text);
    const n = prompt.length;
    const maxTokens = 24;

    // aggregated reference: a fresh engine, same split computation, alone
    const agg = await createLlamaEngine({ modelPath, maxNumSeqs: 1, maxModelLen: 1024 });
    let aggTokens: number[];
    try {
      const r = await collect(agg.generate(req(prompt, greedy(maxTokens))));
      assert.equal(r.fin.evaluatedPromptTokens, n);
      aggTokens = r.tokens;
    } finally {
      await agg.close();
    }

    // prefill leg through the HTTP surface, as the P/D coordinator sends it
    const pr = await fetch(`${pServer.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        model: prefill.info.model,
        prompt: text,
        max_tokens: 1,
        temperature: 0,
        ignore_eos: true,
        stream: false,
        kv_transfer_params: PREFILL_KV,
      }),
    });
    assert.equal(pr.status, 200);
    const pBody = (await pr.json()) as {
      usage: { prompt_tokens: number; completion_tokens: number };
      choices: { finish_reason: string }[];
      kv_transfer_params: KvTransferParams;
    };
    assert.equal(pBody.usage.prompt_tokens, n);
    assert.equal(pBody.usage.completion_tokens, 1);
    assert.equal(pBody.choices[0]!.finish_reason, "length");
    const kv = pBody.kv_transfer_params;
    assert.equal(kv.do_remote_prefill, true);
    assert.equal(kv.do_remote_decode, false);
    assert.equal(kv.remote_engine_id, prefill.engineId);
    assert.equal(kv.remote_host, "127.0.0.1");
    assert.equal(kv.remote_port, pServer.port);
    assert.equal(kv.tp_size, 1);
    assert.equal(typeof kv.remote_request_id, "string");
    assert.deepEqual(
      kv.remote_block_ids,
      Array.from({ length: Math.ceil((n - 1) / 16) }, (_, i) => i),
    );
    const before = prefill.pd.leaseStats();
    assert.equal(before.held, 1);
    // the held envelope: ≈ bytes_per_token per exported token plus headers
    assert.ok(before.heldBytes > (n - 1) * 2048, `${before.heldBytes} bytes for ${n - 1} tokens`);
    assert.ok(
      before.heldBytes < (n - 1) * (2048 + 16) + 8192,
      `${before.heldBytes} bytes for ${n - 1} tokens`,
    );

    // decode leg (engine API, to read the token meter): pulls over HTTP, releases, imports
    const d = await collect(decode.generate(req(prompt, greedy(maxTokens), kv)));
    assert.deepEqual(d.tokens, aggTokens, "decode after transfer = aggregated greedy output");
    assert.equal(d.fin.evaluatedPromptTokens, 1, "only the last prompt token is evaluated on decode");
    assert.equal(d.fin.usage.cachedTokens, n - 1);
    assert.equal(d.fin.usage.promptTokens, n);

    const afterPull = prefill.pd.leaseStats();
    assert.equal(afterPull.held, 0, "the prefill side frees the state after the pull");
    assert.equal(afterPull.pulled, before.pulled + 1);
    assert.equal(afterPull.released, before.released + 1);
    assert.equal((await fetch(`${pServer.url}/llmd/kv/blocks/${kv.remote_request_id}`)).status, 404);

    const m = await (await fetch(`${dServer.url}/metrics`)).text();
    assert.equal(metricSum(m, "vllm:nixl_xfer_time_seconds_count"), 1);
    assert.equal(metricSum(m, "vllm:nixl_bytes_transferred_sum"), before.heldBytes);
    assert.equal(metricSum(m, "vllm:nixl_num_failed_transfers_total"), 0);
  });

  test("the decode leg over HTTP reports the imported tokens as cached", async () => {
    const text = `${PARAGRAPH}A second prompt about the river and the sea.`;
    const n = prefill.tokenizer.encode(text).length;
    const body = { model: prefill.info.model, prompt: text, temperature: 0, ignore_eos: true };
    const pr = (await (
      await fetch(`${pServer.url}/v1/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ ...body, max_tokens: 1, stream: false, kv_transfer_params: PREFILL_KV }),
      })
    ).json()) as { kv_transfer_params: KvTransferParams };
    const dr = await fetch(`${dServer.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ ...body, max_tokens: 8, kv_transfer_params: pr.kv_transfer_params }),
    });
    assert.equal(dr.status, 200);
    const d = (await dr.json()) as {
      usage: {
        prompt_tokens: number;
        completion_tokens: number;
        prompt_tokens_details: { cached_tokens: number };
      };
    };
    assert.equal(d.usage.prompt_tokens, n);
    assert.equal(d.usage.completion_tokens, 8);
    assert.equal(d.usage.prompt_tokens_details.cached_tokens, n - 1);
    assert.equal(prefill.pd.leaseStats().held, 0);
  });

  test("another model file is refused with a 400 naming both layouts, and the prefill state is freed", async () => {
    const other = await createLlamaEngine({ modelPath: otherModelPath, maxNumSeqs: 1, maxModelLen: 1024 });
    const events: KvTransferEvent[] = [];
    other.setObserver({ onKvTransfer: (e) => events.push(e) });
    try {
      const prompt = prefill.tokenizer.encode(PARAGRAPH);
      const p = await collect(prefill.generate(req(prompt, greedy(1), PREFILL_KV)));
      const kv = p.fin.kvTransferParams!;
      assert.equal(kv.remote_port, pServer.port);
      assert.equal(prefill.pd.leaseStats().held, 1);
      await assert.rejects(collect(other.generate(req(prompt, greedy(8), kv))), (e: unknown) => {
        assert.ok(e instanceof ApiError);
        assert.equal(e.status, 400);
        assert.match(e.message, /KV layout mismatch, transfer refused/);
        assert.ok(e.message.includes(prefill.modelHash), "names the prefill model hash");
        assert.ok(e.message.includes(other.modelHash), "names the decode model hash");
        return true;
      });
      assert.equal(events.length, 1);
      assert.equal(events[0]!.ok, false);
      assert.equal(events[0]!.notifyFailed, false);
      assert.equal(prefill.pd.leaseStats().held, 0, "refused transfer: the prefill side was notified");

      // through the HTTP surface a refused transfer is a 400 before any byte, also when streaming
      const srv = await startModelServer({ engine: other, servedModelNames: [prefill.info.model] });
      try {
        const p2 = await collect(prefill.generate(req(prompt, greedy(1), PREFILL_KV)));
        const r = await fetch(`${srv.url}/v1/completions`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({
            model: prefill.info.model,
            prompt: PARAGRAPH,
            max_tokens: 4,
            stream: true,
            kv_transfer_params: p2.fin.kvTransferParams,
          }),
        });
        assert.equal(r.status, 400);
        const body = (await r.json()) as { error: { message: string } };
        assert.ok(body.error.message.includes(prefill.modelHash), body.error.message);
        assert.ok(body.error.message.includes(other.modelHash), body.error.message);
        const m = await (await fetch(`${srv.url}/metrics`)).text();
        assert.equal(metricSum(m, "vllm:nixl_num_failed_transfers_total"), 1);
        assert.equal(prefill.pd.leaseStats().held, 0);
      } finally {
        await srv.close();
      }
    } finally {
      await other.close();
    }
  });

  test("an expired lease drops the state (counted); a later pull is a 502", async () => {
    const leased = await createLlamaEngine({ modelPath, maxNumSeqs: 1, maxModelLen: 1024, kvLeaseMs: 50 });
    const srv = await startModelServer({ engine: leased });
    try {
      // the server registers its metrics observer; wrap it to await the expiry event
      const metricsObserver = srv.metrics.observer;
      const expired = new Promise<KvTransferEvent>((resolve) => {
        leased.setObserver({
          ...metricsObserver,
          onKvTransfer: (e) => {
            metricsObserver.onKvTransfer?.(e);
            if (e.kind === "expired") resolve(e);
          },
        });
      });
      const prompt = leased.tokenizer.encode(PARAGRAPH);
      const p = await collect(leased.generate(req(prompt, greedy(1), PREFILL_KV)));
      const kv = p.fin.kvTransferParams!;
      assert.equal(kv.remote_port, srv.port);
      const e = await expired;
      assert.equal(e.descriptors, 2 * 4 * Math.ceil((prompt.length - 1) / 16));
      const s = leased.pd.leaseStats();
      assert.equal(s.held, 0);
      assert.equal(s.expired, 1);
      assert.equal(s.released, 0);
      assert.equal(await leased.pd.pull(kv.remote_request_id!), null);
      const m = await (await fetch(`${srv.url}/metrics`)).text();
      assert.equal(metricSum(m, "vllm:nixl_num_kv_expired_reqs_total"), 1);
      await assert.rejects(collect(decode.generate(req(prompt, greedy(4), kv))), (err: unknown) => {
        assert.ok(err instanceof ApiError);
        assert.equal(err.status, 502);
        assert.match(err.message, /lease expired/);
        return true;
      });
    } finally {
      await srv.close();
    }
  });

  test("a one-token prompt or an aborted prefill holds nothing and answers null kv_transfer_params", async () => {
    const one = await collect(prefill.generate(req([1], greedy(1), PREFILL_KV)));
    assert.equal(one.fin.kvTransferParams, null);
    const ac = new AbortController();
    ac.abort();
    assert.throws(() => prefill.generate({ ...req([1, 2, 3], greedy(1), PREFILL_KV), signal: ac.signal }));
    assert.equal(prefill.pd.leaseStats().held, 0);
  });
});
