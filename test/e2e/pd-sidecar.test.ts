/**
 * P/D through `llmd sidecar` (the pd-sidecar drop-in) in front of a decode `llmd serve`, with a
 * prefill `llmd serve` and an aggregated one for reference (echo mode, time-scaled): a request
 * with `x-prefiller-host-port` straight to the sidecar gives the aggregated text and one KV
 * transfer; a prefill target outside the SSRF allow-list → 403; no header → plain proxy.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { freePort, type LlmdChild, runLlmd } from "./helpers.js";
import { complete, longPrompt, metricSum, metrics, waitHealthy } from "./pd-helpers.js";

const children: LlmdChild[] = [];
let sidecarUrl: string;
let decodeUrl: string;
let prefillUrl: string;
let prefillPort: number;
let aggUrl: string;

const serve = (port: number) =>
  runLlmd(["serve", "--port", String(port), "--mode", "echo", "--time-scale", "20"]);

before(async () => {
  const [dPort, pPort, aPort, sPort] = [
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
  ];
  prefillPort = pPort;
  decodeUrl = `http://127.0.0.1:${dPort}`;
  prefillUrl = `http://127.0.0.1:${pPort}`;
  aggUrl = `http://127.0.0.1:${aPort}`;
  sidecarUrl = `http://127.0.0.1:${sPort}`;
  const d = serve(dPort);
  const p = serve(pPort);
  const a = serve(aPort);
  const s = runLlmd([
    "sidecar",
    "--port",
    String(sPort),
    "--vllm-port",
    String(dPort),
    "--enable-ssrf-protection",
    "--allow-prefiller",
    "127.0.0.1",
  ]);
  children.push(d, p, a, s);
  await Promise.all([
    waitHealthy(decodeUrl, d),
    waitHealthy(prefillUrl, p),
    waitHealthy(aggUrl, a),
    waitHealthy(sidecarUrl, s),
  ]);
});

after(async () => {
  await Promise.all(children.map((c) => c.stop()));
});

test("x-prefiller-host-port to the sidecar: prefill leg, KV pulled by the decode server, aggregated text", async () => {
  const prompt = longPrompt("side");
  const r = await complete(sidecarUrl, prompt, {
    headers: { "x-prefiller-host-port": `127.0.0.1:${prefillPort}` },
  });
  assert.equal(r.status, 200, r.body);
  assert.equal(r.text, (await complete(aggUrl, prompt)).text);
  assert.equal(metricSum(await metrics(prefillUrl), "vllm:request_success_total"), 1, "one prefill leg");
  const dm = await metrics(decodeUrl);
  assert.equal(metricSum(dm, "vllm:nixl_xfer_time_seconds_count"), 1);
  assert.ok(metricSum(dm, "vllm:nixl_bytes_transferred_sum") > 0);
  // streamed as well
  const s = await complete(sidecarUrl, longPrompt("side2"), {
    stream: true,
    headers: { "x-prefiller-host-port": `127.0.0.1:${prefillPort}` },
  });
  assert.equal(s.status, 200);
  assert.equal(s.text, (await complete(aggUrl, longPrompt("side2"), { stream: true })).text);
  assert.equal(metricSum(await metrics(decodeUrl), "vllm:nixl_xfer_time_seconds_count"), 2);
});

test("a prefill target outside the allow-list is refused with 403", async () => {
  const before = metricSum(await metrics(prefillUrl), "vllm:request_success_total");
  const r = await complete(sidecarUrl, longPrompt("ssrf"), {
    headers: { "x-prefiller-host-port": `127.0.0.2:${prefillPort}` },
  });
  assert.equal(r.status, 403);
  assert.equal(
    metricSum(await metrics(prefillUrl), "vllm:request_success_total"),
    before,
    "nothing reached a prefill server",
  );
});

test("no x-prefiller-host-port: plain proxy to the decode server, no transfer", async () => {
  const dBefore = await metrics(decodeUrl);
  const pBefore = await metrics(prefillUrl);
  const prompt = longPrompt("plain");
  const r = await complete(sidecarUrl, prompt);
  assert.equal(r.status, 200);
  assert.equal(r.text, (await complete(aggUrl, prompt)).text);
  const dAfter = await metrics(decodeUrl);
  assert.equal(
    metricSum(dAfter, "vllm:request_success_total") - metricSum(dBefore, "vllm:request_success_total"),
    1,
  );
  assert.equal(
    metricSum(dAfter, "vllm:nixl_xfer_time_seconds_count"),
    metricSum(dBefore, "vllm:nixl_xfer_time_seconds_count"),
  );
  assert.equal(
    metricSum(await metrics(prefillUrl), "vllm:request_success_total"),
    metricSum(pBefore, "vllm:request_success_total"),
  );
});
