import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { ApiError } from "../../../api/errors.js";
import { createModel } from "../../../gguf/model.js";
import type { EngineOutput, EngineRequest, SamplingParams } from "../../engine.js";
import { createLlamaEngine, type LlamaEngine, type LlamaEngineFinish } from "./engine.js";
import { KvStateMismatchError, LLAMA_STATE_SEQ_MAGIC, restreamSeqState } from "./kv-state.js";

const dir = mkdtempSync(join(tmpdir(), "llmd-llama-"));
const modelPath = join(dir, "m1.gguf");
const otherModelPath = join(dir, "m1-other-seed.gguf");
const otherShapePath = join(dir, "m-other-shape.gguf");
const bpePath = join(dir, "m1-bpe.gguf");
const eosPath = join(dir, "m1-eos.gguf");
const spacePath = join(dir, "m1-space-prefix.gguf");
let engine: LlamaEngine;

const greedy = (maxTokens: number, extra: Partial<SamplingParams> = {}): SamplingParams => ({
  maxTokens,
  minTokens: 0,
  ignoreEos: true,
  temperature: 0,
  ...extra,
});

async function collect(it: AsyncIterable<EngineOutput>, onOutput?: (o: EngineOutput, n: number) => void) {
  const tokens: number[] = [];
  let fin: LlamaEngineFinish | undefined;
  for await (const o of it) {
    tokens.push(...o.tokens);
    onOutput?.(o, tokens.length);
    if (o.finish) fin = o.finish as LlamaEngineFinish;
  }
  assert.ok(fin, "a final output");
  return { tokens, fin };
}

let rid = 0;
const req = (promptTokens: number[], params: SamplingParams, signal?: AbortSignal): EngineRequest => ({
  requestId: `t${++rid}`,
  promptTokens,
  params,
  signal,
});

const PARAGRAPH =
  "The people of this city said that there was a great story about water and the sea. " +
  "Every morning the children walk to school along the river, and their mother tells them to stay together. ";

