/**
 * KV transfer between llama model servers (issue "A real engine: llama.cpp-backed server with
 * real KV transfer between processes"). Two `llmd serve --engine llama` processes (prefill and
 * decode, 1 thread each) on 127.0.0.1 with the ~10M generated model; figures from one run:
 *
 * 1. Side-channel throughput: `GET /llmd/kv/blocks/<id>` of the prefill server (the state of a
 *    ~2k-token prompt, ≈ 20 MB) pulled by this process with `KvSideChannel.pull`, vs a raw
 *    loopback TCP transfer of the same bytes from another process (a `node` child that writes
 *    them to every connection; the reader copies them into one Buffer, as the HTTP client
 *    delivers them), measured in the same run; median of `--reps` each, MB/s and the ratio
 *    (target ≥ 50 %).
 * 2. Decode-side TTFT for a 2k-token prompt: a request to the decode server with the prefill's
 *    `kv_transfer_params` (handshake + pull + release + import + the last token), vs the same
 *    length prompt computed there from scratch (a different prompt, so no prefix reuse); both
 *    with `max_tokens: 1` (latency = time to first token); `--ttft-reps` rounds with new prompts,
 *    medians and their ratio (target ≥ 10×). The prefill leg itself is printed too (it is the
 *    time P/D moves off the decode server).
 *
 * Run: `node --import tsx bench/kv-transfer.ts [--prompt 2048] [--reps 9] [--ttft-reps 3] [--size 10m]`.
 * Tokens/s per engine process vs node-llama-cpp directly: `bench/llama-engine.ts`.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import type { KvTransferParams } from "../src/api/openai.js";
import { createModel, type ModelSizeName } from "../src/gguf/model.js";
import { KvSideChannel } from "../src/modelserver/kv-transfer.js";
import { freePort, llmdCommand } from "./lib.js";

const arg = (name: string, def: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : def;
};
const PROMPT = Number(arg("prompt", "2048"));
const REPS = Number(arg("reps", "9"));
const TTFT_REPS = Number(arg("ttft-reps", "3"));
const SIZE = arg("size", "10m") as ModelSizeName;

const dir = mkdtempSync(join(tmpdir(), "llmd-bench-kv-"));
const children: ChildProcess[] = [];
const fmt = (x: number, d = 1) => x.toFixed(d);
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
};

async function serve(modelPath: string, port: number): Promise<string> {
  const child = spawn(
    process.execPath,
    [
      ...llmdCommand(),
      "serve",
      "--engine",
      "llama",
      "--model",
      modelPath,
      "--threads",
      "1",
      "--port",
      String(port),
      "--max-model-len",
      String(Math.max(4096, PROMPT + 64)),
      "--max-num-seqs",
      "1",
    ],
    { stdio: ["ignore", "ignore", "inherit"], env: { ...process.env, LLMD_LOG_LEVEL: "warn" } },
  );
  children.push(child);
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 600; i++) {
    if (child.exitCode !== null) throw new Error(`llmd serve exited ${child.exitCode}`);
    if (
      await fetch(`${url}/health`).then(
        (r) => r.ok,
        () => false,
      )
    )
      return url;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error("llmd serve did not become healthy in 60 s");
}

async function post(url: string, body: unknown): Promise<{ ms: number; json: Record<string, unknown> }> {
  const t0 = performance.now();
  const r = await fetch(`${url}/v1/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const json = (await r.json()) as Record<string, unknown>;
  const ms = performance.now() - t0;
  if (r.status !== 200) throw new Error(`HTTP ${r.status}: ${JSON.stringify(json)}`);
  return { ms, json };
}

/** A child process that writes `file` to every TCP connection on 127.0.0.1; resolves with its port. */
async function rawSender(file: string): Promise<number> {
  const code = `
    const fs = require("node:fs"); const net = require("node:net");
    const bytes = fs.readFileSync(${JSON.stringify(file)});
    const srv = net.createServer((s) => s.end(bytes));
    srv.listen(0, "127.0.0.1", () => console.log(srv.address().port));`;
  const child = spawn(process.execPath, ["-e", code], { stdio: ["ignore", "pipe", "inherit"] });
  children.push(child);
  const [line] = (await once(child.stdout!, "data")) as [Buffer];
  return Number(line.toString().trim());
}

