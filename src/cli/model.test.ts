import assert from "node:assert/strict";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { Command } from "commander";
import { fileHash } from "../gguf/model.js";
import { registerModel } from "./model.js";

const dir = mkdtempSync(join(tmpdir(), "llmd-cli-model-"));
after(() => rmSync(dir, { recursive: true, force: true }));

function program(): { p: Command; err: string[] } {
  const err: string[] = [];
  const p = new Command()
    .exitOverride()
    .configureOutput({ writeErr: (s) => err.push(s), writeOut: () => {} });
  registerModel(p);
  return { p, err };
}

test("llmd model create writes the file and prints params, size, hash and path", async () => {
  const out = join(dir, "m.gguf");
  const printed: string[] = [];
  const orig = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((s: string) => {
    printed.push(String(s));
    return true;
  }) as typeof process.stdout.write;
  try {
    await program().p.parseAsync(
      ["model", "create", "--size", "1m", "--seed", "3", "--tokenizer", "bpe", "--out", out],
      {
        from: "user",
      },
    );
  } finally {
    process.stdout.write = orig;
  }
  const text = printed.join("");
  const size = statSync(out).size;
  assert.match(text, new RegExp(`wrote ${out.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}`));
  assert.match(text, new RegExp(`file: ${size} bytes`));
  assert.match(text, new RegExp(`xxh64 ${await fileHash(out)}`));
  assert.match(text, /params: \d+ \(1\.\d\dM; dim 128, layers 4, ffn 352, heads 4\/4 kv\)/);
  assert.match(text, /tokenizer: bpe, vocab \d+; seed 3/);
});

test("llmd model create refuses an unknown size or tokenizer and a missing --out", async () => {
  for (const args of [
    ["--size", "2m", "--out", join(dir, "x.gguf")],
    ["--tokenizer", "wordpiece", "--out", join(dir, "x.gguf")],
    ["--size", "1m"],
  ]) {
    const { p, err } = program();
    await assert.rejects(p.parseAsync(["model", "create", ...args], { from: "user" }));
    assert.ok(err.join("").length > 0, `an error message for ${args.join(" ")}`);
  }
});