before(async () => {
  await createModel({ out: modelPath, params: "1m", seed: 11 });
  await createModel({ out: otherModelPath, params: "1m", seed: 12 });
  await createModel({
    out: otherShapePath,
    params: { dim: 64, layers: 2, ffn: 128, heads: 2, kvHeads: 2 },
    seed: 11,
  });
  await createModel({ out: bpePath, params: "1m", seed: 11, tokenizer: "bpe" });
  await createModel({ out: eosPath, params: "1m", seed: 4, eosLogitScale: 6 });
  await createModel({ out: spacePath, params: "1m", seed: 4, addSpacePrefix: true });
  engine = await createLlamaEngine({ modelPath, maxNumSeqs: 2, maxModelLen: 1024, threads: 1 });
});
after(async () => {
  await engine?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("llama engine: tokenizer", () => {
  test("encode adds BOS once (SPM add_bos_token) and parses control tokens; decode skips them", () => {
    const tok = engine.tokenizer;
    const ids = tok.encode("Hello world");
    assert.equal(ids[0], 1);
    assert.equal(ids.filter((x) => x === 1).length, 1);
    assert.deepEqual(tok.encode(tok.decode(ids)), ids);
    const withBos = tok.encode("<s>Hello world");
    assert.deepEqual(withBos, ids, "an explicit BOS is not doubled");
    const chat = tok.encode("<|im_start|>user\nhi<|im_end|>");
    // BOS, <|im_start|> as one token, the text's pieces, <|im_end|> (= EOT) as one token
    assert.equal(chat[0], 1);
    assert.equal(engine.tokenizer.decode([chat[1]!]), "");
    assert.equal(engine.model.detokenize([chat[1]!] as never, true), "<|im_start|>");
    assert.equal(chat.at(-1), engine.model.tokens.eot);
    assert.equal(tok.decode(chat), "user\nhi");
    assert.equal(tok.decodeOne(engine.model.tokens.eos!), "");
  });

  test("applyChatTemplate renders the model's ChatML template", () => {
    assert.equal(engine.tokenizer.chatTemplateKind, "jinja");
    const text = engine.tokenizer.applyChatTemplate([
      { role: "system", content: "Be brief." },
      { role: "user", content: "Hi there" },
    ]);
    assert.equal(
      text,
      "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
    );
  });

  test("createDecoder streams multi-byte characters whole", () => {
    const tok = engine.tokenizer;
    const text = "naïve ✓ 日本 ok";
    const ids = tok.encode(text).slice(1);
    const d = tok.createDecoder();
    let out = "";
    for (const id of ids) {
      const piece = d.push(id);
      assert.ok(!piece.includes("\uFFFD"), `no replacement character in ${JSON.stringify(piece)}`);
      out += piece;
    }
    out += d.flush();
    assert.equal(out, text);
  });
});

describe("llama engine: SPM model with add_space_prefix (Llama-2 style)", () => {
  test("output pieces keep their word breaks; the chat template renders to its literal text", async () => {
    const e = await createLlamaEngine({ modelPath: spacePath, maxNumSeqs: 1, maxModelLen: 128 });
    try {
      const t = e.tokenizer;
      const ids = t.encode("the people of the city");
      assert.equal(ids.length, 6, "BOS + 5 whole-word pieces");
      assert.deepEqual(
        ids.slice(1).map((i) => t.decodeOne(i)),
        [" the", " people", " of", " the", " city"],
      );
      const d = t.createDecoder();
      assert.equal(
        ids
          .slice(1)
          .map((i) => d.push(i))
          .join("") + d.flush(),
        " the people of the city",
      );
      assert.equal(
        t.applyChatTemplate([{ role: "user", content: "Hi there" }]),
        "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
      );
    } finally {
      await e.close();
    }
  });
});

describe("llama engine: generation", () => {
  test("info, greedy determinism, prefix reuse with counted cached/evaluated tokens, stats", async () => {
    assert.equal(engine.info.kind, "llama");
    assert.equal(engine.info.model, "llmd-1m-spm-s11");
    assert.equal(engine.info.maxModelLen, 1024);
    assert.equal(engine.info.numGpuBlocks, (1024 * 2) / 16);
    let iterTokens = 0;
    engine.setObserver({ onIteration: (n) => (iterTokens += n) });
    const s0 = engine.stats();
    const a = engine.tokenizer.encode(PARAGRAPH);
    const n = a.length;
    const cold = await collect(engine.generate(req(a, greedy(24))));
    assert.equal(cold.tokens.length, 24);
    assert.equal(cold.fin.reason, "length");
    assert.deepEqual(cold.fin.usage, { promptTokens: n, cachedTokens: 0, completionTokens: 24 });
    assert.equal(cold.fin.evaluatedPromptTokens, n);
    assert.ok(new Set(cold.tokens).size >= 8, "varied greedy output");

    const warm = await collect(engine.generate(req(a, greedy(24))));
    assert.deepEqual(warm.tokens, cold.tokens, "same greedy tokens with the prefix reused");
    assert.equal(warm.fin.usage.cachedTokens, n - 1);
    assert.equal(warm.fin.evaluatedPromptTokens, 1, "only the last prompt token is evaluated");

    // a prompt sharing the first k tokens evaluates only the rest
    const k = n - 10;
    const b = [...a.slice(0, k), ...engine.tokenizer.encode("Once upon a time there was a king").slice(1)];
    const shared = await collect(engine.generate(req(b, greedy(16))));
    assert.equal(shared.fin.usage.cachedTokens, k);
    assert.equal(shared.fin.evaluatedPromptTokens, b.length - k);

    const s1 = engine.stats();
    assert.equal(s1.running, 0);
    assert.equal(s1.waiting, 0);
    assert.equal(s1.kvCacheUsage, 0, "idle slots' cells are reusable cache, reported free");
    assert.equal(s1.promptTokens - s0.promptTokens, 2 * n + b.length);
    assert.equal(s1.prefixCacheQueries - s0.prefixCacheQueries, 2 * n + b.length);
    assert.equal(s1.prefixCacheHits - s0.prefixCacheHits, n - 1 + k);
    assert.equal(s1.generationTokens - s0.generationTokens, 24 + 24 + 16);
    // every llama_decode batch is reported: prompt tokens evaluated + fed-back output tokens
    assert.equal(iterTokens, n + 23 + 1 + 23 + (b.length - k) + 15);
    engine.setObserver(null);

    // the same shared-prefix prompt on a fresh engine (no reuse) gives the same tokens
    const fresh = await createLlamaEngine({ modelPath, maxNumSeqs: 1, maxModelLen: 1024 });
    try {
      const r = await collect(fresh.generate(req(b, greedy(16))));
      assert.equal(r.fin.usage.cachedTokens, 0);
      assert.deepEqual(r.tokens, shared.tokens);
    } finally {
      await fresh.close();
    }
  });

  test("kvCacheUsage and running reflect a request in flight", async () => {
    const p = engine.tokenizer.encode("A quick test of the running state");
    let seen: ReturnType<LlamaEngine["stats"]> | null = null;
    await collect(engine.generate(req(p, greedy(8))), (_o, got) => {
      if (got === 1) seen = engine.stats();
    });
    const s = seen as ReturnType<LlamaEngine["stats"]> | null;
    assert.ok(s);
    assert.equal(s.running, 1);
    assert.ok(s.kvCacheUsage >= p.length / (1024 * 2), `usage ${s.kvCacheUsage}`);
    assert.equal(engine.stats().kvCacheUsage, 0);
  });

  test("seeded sampling: same seed → same tokens, another seed → other tokens", async () => {
    const p = engine.tokenizer.encode("Hello world, the people of this city");
    const run = async (seed: number) =>
      (await collect(engine.generate(req(p, greedy(20, { temperature: 0.9, seed }))))).tokens;
    const x = await run(5);
    assert.deepEqual(await run(5), x);
    assert.notDeepEqual(await run(6), x);
  });

  test("abort mid-generation ends with reason abort and frees the slot", async () => {
    const ac = new AbortController();
    const p = engine.tokenizer.encode("Abort me please");
    const r = await collect(engine.generate(req(p, greedy(500), ac.signal)), (_o, got) => {
      if (got >= 2) ac.abort();
    });
    assert.equal(r.fin.reason, "abort");
    assert.ok(r.fin.usage.completionTokens < 500);
    assert.equal(engine.stats().running, 0);
    assert.throws(
      () => engine.generate(req(p, greedy(5), ac.signal)),
      (e: unknown) => e instanceof ApiError && e.status === 499,
    );
  });

  test("more requests than sequences wait FIFO, are batched, and all finish", async () => {
    const prompts = ["first request here", "second one is different", "third waits for a slot"].map((t) =>
      engine.tokenizer.encode(t),
    );
    const its = prompts.map((p) => engine.generate(req(p, greedy(12))));
    const s = engine.stats();
    assert.equal(s.waiting, 1);
    const rs = await Promise.all(its.map((it) => collect(it)));
    for (const r of rs) {
      assert.equal(r.fin.reason, "length");
      assert.equal(r.fin.usage.completionTokens, 12);
    }
    assert.ok(rs[2]!.fin.timings.queueS > 0, "the third request queued");
    assert.equal(engine.stats().waiting, 0);
  });

  test("refuses too-long requests (400) and a full waiting queue (429)", async () => {
    assert.throws(
      () => engine.generate(req([1, 2, 3], greedy(1022))),
      (e: unknown) =>
        e instanceof ApiError && e.status === 400 && /maximum context length is 1024/.test(e.message),
    );
    assert.throws(
      () => engine.generate(req([], greedy(1))),
      (e: unknown) => e instanceof ApiError && e.status === 400,
    );
    const small = await createLlamaEngine({
      modelPath,
      maxNumSeqs: 1,
      maxModelLen: 256,
      maxWaitingQueueLength: 0,
    });
    try {
      const p = small.tokenizer.encode("hello");
      const first = small.generate(req(p, greedy(4)));
      assert.throws(
        () => small.generate(req(p, greedy(4))),
        (e: unknown) => e instanceof ApiError && e.status === 429,
      );
      await collect(first);
    } finally {
      await small.close();
    }
  });
});

describe("llama engine: end of generation", () => {
  test('EOS stops (counted, decodes to ""), min_tokens bans it until reached, ignore_eos runs on', async () => {
    // a model whose EOS logit has 6× the spread of the others: greedy output hits EOS early
    const e = await createLlamaEngine({ modelPath: eosPath, maxNumSeqs: 1, maxModelLen: 256 });
    try {
      const eos = e.model.tokens.eos!;
      const isEog = (t: number) => e.model.isEogToken(t as never);
      const p = e.tokenizer.encode("The people of this city");
      const stop = await collect(e.generate(req(p, greedy(30, { ignoreEos: false }))));
      assert.equal(stop.fin.reason, "stop");
      assert.ok(stop.tokens.length < 30);
      assert.equal(stop.tokens.at(-1), eos);
      assert.equal(stop.fin.usage.completionTokens, stop.tokens.length);
      assert.ok(!stop.tokens.slice(0, -1).some(isEog));
      assert.equal(e.tokenizer.decodeOne(eos), "");

      const min = await collect(e.generate(req(p, greedy(30, { ignoreEos: false, minTokens: 6 }))));
      assert.ok(min.tokens.length > stop.tokens.length, "min_tokens pushed EOS later");
      assert.ok(!min.tokens.slice(0, 6).some(isEog), `no EOS among the first 6: ${min.tokens.join(",")}`);
      assert.equal(min.fin.reason, min.tokens.length < 30 ? "stop" : "length");

      const q = e.tokenizer.encode("water and the sea");
      const first = await collect(e.generate(req(q, greedy(30, { ignoreEos: false }))));
      assert.deepEqual(first.tokens, [eos], "EOS as the very first token ends the request");
      assert.equal(first.fin.reason, "stop");

      const ign = await collect(e.generate(req(q, greedy(30, { ignoreEos: true }))));
      assert.equal(ign.fin.reason, "length");
      assert.equal(ign.tokens.length, 30);
      assert.ok(ign.tokens.filter((t) => t === eos).length >= 2, "EOS generated and passed over");
    } finally {
      await e.close();
    }
  });
});

describe("llama engine: KV export/import", () => {
  test("export → import in a second process gives the aggregated greedy tokens without recomputing the prompt", async () => {
    const prompt = engine.tokenizer.encode(PARAGRAPH.repeat(3));
    const n = prompt.length;
    // aggregated reference on its own engine (cold: prefill n−1, then the last token alone)
    const agg = await createLlamaEngine({ modelPath, maxNumSeqs: 1, maxModelLen: 1024 });
    let aggTokens: number[];
    try {
      const r = await collect(agg.generate(req(prompt, greedy(24))));
      assert.equal(r.fin.evaluatedPromptTokens, n);
      aggTokens = r.tokens;
    } finally {
      await agg.close();
    }
    const ex = await engine.exportPrefix(prompt);
    assert.deepEqual(ex.tokens, prompt.slice(0, -1));
    assert.equal(ex.modelHash, engine.modelHash);
    assert.ok(
      ex.rawStateBytes > (n - 1) * 4 * 2 * 128 * 2,
      `state ${ex.rawStateBytes} bytes for ${n - 1} tokens`,
    );
    const statePath = join(dir, "state.bin");
    const promptPath = join(dir, "prompt.json");
    writeFileSync(statePath, ex.stateBytes);
    writeFileSync(promptPath, JSON.stringify(prompt));
    const child = fileURLToPath(new URL("./kv-import-child.ts", import.meta.url));
    const out = await new Promise<string>((resolve, reject) => {
      execFile(
        process.execPath,
        ["--import", "tsx", child, modelPath, statePath, promptPath, "24"],
        { timeout: 120_000 },
        (err, stdout, stderr) =>
          err ? reject(new Error(`${err.message}\n${stdout}\n${stderr}`)) : resolve(stdout),
      );
    });
    const res = JSON.parse(out.trim().split("\n").at(-1)!) as {
      tokens: number[];
      usage: { promptTokens: number; cachedTokens: number; completionTokens: number };
      evaluatedPromptTokens: number;
    };
    assert.deepEqual(res.tokens, aggTokens);
    assert.equal(res.evaluatedPromptTokens, 1, "the importing process evaluated only the last prompt token");
    assert.deepEqual(res.usage, { promptTokens: n, cachedTokens: n - 1, completionTokens: 24 });
  });

  test("import in the same process matches, and a wrong prompt is refused", async () => {
    const prompt = engine.tokenizer.encode("The sea and the river meet near the city");
    const ex = await engine.exportPrefix(prompt);
    const direct = await collect(engine.generate(req(prompt, greedy(10))));
    const st0 = engine.stats();
    const imp = await collect(engine.importAndGenerate(ex.stateBytes, prompt, greedy(10)));
    assert.deepEqual(imp.tokens, direct.tokens);
    assert.equal(imp.fin.evaluatedPromptTokens, 1);
    assert.equal(imp.fin.usage.cachedTokens, prompt.length - 1);
    const st1 = engine.stats();
    assert.equal(st1.prefixCacheQueries - st0.prefixCacheQueries, prompt.length);
    assert.equal(st1.prefixCacheHits - st0.prefixCacheHits, 0, "imported KV is not a local cache hit");
    const other = [...prompt.slice(0, -2), 999, prompt.at(-1)!];
    assert.throws(() => engine.importAndGenerate(ex.stateBytes, other, greedy(4)), /do not match the prompt/);
    assert.throws(
      () => engine.importAndGenerate(Buffer.from("garbage"), prompt, greedy(4)),
      /not an llmd KV state/,
    );
  });

  test("another model file or KV layout is refused with both sides named", async () => {
    const prompt = engine.tokenizer.encode("State from one model, loaded into another");
    const ex = await engine.exportPrefix(prompt);
    const otherSeed = await createLlamaEngine({ modelPath: otherModelPath, maxNumSeqs: 1, maxModelLen: 256 });
    const otherShape = await createLlamaEngine({
      modelPath: otherShapePath,
      maxNumSeqs: 1,
      maxModelLen: 256,
    });
    try {
      assert.throws(
        () => otherSeed.importAndGenerate(ex.stateBytes, prompt, greedy(4)),
        (e: unknown) =>
          e instanceof KvStateMismatchError &&
          e.message.includes(engine.modelHash) &&
          e.message.includes(otherSeed.modelHash) &&
          /model mismatch/.test(e.message),
      );
      assert.throws(
        () => otherShape.importAndGenerate(ex.stateBytes, prompt, greedy(4)),
        (e: unknown) =>
          e instanceof KvStateMismatchError &&
          /KV layout mismatch/.test(e.message) &&
          e.message.includes("4 layers, KV width 128") &&
          e.message.includes("2 layers, KV width 64"),
      );
    } finally {
      await otherSeed.close();
      await otherShape.close();
    }
  });
});

describe("llama engine: sequence-state stream rewriting", () => {
  /** A synthetic state: tokens, `streams` sections, the non-empty one at `at`. */
  const state = (tokens: number[], streams: number, at: number, body: number[]) => {
    const words = [LLAMA_STATE_SEQ_MAGIC, 3, tokens.length, ...tokens, streams];
    for (let s = 0; s < streams; s++) words.push(...(s === at ? body : [0]));
    const b = Buffer.alloc(4 * words.length);
    for (let i = 0; i < words.length; i++) b.writeUInt32LE(words[i]!, 4 * i);
    return b;
  };
  test("moves the one non-empty section to the target stream and rewrites the count", () => {
    const body = [2, 0xaaaa, 0xbbbb, 0xcccc];
    const src = state([5, 6], 3, 1, body);
    assert.deepEqual(restreamSeqState(src, 1, 0), state([5, 6], 1, 0, body));
    assert.deepEqual(restreamSeqState(src, 4, 3), state([5, 6], 4, 3, body));
    assert.equal(restreamSeqState(src, 3, 1), src, "unchanged when it already fits");
  });
  test("refuses foreign or ambiguous states", () => {
    assert.throws(() => restreamSeqState(Buffer.alloc(32), 1, 0), /magic/);
    const v2 = state([1], 1, 0, [1, 9]);
    v2.writeUInt32LE(2, 4);
    assert.throws(() => restreamSeqState(v2, 1, 0), /version 2 is not supported/);
    assert.throws(() => restreamSeqState(state([1], 2, 0, [0]), 1, 0), /no KV cells/);
    const two = state([1], 2, 0, [1, 9]);
    two.writeUInt32LE(7, two.length - 4);
    assert.throws(() => restreamSeqState(two, 1, 0), /more than one non-empty stream/);
    assert.throws(() => restreamSeqState(state([1], 1, 0, [1, 9]), 2, 2), RangeError);
  });
  test("a state saved from stream 0 imports into stream 1 of another engine (BPE model, no BOS)", async () => {
    const src = await createLlamaEngine({ modelPath: bpePath, maxNumSeqs: 1, maxModelLen: 256 });
    const dst = await createLlamaEngine({ modelPath: bpePath, maxNumSeqs: 2, maxModelLen: 256 });
    try {
      const prompt = src.tokenizer.encode("the people of the city said that there was water");
      const ex = await src.exportPrefix(prompt);
      const direct = await collect(src.generate(req(prompt, greedy(12))));
      // occupy dst's slot 0 with an unrelated prompt (other first token), so the import takes slot 1
      const other = dst.tokenizer.encode("Zebras run fast");
      assert.notEqual(other[0], prompt[0]);
      await collect(dst.generate(req(other, greedy(2))));
      const imp = await collect(dst.importAndGenerate(ex.stateBytes, prompt, greedy(12)));
      assert.deepEqual(
        dst.slotTokens()[1]!.slice(0, prompt.length),
        prompt,
        "slot 1 holds the imported prompt",
      );
      assert.deepEqual(dst.slotTokens()[0]!.slice(0, other.length), other, "slot 0 kept its own prefix");
      assert.equal(imp.fin.evaluatedPromptTokens, 1);
      assert.deepEqual(imp.tokens, direct.tokens);
    } finally {
      await src.close();
      await dst.close();
    }
  });
});
