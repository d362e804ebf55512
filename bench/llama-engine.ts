/**
 * llama engine figures (issue "A real engine: llama.cpp-backed vLLM-compatible server"),
 * one run each, 1 thread (reference/llama-engine.md §1), on generated models (std 0.2):
 *
 * 1. Decode throughput: our `Engine.generate` (slots, prefix logic, output channel) vs
 *    node-llama-cpp called directly (`seq.evaluate`), same model, same prompt, greedy, the same
 *    number of tokens; prints tokens/s of both and the ratio (ours / direct; 1.0 = no overhead).
 * 2. P/D on the ~10M model with a ~2k-token prompt: time to first token when the decode side
 *    recomputes the prefill (cold engine) vs when it imports the transferred KV state and
 *    evaluates only the last token (`importAndGenerate`); prints both, the ratio (target ≥ 10×),
 *    the state size, the export (prefill + save) time, and a raw 127.0.0.1 TCP transfer of the
 *    state bytes.
 *
 * Run: `node --import tsx bench/llama-engine.ts [--tokens 128] [--prompt 2048] [--size 10m]`.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, connect } from "node:net";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { createModel, type ModelSizeName } from "../src/gguf/model.js";
import type { EngineOutput } from "../src/modelserver/engine.js";
import { createLlamaEngine } from "../src/modelserver/engines/llama/engine.js";
import { sharedLlama } from "../src/modelserver/engines/llama/runtime.js";

const arg = (name: string, def: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : def;
};
const TOKENS = Number(arg("tokens", "128"));
const PROMPT = Number(arg("prompt", "2048"));
const SIZE = arg("size", "10m") as ModelSizeName;

const dir = mkdtempSync(join(tmpdir(), "llmd-bench-llama-"));
const fmt = (x: number, d = 1) => x.toFixed(d);

async function firstTokenMs(it: AsyncIterable<EngineOutput>): Promise<{ ms: number; tokens: number[] }> {
  const t0 = performance.now();
  let ms = Number.NaN;
  const tokens: number[] = [];
  for await (const o of it) {
    if (o.tokens.length > 0 && Number.isNaN(ms)) ms = performance.now() - t0;
    tokens.push(...o.tokens);
  }
  return { ms, tokens };
}

/** Sends `bytes` over a 127.0.0.1 TCP connection; returns ms until the receiver has them all. */
function loopbackMs(bytes: Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer((sock) => {
      let got = 0;
      sock.on("data", (d: Buffer) => {
        got += d.length;
        if (got >= bytes.length) {
          const ms = performance.now() - t0;
          sock.destroy();
          srv.close();
          resolve(ms);
        }
      });
    });
    let t0 = 0;
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as { port: number }).port;
      const c = connect(port, "127.0.0.1", () => {
        t0 = performance.now();
        c.end(bytes);
      });
      c.on("error", reject);
    });
  });
}

