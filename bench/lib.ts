/**
 * Shared helpers of the benchmark scripts: start `llmd` processes from sources, wait for
 * readiness, percentiles. Benchmarks print figures and ratios measured in one run; they
 * never assert timings.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { createServer } from "node:net";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");

/** A free TCP port on 127.0.0.1. */
export async function freePort(): Promise<number> {
  const s = createServer();
  s.listen(0, "127.0.0.1");
  await once(s, "listening");
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/**
 * Command line of `llmd`: the build (`dist/`, run `npm run build` first so it is current) when
 * it exists, else the sources through tsx (slower to start, same code).
 */
export function llmdCommand(): string[] {
  const built = join(ROOT, "dist", "cli", "main.js");
  return existsSync(built) ? [built] : ["--import", "tsx", join(ROOT, "src/cli/main.ts")];
}

/** Starts `llmd <args>` (see {@link llmdCommand}). */
export function llmd(args: string[], quiet = true): ChildProcess {
  const child = spawn(process.execPath, [...llmdCommand(), ...args], {
    stdio: quiet ? ["ignore", "ignore", "inherit"] : "inherit",
    env: { ...process.env, LLMD_LOG_LEVEL: "warn" },
  });
  return child;
}

/** Polls `url` until it answers 200 and `ok(body)` holds, up to `timeoutMs`. */
export async function waitReady(
  url: string,
  ok: (body: string) => boolean = () => true,
  timeoutMs = 60_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      const r = await fetch(url);
      if (r.status === 200 && ok(await r.text())) return;
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} not ready after ${timeoutMs} ms`);
}

/** Kills children and waits for them to exit. */
export async function killAll(children: ChildProcess[]): Promise<void> {
  await Promise.all(
    children.map(async (c) => {
      if (c.exitCode !== null || c.signalCode !== null) return;
      c.kill("SIGTERM");
      const t = setTimeout(() => c.kill("SIGKILL"), 3000);
      await once(c, "exit");
      clearTimeout(t);
    }),
  );
}

/** Percentile (0..100) of a sample, nearest-rank on a sorted copy. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const s = [...values].sort((a, b) => a - b);
  const i = Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1));
  return s[i]!;
}

/**
 * Runs `llmd up <upArgs>` on a free router port, waits for "router ready", runs
 * `llmd bench --url <router> <benchArgs> --json <tmp> --quiet`, stops the stack and returns the
 * bench's JSON report.
 * @throws Error when the stack exits early or the bench exits non-zero
 */
export async function benchAgainstStack<R>(upArgs: string[], benchArgs: string[]): Promise<R> {
  const port = await freePort();
  const first = 20000 + Math.floor(Math.random() * 20000);
  const env = { ...process.env, LLMD_LOG_LEVEL: "warn" };
  const up = spawn(
    process.execPath,
    [...llmdCommand(), "up", "--port", String(port), "--first-server-port", String(first), ...upArgs],
    { cwd: ROOT, stdio: ["ignore", "pipe", "inherit"], env },
  );
  try {
    await new Promise<void>((resolve, reject) => {
      createInterface({ input: up.stdout! }).on("line", (l) => {
        if (l.includes("router ready")) resolve();
      });
      up.once("exit", (c) => reject(new Error(`llmd up exited ${c}`)));
    });
    const out = join(mkdtempSync(join(tmpdir(), "llmd-bench-")), "report.json");
    const bench = spawn(
      process.execPath,
      [
        ...llmdCommand(),
        "bench",
        "--url",
        `http://127.0.0.1:${port}`,
        ...benchArgs,
        "--json",
        out,
        "--quiet",
      ],
      { cwd: ROOT, stdio: ["ignore", "ignore", "inherit"], env },
    );
    const [code] = (await once(bench, "exit")) as [number | null];
    if (code !== 0) throw new Error(`llmd bench exited ${code}`);
    return JSON.parse(readFileSync(out, "utf8")) as R;
  } finally {
    await killAll([up]);
  }
}
