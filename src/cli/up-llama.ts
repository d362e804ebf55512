/**
 * The llama engine in `llmd up --engine llama` (docs/llama.md): which GGUF file every server
 * loads, and the arguments each `llmd serve` gets.
 *
 * With no `--model FILE.gguf`, a small deterministic model is generated once with
 * {@link createModel} (`src/gguf/model.ts`) into a cache directory and reused by later runs:
 * `$LLMD_CACHE_DIR`, else `$XDG_CACHE_HOME/llmd`, else `~/.cache/llmd` (falling back to the OS
 * temp dir when the home directory is not writable). The file is written under a temporary
 * name and renamed, so concurrent `llmd up` runs never load a half-written file.
 */
import { existsSync, mkdirSync, renameSync, statSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { createModel, type ModelSizeName } from "../gguf/model.js";

/** The model `llmd up --engine llama` generates when no file is given (~11M parameters, 22 MB). */
export const UP_LLAMA_DEFAULT_MODEL: { size: ModelSizeName; seed: number } = { size: "10m", seed: 1 };

/**
 * Arguments of every `llmd serve` of a llama stack: one thread per server (reference/
 * llama-engine.md §1 "Main pitfall: threads": more threads than cores collapses decode speed).
 */
export function upLlamaServeArgs(modelPath: string): string[] {
  return ["--engine", "llama", "--model", modelPath, "--threads", "1"];
}

/** The cache directory for generated models (see module doc); created when missing. */
export function llmdCacheDir(): string {
  const candidates = [
    process.env.LLMD_CACHE_DIR,
    process.env.XDG_CACHE_HOME ? join(process.env.XDG_CACHE_HOME, "llmd") : undefined,
    join(homedir(), ".cache", "llmd"),
    join(tmpdir(), "llmd-cache"),
  ];
  for (const dir of candidates) {
    if (!dir) continue;
    try {
      mkdirSync(dir, { recursive: true });
      return dir;
    } catch {
      // not writable: try the next one
    }
  }
  throw new Error("no writable cache directory for the generated model (set LLMD_CACHE_DIR)");
}

/**
 * The GGUF file a llama stack serves.
 * @param model `--model` when given on the command line: a GGUF file path; undefined = generate
 *   (or reuse) the default model in {@link llmdCacheDir}
 * @param log progress line sink (generation takes about 1 s)
 * @returns the absolute path of an existing GGUF file
 * @throws Error when a given file does not exist
 */
export async function upLlamaModelFile(
  model: string | undefined,
  log: (line: string) => void = () => {},
): Promise<string> {
  if (model !== undefined) {
    if (!existsSync(model) || !statSync(model).isFile()) {
      throw new Error(`--engine llama: --model must be a GGUF file; ${JSON.stringify(model)} does not exist`);
    }
    return model;
  }
  const { size, seed } = UP_LLAMA_DEFAULT_MODEL;
  const path = join(llmdCacheDir(), `llmd-${size}-spm-s${seed}.gguf`);
  if (existsSync(path)) return path;
  const tmp = `${path}.${process.pid}.${Date.now()}.tmp`;
  const created = await createModel({ out: tmp, params: size, seed });
  renameSync(tmp, path);
  log(
    `llmd up: generated ${path} (${(created.params / 1e6).toFixed(1)}M parameters, ${(created.bytes / 1e6).toFixed(1)} MB, ${Math.round(created.writeMs)} ms)`,
  );
  return path;
}
