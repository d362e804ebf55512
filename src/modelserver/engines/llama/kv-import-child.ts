/**
 * Test/bench helper: the decode side of a KV transfer in its own process.
 *
 * `node --import tsx kv-import-child.ts <model.gguf> <state-file> <prompt.json> <maxTokens>`
 * loads the model, imports the state envelope with {@link LlamaEngine.importAndGenerate}
 * (greedy) and prints one JSON line: `{ tokens, usage, evaluatedPromptTokens, reason,
 * firstTokenMs }` (firstTokenMs = import start → first token, ms). Exit code 1 with
 * `{ error }` on failure.
 */
import { readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { createLlamaEngine, type LlamaEngineFinish } from "./engine.js";

const [modelPath, statePath, promptPath, maxTokensArg] = process.argv.slice(2);
const engine = await createLlamaEngine({ modelPath: modelPath!, maxNumSeqs: 1, maxModelLen: 4096 });
try {
  const prompt = JSON.parse(readFileSync(promptPath!, "utf8")) as number[];
  const bytes = readFileSync(statePath!);
  const t0 = performance.now();
  let firstTokenMs = Number.NaN;
  const tokens: number[] = [];
  let fin: LlamaEngineFinish | undefined;
  for await (const o of engine.importAndGenerate(bytes, prompt, {
    maxTokens: Number(maxTokensArg ?? 16),
    minTokens: 0,
    ignoreEos: true,
    temperature: 0,
  })) {
    if (o.tokens.length > 0 && Number.isNaN(firstTokenMs)) firstTokenMs = performance.now() - t0;
    tokens.push(...o.tokens);
    if (o.finish) fin = o.finish as LlamaEngineFinish;
  }
  process.stdout.write(
    `${JSON.stringify({ tokens, usage: fin?.usage, evaluatedPromptTokens: fin?.evaluatedPromptTokens, reason: fin?.reason, firstTokenMs })}\n`,
  );
} catch (e) {
  process.stdout.write(`${JSON.stringify({ error: (e as Error).message })}\n`);
  process.exitCode = 1;
} finally {
  await engine.close();
}
