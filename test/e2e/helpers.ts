/**
 * Helpers for multi-process e2e tests: run the `llmd` CLI from sources (tsx) as a child
 * process on 127.0.0.1, find free ports, wait for output lines, always clean up.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { createServer } from "node:net";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const CLI = join(ROOT, "src", "cli", "main.ts");

/** A free TCP port on 127.0.0.1 (bound then released). */
export async function freePort(): Promise<number> {
  const s = createServer();
  s.listen(0, "127.0.0.1");
  await once(s, "listening");
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** A running `llmd` child with its collected output. */
export interface LlmdChild {
  child: ChildProcess;
  lines: string[];
  /** resolves with the first output line matching `re` (stdout or stderr); rejects on exit or after `timeoutMs` */
  waitForLine(re: RegExp, timeoutMs?: number): Promise<string>;
  /** SIGTERM, then SIGKILL after 5 s; resolves on exit with the exit code */
  stop(): Promise<number | null>;
}

/** Starts `llmd <args>` from sources. */
export function runLlmd(args: string[], env: Record<string, string> = {}): LlmdChild {
  const child = spawn(process.execPath, ["--import", "tsx", CLI, ...args], {
    cwd: ROOT,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, LLMD_LOG_LEVEL: "warn", ...env },
  });
  const lines: string[] = [];
  const waiters: { re: RegExp; resolve: (l: string) => void }[] = [];
  for (const s of [child.stdout!, child.stderr!]) {
    createInterface({ input: s }).on("line", (l) => {
      lines.push(l);
      for (const w of [...waiters]) {
        if (w.re.test(l)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(l);
        }
      }
    });
  }
  let exited: number | null | undefined;
  const exitP = once(child, "exit").then(([code]) => {
    exited = code as number | null;
    return exited;
  });
  return {
    child,
    lines,
    waitForLine(re, timeoutMs = 60_000) {
      const hit = lines.find((l) => re.test(l));
      if (hit) return Promise.resolve(hit);
      return new Promise((resolve, reject) => {
        const t = setTimeout(
          () => reject(new Error(`timeout waiting for ${re}; output:\n${lines.join("\n")}`)),
          timeoutMs,
        );
        waiters.push({
          re,
          resolve: (l) => {
            clearTimeout(t);
            resolve(l);
          },
        });
        void exitP.then((code) => {
          clearTimeout(t);
          reject(new Error(`llmd exited (${code}) before ${re}; output:\n${lines.join("\n")}`));
        });
      });
    },
    async stop() {
      if (exited !== undefined) return exited;
      child.kill("SIGTERM");
      const t = setTimeout(() => child.kill("SIGKILL"), 5000);
      const code = await exitP;
      clearTimeout(t);
      return code;
    },
  };
}
