import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { createModel, fileHash, gpt2ByteChars } from "./model.js";
import { f16ToF32, f32ToF16, writeGguf } from "./writer.js";

process.env.NODE_LLAMA_CPP_SKIP_DOWNLOAD = "true";
const { getLlama, LlamaLogLevel, readGgufFileInfo } = await import("node-llama-cpp");
type Llama = Awaited<ReturnType<typeof getLlama>>;

const dir = mkdtempSync(join(tmpdir(), "llmd-gguf-"));
let llama: Llama;

before(async () => {
  llama = await getLlama({
    gpu: false,
    build: "never",
    skipDownload: true,
    maxThreads: 1,
    logLevel: LlamaLogLevel.error,
  });
});
after(async () => {
  await llama?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

describe("f16", () => {
  test("exact values, rounding, overflow and subnormals", () => {
    assert.equal(f32ToF16(0), 0);
    assert.equal(f32ToF16(-0), 0x8000);
    assert.equal(f32ToF16(1), 0x3c00);
    assert.equal(f32ToF16(-2), 0xc000);
    assert.equal(f32ToF16(65504), 0x7bff);
    assert.equal(f32ToF16(1e6), 0x7c00);
    assert.equal(f32ToF16(2 ** -24), 0x0001);
    assert.equal(f32ToF16(Number.NaN) & 0x7c00, 0x7c00);
    assert.equal(f32ToF16(1 + 2 ** -11), 0x3c00); // tie → even
    assert.equal(f32ToF16(1 + 3 * 2 ** -11), 0x3c02); // tie → even (up)
    for (const v of [0.2, -0.123, Math.PI, 1e-5, 0.3463]) {
      assert.ok(Math.abs(f16ToF32(f32ToF16(v)) - v) <= Math.abs(v) * 2 ** -11 + 2 ** -24, `${v}`);
    }
  });
});

describe("writeGguf", () => {
  test("node-llama-cpp reads back typed metadata, arrays and 32-byte aligned tensors", async () => {
    const path = join(dir, "raw.gguf");
    const res = writeGguf(
      path,
      [
        { key: "general.architecture", type: "string", value: "llama" },
        { key: "general.alignment", type: "u32", value: 32 },
        { key: "t.f32", type: "f32", value: 0.5 },
        { key: "t.bool", type: "bool", value: true },
        { key: "t.i32", type: "i32", value: -7 },
        { key: "t.u64", type: "u64", value: 12345678901n },
        { key: "t.strs", type: "array", elemType: "string", value: ["a", "bé", ""] },
        { key: "t.ints", type: "array", elemType: "i32", value: [1, -2, 3] },
      ],
      [
        { name: "a", dims: [3], type: "f32", fill: (o) => o.set([1, 2, 3]) },
        { name: "b", dims: [5, 2], type: "f16", fill: (o) => o.fill(0.25) },
      ],
    );
    assert.equal(res.dataOffset % 32, 0);
    const buf = readFileSync(path);
    assert.equal(buf.length, res.bytes);
    assert.equal(buf.toString("latin1", 0, 4), "GGUF");
    assert.equal(buf.readUInt32LE(4), 3);
    // tensor a: 3 f32 at the data start; tensor b at the next multiple of 32
    assert.deepEqual(
      [0, 1, 2].map((i) => buf.readFloatLE(res.dataOffset + 4 * i)),
      [1, 2, 3],
    );
    assert.equal(buf.readUInt16LE(res.dataOffset + 32), f32ToF16(0.25));
    const info = await readGgufFileInfo(path, { readTensorInfo: true });
    assert.equal(info.version, 3);
    const md = info.metadata as unknown as Record<string, Record<string, unknown>>;
    assert.equal(md.t!.f32, 0.5);
    assert.equal(md.t!.bool, true);
    assert.equal(md.t!.i32, -7);
    assert.equal(BigInt(md.t!.u64 as number | bigint), 12345678901n);
    assert.deepEqual(md.t!.strs, ["a", "bé", ""]);
    assert.deepEqual(md.t!.ints, [1, -2, 3]);
    const tensors = info.fullTensorInfo ?? [];
    assert.deepEqual(
      tensors.map((t) => [t.name, t.dimensions.map(Number), Number(t.offset)]),
      [
        ["a", [3], 0],
        ["b", [5, 2], 32],
      ],
    );
  });

  test("rejects duplicate keys and bad dims", () => {
    const p = join(dir, "bad.gguf");
    assert.throws(
      () =>
        writeGguf(
          p,
          [
            { key: "k", type: "u32", value: 1 },
            { key: "k", type: "u32", value: 2 },
          ],
          [],
        ),
      /duplicate metadata key k/,
    );
    assert.throws(
      () => writeGguf(p, [], [{ name: "x", dims: [0], type: "f32", fill: () => {} }]),
      /bad dims/,
    );
  });
});

describe("createModel", () => {
  test("deterministic bytes: same options → same hash; another seed → another hash", async () => {
    const a = await createModel({ out: join(dir, "d1.gguf"), seed: 7 });
    const b = await createModel({ out: join(dir, "d2.gguf"), seed: 7 });
    const c = await createModel({ out: join(dir, "d3.gguf"), seed: 8 });
    assert.equal(a.hash, b.hash);
    assert.notEqual(a.hash, c.hash);
    assert.equal(a.hash, await fileHash(a.path));
    assert.match(a.hash, /^[0-9a-f]{16}$/);
    assert.equal(a.bytes, readFileSync(a.path).length);
  });

  for (const tokenizer of ["spm", "bpe"] as const) {
    test(`${tokenizer}: loads, round-trips text, merges words, greedy generation is deterministic`, async () => {
      const m = await createModel({
        out: join(dir, `m-${tokenizer}.gguf`),
        params: "1m",
        seed: 1,
        tokenizer,
      });
      assert.ok(m.params > 0.9e6 && m.params < 1.5e6, `params ${m.params}`);
      const model = await llama.loadModel({ modelPath: m.path });
      try {
        assert.equal(model.fileInfo.metadata.general.architecture, "llama");
        const texts = [
          "Hello world, the people of this city said: ünïcode ✓ 日本\n\ttabs  and  two spaces",
          "",
          " leading space",
          '{"json": [1, 2.5e-3]}',
        ];
        for (const t of texts) assert.equal(model.detokenize(model.tokenize(t)), t);
        const english = "the people of the world said that there was a great story about water";
        const n = model.tokenize(english).length;
        assert.ok(n < english.length / 2, `${n} tokens for ${english.length} chars`);
        // control tokens parse as one token each when special tokens are on; EOS/EOT end generation
        const chat = model.tokenize("<|im_start|>user\nhi<|im_end|>", true);
        assert.ok(model.isEogToken(chat.at(-1)!));
        assert.equal(model.detokenize(chat, true), "<|im_start|>user\nhi<|im_end|>");
        assert.ok(model.tokens.eos !== null && model.isEogToken(model.tokens.eos));
        const ctx = await model.createContext({ contextSize: 256, sequences: 1, threads: 1 });
        try {
          const seq = ctx.getSequence();
          const prompt = model.tokenize("Hello world, the people of this city");
          const run = async () => {
            await seq.clearHistory();
            const out: number[] = [];
            for await (const t of seq.evaluate(prompt, { temperature: 0, yieldEogToken: true })) {
              out.push(t);
              if (out.length >= 32) break;
            }
            return out;
          };
          const first = await run();
          const second = await run();
          assert.equal(first.length, 32);
          assert.deepEqual(second, first);
          assert.ok(new Set(first).size >= 8, `varied output: ${first.join(",")}`);
        } finally {
          await ctx.dispose();
        }
      } finally {
        await model.dispose();
      }
    });
  }

  test("10m and 50m write loadable files (each written and loaded once)", async () => {
    for (const [size, lo, hi] of [
      ["10m", 9e6, 12e6],
      ["50m", 48e6, 55e6],
    ] as const) {
      const m = await createModel({ out: join(dir, `s-${size}.gguf`), params: size, seed: 2 });
      assert.ok(m.params > lo && m.params < hi, `${size}: ${m.params}`);
      const model = await llama.loadModel({ modelPath: m.path });
      try {
        assert.equal(model.fileInfo.metadata.llama?.block_count, m.shape.layers);
        const ctx = await model.createContext({ contextSize: 64, threads: 1 });
        const seq = ctx.getSequence();
        const out: number[] = [];
        for await (const t of seq.evaluate(model.tokenize("Hello"), {
          temperature: 0,
          yieldEogToken: true,
        })) {
          out.push(t);
          if (out.length >= 2) break;
        }
        assert.equal(out.length, 2);
        await ctx.dispose();
      } finally {
        await model.dispose();
      }
      rmSync(m.path);
    }
  });

  test("gpt2 byte table is a bijection onto printable characters", () => {
    const chars = gpt2ByteChars();
    assert.equal(new Set(chars).size, 256);
    assert.equal(chars[32], "Ġ");
    assert.equal(chars[65], "A");
  });
});
