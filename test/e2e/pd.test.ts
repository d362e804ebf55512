/**
 * P/D end to end through the router: `llmd up --prefill 1 --decode 1` (echo mode, time-scaled)
 * next to an aggregated `llmd serve`. A long prompt is disaggregated (the prefill server serves
 * its 1-token prefill leg, the decode server pulls the KV: `vllm:nixl_xfer_time_seconds_count`
 * rises) and its response text equals the aggregated server's; a short prompt skips prefill;
 * the prefill server served exactly the P/D-decided requests.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { freePort, type LlmdChild, runLlmd } from "./helpers.js";
import { complete, longPrompt, metricSum, metrics, waitHealthy } from "./pd-helpers.js";

let up: LlmdChild;
let agg: LlmdChild;
let url: string;
let aggUrl: string;
let prefillUrl: string;
let decodeUrl: string;

before(async () => {
  const port = await freePort();
  const first = await freePort();
  up = runLlmd([
    "up",
    "--port",
    String(port),
    "--prefill",
    "1",
    "--decode",
    "1",
    "--first-server-port",
    String(first),
    "--server-arg=--mode",
    "--server-arg=echo",
    "--server-arg=--time-scale",
    "--server-arg=20",
  ]);
  const aggPort = await freePort();
  agg = runLlmd(["serve", "--port", String(aggPort), "--mode", "echo", "--time-scale", "20"]);
  const line = await up.waitForLine(
    /router ready at (http:\/\/\S+) with 1 prefill \+ 1 decode sim servers \(([^)]+)\)/,
  );
  const m = /ready at (\S+) with .* \(([^)]+)\)/.exec(line)!;
  url = m[1]!;
  const [p, d] = m[2]!.split(", ");
  prefillUrl = `http://${p}`;
  decodeUrl = `http://${d}`;
  aggUrl = `http://127.0.0.1:${aggPort}`;
  await waitHealthy(aggUrl, agg);
});

after(async () => {
  await up?.stop();
  await agg?.stop();
});

test("a long prompt is disaggregated: same text as aggregated, one KV transfer pulled by the decode server", async () => {
  const before = await metrics(decodeUrl);
  const pBefore = await metrics(prefillUrl);
  const prompt = longPrompt("alpha");
  const pd = await complete(url, prompt);
  const ag = await complete(aggUrl, prompt);
  assert.equal(pd.status, 200);
  assert.equal(ag.status, 200);
  assert.ok(pd.text.length > 0);
  assert.equal(pd.text, ag.text, "P/D response text equals the aggregated one");
  const after = await metrics(decodeUrl);
  assert.equal(
    metricSum(after, "vllm:nixl_xfer_time_seconds_count") -
      metricSum(before, "vllm:nixl_xfer_time_seconds_count"),
    1,
  );
  assert.ok(
    metricSum(after, "vllm:nixl_bytes_transferred_sum") >
      metricSum(before, "vllm:nixl_bytes_transferred_sum"),
  );
  assert.equal(metricSum(after, "vllm:nixl_num_failed_transfers_total"), 0);
  const pAfter = await metrics(prefillUrl);
  assert.equal(
    metricSum(pAfter, "vllm:request_success_total") - metricSum(pBefore, "vllm:request_success_total"),
    1,
    "the prefill server served the prefill leg",
  );
});

test("a streamed long prompt through P/D gives the aggregated text", async () => {
  const prompt = longPrompt("beta");
  const pd = await complete(url, prompt, { stream: true });
  const ag = await complete(aggUrl, prompt, { stream: true });
  assert.equal(pd.status, 200);
  assert.equal(pd.text, ag.text);
  assert.ok(pd.text.length > 0);
});

test("a short prompt skips prefill (decode-only)", async () => {
  const pBefore = await metrics(prefillUrl);
  const dBefore = await metrics(decodeUrl);
  const r = await complete(url, "just a few words here");
  assert.equal(r.status, 200);
  assert.equal(r.text, (await complete(aggUrl, "just a few words here")).text);
  assert.equal(
    metricSum(await metrics(prefillUrl), "vllm:request_success_total"),
    metricSum(pBefore, "vllm:request_success_total"),
    "no prefill leg",
  );
  assert.equal(
    metricSum(await metrics(decodeUrl), "vllm:nixl_xfer_time_seconds_count"),
    metricSum(dBefore, "vllm:nixl_xfer_time_seconds_count"),
    "no transfer",
  );
});

test("the prefill server served exactly the P/D-decided requests", async () => {
  for (let i = 0; i < 3; i++) {
    assert.equal((await complete(url, longPrompt(`gamma${i}`))).status, 200);
    assert.equal((await complete(url, `short prompt number ${i}`)).status, 200);
  }
  const rm = await metrics(url);
  const pdDecisions = metricSum(rm, "llm_d_epp_disagg_decision_total", 'decision_type="prefill-decode"');
  const decodeOnly = metricSum(rm, "llm_d_epp_disagg_decision_total", 'decision_type="decode-only"');
  assert.equal(pdDecisions, 5, "alpha, beta and three gamma prompts");
  assert.equal(decodeOnly, 4, "the short prompts");
  assert.equal(metricSum(await metrics(prefillUrl), "vllm:request_success_total"), pdDecisions);
  assert.equal(metricSum(await metrics(decodeUrl), "vllm:nixl_xfer_time_seconds_count"), pdDecisions);
});
