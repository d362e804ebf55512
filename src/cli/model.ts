/**
 * `llmd model create` — writes a deterministic small llama-architecture GGUF model
 * (`src/gguf/model.ts`; reference/llama-engine.md §2) for tests and demos. The output is
 * gibberish but real: llama.cpp loads it, tokenizes with it and generates with it.
 */
import { type Command, InvalidArgumentError } from "commander";
import { createModel, MODEL_SIZES, type ModelSizeName } from "../gguf/model.js";

/** Flags of `llmd model create`. */
export interface ModelCreateFlags {
  size: string;
  seed: number;
  tokenizer: string;
  out: string;
  weightStd: number;
  chatTemplate: boolean;
}

/** Adds `llmd model create` to the CLI. */
export function registerModel(program: Command): void {
  const model = program.command("model").description("model files (GGUF)");
  const cmd = model
    .command("create")
    .description("write a deterministic small llama-architecture GGUF model (gibberish output, real engine)")
    .option("--size <size>", `model size: ${Object.keys(MODEL_SIZES).join(" | ")}`, "1m")
    .option(
      "--seed <n>",
      "weight seed",
      (v: string) => {
        const n = Number(v);
        if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError("expected an integer ≥ 0");
        return n;
      },
      0,
    )
    .option("--tokenizer <kind>", "tokenizer: spm | bpe", "spm")
    .option(
      "--weight-std <std>",
      "weight standard deviation",
      (v: string) => {
        const n = Number(v);
        if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError("expected a number ≥ 0");
        return n;
      },
      0.2,
    )
    .option("--no-chat-template", "do not write a ChatML tokenizer.chat_template")
    .requiredOption("--out <file>", "output .gguf file");
  cmd.action(async (f: ModelCreateFlags) => {
    if (!(f.size in MODEL_SIZES))
      cmd.error(`llmd model create: unknown --size ${f.size} (use 1m, 10m or 50m)`);
    if (f.tokenizer !== "spm" && f.tokenizer !== "bpe") {
      cmd.error(`llmd model create: unknown --tokenizer ${f.tokenizer} (use spm or bpe)`);
    }
    const m = await createModel({
      out: f.out,
      params: f.size as ModelSizeName,
      seed: f.seed,
      tokenizer: f.tokenizer as "spm" | "bpe",
      weightStd: f.weightStd,
      chatTemplate: f.chatTemplate ? "chatml" : "none",
    });
    const s = m.shape;
    process.stdout.write(
      `wrote ${m.path}\n` +
        `  params: ${m.params} (${(m.params / 1e6).toFixed(2)}M; dim ${s.dim}, layers ${s.layers}, ffn ${s.ffn}, heads ${s.heads}/${s.kvHeads} kv)\n` +
        `  tokenizer: ${f.tokenizer}, vocab ${m.vocabSize}; seed ${f.seed}; weight std ${f.weightStd}\n` +
        `  file: ${m.bytes} bytes; xxh64 ${m.hash}; ${m.writeMs.toFixed(0)} ms\n`,
    );
  });
}