try {
  console.log(
    `llama engine bench — load avg ${loadavg()
      .map((x) => x.toFixed(2))
      .join(" ")}, 1 thread`,
  );
  const t0 = performance.now();
  await sharedLlama(1);
  console.log(`getLlama (once per process): ${fmt(performance.now() - t0, 0)} ms`);

  // 1. throughput: Engine.generate vs node-llama-cpp directly
  {
    const path = join(dir, `tput-${SIZE}.gguf`);
    const m = await createModel({ out: path, params: SIZE, seed: 1 });
    const engine = await createLlamaEngine({ modelPath: path, maxNumSeqs: 1, maxModelLen: 1024 });
    const prompt = engine.tokenizer.encode(
      "The people of this city said that there was a great story about water. ".repeat(4),
    );
    const params = { maxTokens: TOKENS, minTokens: 0, ignoreEos: true, temperature: 0 };
    // warm-up (page cache, allocator), then measure decode only: time from first to last token
    await firstTokenMs(
      engine.generate({ requestId: "w", promptTokens: prompt, params: { ...params, maxTokens: 8 } }),
    );
    const oursStart = performance.now();
    let oursFirst = 0;
    let n = 0;
    for await (const o of engine.generate({ requestId: "a", promptTokens: prompt, params })) {
      if (n === 0 && o.tokens.length > 0) oursFirst = performance.now();
      n += o.tokens.length;
    }
    const oursEnd = performance.now();
    const oursTps = (n - 1) / ((oursEnd - oursFirst) / 1000);
    // direct: same model object, fresh context, same split (prefill n−1, then the last token)
    const ctx = await engine.model.createContext({ contextSize: 1024, sequences: 1, threads: 1 });
    const seq = ctx.getSequence();
    await seq.evaluateWithoutGeneratingNewTokens(prompt.slice(0, -1) as never);
    let dn = 0;
    let dFirst = 0;
    const directStart = performance.now();
    for await (const _t of seq.evaluate(prompt.slice(-1) as never, { temperature: 0, yieldEogToken: true })) {
      if (dn === 0) dFirst = performance.now();
      dn++;
      if (dn >= TOKENS) break;
    }
    const directEnd = performance.now();
    const directTps = (dn - 1) / ((directEnd - dFirst) / 1000);
    await ctx.dispose();
    await engine.close();
    console.log(
      `\n1. decode throughput, ${SIZE} (${(m.params / 1e6).toFixed(1)}M params), prompt ${prompt.length} tokens, ${TOKENS} tokens greedy`,
    );
    console.log(
      `   Engine.generate:        ${fmt(oursTps)} tok/s (request total ${fmt(oursEnd - oursStart, 0)} ms)`,
    );
    console.log(
      `   node-llama-cpp direct:  ${fmt(directTps)} tok/s (total ${fmt(directEnd - directStart, 0)} ms)`,
    );
    console.log(`   ratio ours/direct:      ${fmt(oursTps / directTps, 2)}`);
  }

  // 2. P/D: TTFT with transferred KV vs recomputed prefill
  {
    const path = join(dir, "pd-10m.gguf");
    const m = await createModel({ out: path, params: "10m", seed: 2 });
    const maxModelLen = Math.max(4096, PROMPT + 64);
    const prefill = await createLlamaEngine({
      modelPath: path,
      maxNumSeqs: 1,
      maxModelLen,
      modelHash: m.hash,
    });
    const decode = await createLlamaEngine({
      modelPath: path,
      maxNumSeqs: 1,
      maxModelLen,
      modelHash: m.hash,
    });
    let text = "";
    let prompt: number[] = [];
    let i = 0;
    while (prompt.length < PROMPT) {
      text += `Story ${i++}: the people of this city said that there was a great story about water and the sea. `;
      prompt = prefill.tokenizer.encode(text);
    }
    prompt = prompt.slice(0, PROMPT);
    const params = { maxTokens: 8, minTokens: 0, ignoreEos: true, temperature: 0 };
    // recompute on the decode side: cold slot, whole prompt
    const recompute = await firstTokenMs(decode.generate({ requestId: "r", promptTokens: prompt, params }));
    // transfer: prefill exports, decode (different prompt cached) imports + last token
    const tExp = performance.now();
    const ex = await prefill.exportPrefix(prompt);
    const exportMs = performance.now() - tExp;
    await firstTokenMs(decode.generate({ requestId: "x", promptTokens: [1, 5, 6, 7], params })); // evict
    const imported = await firstTokenMs(decode.importAndGenerate(ex.stateBytes, prompt, params));
    const wireMs = await loopbackMs(ex.stateBytes);
    const same = JSON.stringify(imported.tokens) === JSON.stringify(recompute.tokens);
    console.log(`\n2. P/D on 10m (${(m.params / 1e6).toFixed(1)}M params), prompt ${prompt.length} tokens`);
    console.log(`   TTFT recomputing the prefill:       ${fmt(recompute.ms)} ms`);
    console.log(`   TTFT importing the KV + last token: ${fmt(imported.ms)} ms`);
    console.log(`   ratio recompute/import:             ${fmt(recompute.ms / imported.ms)}× (target ≥ 10×)`);
    console.log(
      `   + raw loopback TCP transfer:        ${fmt(wireMs)} ms → ratio incl. transfer ${fmt(recompute.ms / (imported.ms + wireMs))}×`,
    );
    console.log(
      `   state: ${ex.stateBytes.length} bytes (${fmt(ex.stateBytes.length / (prompt.length - 1), 0)} B/token; raw llama.cpp ${ex.rawStateBytes})`,
    );
    console.log(
      `   export on the prefill side: ${fmt(exportMs)} ms (prefill ${ex.evaluatedTokens} tokens + save/read ${fmt(ex.saveMs)} ms)`,
    );
    console.log(`   loopback throughput: ${fmt(ex.stateBytes.length / 1e6 / (wireMs / 1000), 0)} MB/s`);
    console.log(`   greedy tokens equal (import vs recompute): ${same}`);
    await prefill.close();
    await decode.close();
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