/**
 * Reads one connection to `port` to its end into one Buffer of `size` bytes (what a consumer
 * of the state needs, and what the HTTP client delivers); returns ms and bytes.
 */
function rawPull(port: number, size: number): Promise<{ ms: number; bytes: number }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const out = Buffer.allocUnsafe(size);
    let bytes = 0;
    const c = connect(port, "127.0.0.1");
    c.on("data", (d: Buffer) => {
      if (bytes + d.length <= size) d.copy(out, bytes);
      bytes += d.length;
    });
    c.on("end", () => resolve({ ms: performance.now() - t0, bytes }));
    c.on("error", reject);
  });
}

try {
  console.log(
    `KV transfer bench — load avg ${loadavg()
      .map((x) => x.toFixed(2))
      .join(" ")}, prompt ${PROMPT} tokens, ${SIZE} model, 1 thread per server`,
  );
  const modelPath = join(dir, `kv-${SIZE}.gguf`);
  const m = await createModel({ out: modelPath, params: SIZE, seed: 2 });
  const [pPort, dPort] = [await freePort(), await freePort()];
  const [pUrl, dUrl] = await Promise.all([serve(modelPath, pPort), serve(modelPath, dPort)]);
  const model = ((await (await fetch(`${pUrl}/v1/models`)).json()) as { data: { id: string }[] }).data[0]!.id;

  // two prompts of PROMPT tokens that differ from their second token (no prefix reuse)
  const tokens = async (text: string) =>
    (
      (await (
        await fetch(`${pUrl}/tokenize`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ model, prompt: text }),
        })
      ).json()) as { tokens: number[] }
    ).tokens;
  let text = "";
  for (let i = 0; (await tokens(text)).length < PROMPT + 8; i += 8) {
    for (let k = i; k < i + 8; k++)
      text += `Story ${k}: the people of this city said that there was a great story about water and the sea. `;
  }
  const promptOf = async (tag: string) => (await tokens(`${tag}. ${text}`)).slice(0, PROMPT);
  const base = { model, temperature: 0, ignore_eos: true, max_tokens: 1 };
  // warm both servers (first-request allocations) with a short prompt
  await post(pUrl, { ...base, prompt: "warm up" });
  await post(dUrl, { ...base, prompt: "warm up" });
  const kvPrefill = {
    do_remote_decode: true,
    do_remote_prefill: false,
    remote_engine_id: null,
    remote_block_ids: null,
    remote_host: null,
    remote_port: null,
  };
  const dMetric = async (name: string) => {
    const text = await (await fetch(`${dUrl}/metrics`)).text();
    for (const line of text.split("\n"))
      if (line.startsWith(`${name}{`)) return Number(line.split(" ").at(-1));
    return Number.NaN;
  };
  // TTFT_REPS rounds; every prompt is new to both servers (they differ from the second token)
  const ttft = { recompute: [] as number[], transferred: [] as number[], prefillLeg: [] as number[] };
  const split = { post: [] as number[], xfer: [] as number[] };
  let cached = 0;
  for (let r = 0; r < TTFT_REPS; r++) {
    // 2a. recompute on the decode server: a prompt from scratch
    ttft.recompute.push((await post(dUrl, { ...base, prompt: await promptOf(`Recompute ${r}`) })).ms);
    // 2b. P/D: prefill leg, then the decode leg with its kv_transfer_params
    const prompt = await promptOf(`Transfer ${r}`);
    const pre = await post(pUrl, { ...base, prompt, min_tokens: 1, kv_transfer_params: kvPrefill });
    ttft.prefillLeg.push(pre.ms);
    const kv = pre.json.kv_transfer_params as KvTransferParams;
    const [post0, xfer0] = [
      await dMetric("vllm:nixl_post_time_seconds_sum"),
      await dMetric("vllm:nixl_xfer_time_seconds_sum"),
    ];
    const dec = await post(dUrl, { ...base, prompt, kv_transfer_params: kv });
    ttft.transferred.push(dec.ms);
    split.post.push(((await dMetric("vllm:nixl_post_time_seconds_sum")) - post0) * 1000);
    split.xfer.push(((await dMetric("vllm:nixl_xfer_time_seconds_sum")) - xfer0) * 1000);
    cached = (dec.json.usage as { prompt_tokens_details: { cached_tokens: number } }).prompt_tokens_details
      .cached_tokens;
  }
  const promptA = await promptOf("Alpha");

  // 1. throughput: a held state (prefill of prompt A on the prefill server), pulled REPS times
  const pre2 = await post(pUrl, {
    ...base,
    prompt: promptA,
    min_tokens: 1,
    kv_transfer_params: kvPrefill,
  });
  const kv2 = pre2.json.kv_transfer_params as KvTransferParams;
  const side = new KvSideChannel();
  const host = kv2.remote_host!;
  const port = kv2.remote_port!;
  const id = kv2.remote_request_id!;
  await side.layout(host, port); // handshake (connection + cached layout)
  const tFirst = performance.now();
  let state = await side.pull(host, port, id);
  const firstPullMs = performance.now() - tFirst;
  const httpMs: number[] = [];
  for (let i = 0; i < REPS; i++) {
    const t0 = performance.now();
    state = await side.pull(host, port, id);
    httpMs.push(performance.now() - t0);
  }
  await side.release(host, port, id);
  await side.close();
  const file = join(dir, "state.bin");
  writeFileSync(file, state);
  const rawPort = await rawSender(file);
  await rawPull(rawPort, state.length); // warm-up
  const rawMs: number[] = [];
  for (let i = 0; i < REPS; i++) {
    const r = await rawPull(rawPort, state.length);
    if (r.bytes !== state.length) throw new Error(`raw transfer moved ${r.bytes} of ${state.length} bytes`);
    rawMs.push(r.ms);
  }
  const mb = state.length / 1e6;
  const httpMBs = mb / (median(httpMs) / 1000);
  const rawMBs = mb / (median(rawMs) / 1000);
  console.log(`\n1. side-channel throughput, state of ${PROMPT - 1} tokens = ${state.length} bytes`);
  console.log(
    `   HTTP GET /llmd/kv/blocks (KvSideChannel.pull): median ${fmt(median(httpMs))} ms → ${fmt(httpMBs, 0)} MB/s  [${httpMs.map((x) => fmt(x)).join(", ")}]`,
  );
  console.log(
    `   raw loopback TCP, process → process, into 1 Buffer: median ${fmt(median(rawMs))} ms → ${fmt(rawMBs, 0)} MB/s  [${rawMs.map((x) => fmt(x)).join(", ")}]`,
  );
  console.log(`   (first pull of this state, not in the median: ${fmt(firstPullMs)} ms)`);
  console.log(`   ratio HTTP/raw: ${fmt((100 * httpMBs) / rawMBs, 0)} % (target ≥ 50 %)`);

  console.log(
    `\n2. decode-side TTFT, ${SIZE} (${fmt(m.params / 1e6)}M params), prompt ${PROMPT} tokens, max_tokens 1`,
  );
  const list = (xs: number[]) => `[${xs.map((x) => fmt(x, 0)).join(", ")}]`;
  const [rec, tra] = [median(ttft.recompute), median(ttft.transferred)];
  console.log(`   recompute the prefill on the decode server: median ${fmt(rec)} ms ${list(ttft.recompute)}`);
  console.log(
    `   with transferred KV (handshake + pull + release + import + last token): median ${fmt(tra)} ms ${list(ttft.transferred)} (cached_tokens ${cached})`,
  );
  console.log(
    `     of which (decode server's vllm:nixl_* metrics) handshake + layout check ${list(split.post)} ms, pull ${list(split.xfer)} ms`,
  );
  console.log(`   ratio of medians recompute / transferred: ${fmt(rec / tra)}× (target ≥ 10×)`);
  console.log(`   (prefill leg on the prefill server, incl. export: ${list(ttft.prefillLeg)} ms)`);
} finally {
  for (const c of children) if (c.exitCode === null) c.kill("SIGTERM");
  await Promise.all(children.map((c) => (c.exitCode === null ? once(c, "exit") : null)));
  rmSync(dir, { recursive: true, force: true });
}
