import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";

const repo = fileURLToPath(new URL("../../", import.meta.url));
const entry = `
import { Command } from "commander";
import { registerServe } from "./src/cli/serve.ts";
const p = new Command();
p.exitOverride((e) => process.exit(e.exitCode));
registerServe(p);
await p.parseAsync(process.argv);
`;

function serve(args: string[]): ChildProcess {
  return spawn(
    process.execPath,
    ["--import", "tsx", "--input-type=module", "-e", entry, "x", "serve", ...args],
    {
      cwd: repo,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, LLMD_LOG_LEVEL: "info" },
    },
  );
}

/**
 * Resolves with the URL from the "listening" log line (on stdout or stderr: the logger's
 * destination is not ours to fix); rejects when the child exits first.
 */
function listening(child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    let done = false;
    for (const stream of [child.stdout!, child.stderr!]) {
      createInterface({ input: stream }).on("line", (line) => {
        const m = /listening on (http:\/\/[^ ]+) /.exec(line);
        if (m && !done) {
          done = true;
          resolve(m[1]!);
        }
      });
    }
    child.once("exit", (code) => {
      if (!done) reject(new Error(`serve exited (code ${code}) before listening`));
    });
  });
}

describe("llmd serve", () => {
  it("starts with the given flags, serves, and exits 0 on SIGTERM", async () => {
    const child = serve([
      "--port",
      "0",
      "--model",
      "m/x",
      "--served-model-name",
      "a1",
      "a2",
      "--max-model-len",
      "300",
      "--num-gpu-blocks",
      "77",
      "--block-size",
      "8",
      "--mode",
      "echo",
      "--inter-token-latency",
      "250us",
      "--prefill-overhead",
      "0",
      "--time-scale",
      "10",
      "--pod-name",
      "pod-7",
    ]);
    try {
      const url = await listening(child);
      const models = (await (await fetch(`${url}/v1/models`)).json()) as {
        data: { id: string; max_model_len: number }[];
      };
      assert.deepEqual(
        models.data.map((m) => m.id),
        ["a1", "a2"],
      );
      assert.equal(models.data[0]!.max_model_len, 300);
      const r = await fetch(`${url}/v1/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "a2", prompt: "echo me back", max_tokens: 10 }),
      });
      assert.equal(r.headers.get("x-inference-pod"), "pod-7");
      const body = (await r.json()) as { choices: { text: string }[] };
      assert.equal(body.choices[0]!.text, "echo me back");
      const metrics = await (await fetch(`${url}/metrics`)).text();
      assert.match(metrics, /vllm:cache_config_info\{block_size="8",[^}]*num_gpu_blocks="77"/);
      const exited = once(child, "exit");
      child.kill("SIGTERM");
      const [code] = await exited;
      assert.equal(code, 0);
    } finally {
      if (child.exitCode === null) child.kill("SIGKILL");
    }
  });

  it("an unknown engine, or --engine llama without a model file, exits 2 with a clear message", async () => {
    for (const [args, re] of [
      [["--engine", "tpu"], /unknown engine "tpu"/],
      [["--engine", "llama", "--model", "/nonexistent/model.gguf"], /^llmd serve: .+/m],
    ] as const) {
      const child = serve([...args, "--port", "0"]);
      let err = "";
      child.stderr!.on("data", (d) => {
        err += d;
      });
      const [code] = await once(child, "exit");
      assert.equal(code, 2, `${args.join(" ")}: ${err}`);
      assert.match(err, re);
    }
  });

  it("rejects a malformed duration", async () => {
    const child = serve(["--inter-token-latency", "12 parsecs", "--port", "0"]);
    let err = "";
    child.stderr!.on("data", (d) => {
      err += d;
    });
    const [code] = await once(child, "exit");
    assert.notEqual(code, 0);
    assert.match(err, /invalid duration/);
  });
});
