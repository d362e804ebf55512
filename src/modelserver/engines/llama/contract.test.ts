/**
 * The model-server contract suite (`../../contract.ts`) against the llama engine, on a
 * generated ~1M-parameter GGUF model (1 thread). `maxModelLen` 8192 because the suite's
 * disconnect test asks for `max_tokens` 4000.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after } from "node:test";
import { createModel } from "../../../gguf/model.js";
import { runModelServerContract } from "../../contract.js";
import { createLlamaEngine } from "./engine.js";

const dir = mkdtempSync(join(tmpdir(), "llmd-llama-contract-"));
after(() => rmSync(dir, { recursive: true, force: true }));

runModelServerContract("llama", async () => {
  const modelPath = join(dir, "contract-1m.gguf");
  await createModel({ out: modelPath, params: "1m", seed: 3 });
  return createLlamaEngine({ modelPath, maxNumSeqs: 2, maxModelLen: 8192, threads: 1 });
});
