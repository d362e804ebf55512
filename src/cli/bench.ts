/**
 * `llmd bench` — load generator and report against llmd or any OpenAI-compatible endpoint
 * (see src/bench). Prints a table to stdout; `--json FILE` also writes the JSON report.
 * Exit status 1 when no request completed; 130 when stopped early by Ctrl-C (the report of
 * what was sent is still printed and written; a second Ctrl-C quits at once).
 */
import { writeFile } from "node:fs/promises";
import cliProgress from "cli-progress";
import { type Command, InvalidArgumentError, Option } from "commander";
import { DEFAULT_BENCH_URL, DEFAULT_TIMEOUT_MS, formatReport, runBench } from "../bench/index.js";
import type { BenchOptions } from "../bench/index.js";

const int = (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError("must be a positive integer");
  return n;
};
const positive = (v: string): number => {
  const n = Number(v);
  if (!(n > 0) || !Number.isFinite(n)) throw new InvalidArgumentError("must be a positive number");
  return n;
};
const anyInt = (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n)) throw new InvalidArgumentError("must be an integer");
  return n;
};
const urlList = (v: string): string[] => {
  const list = v
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  for (const u of list) {
    try {
      new URL(u);
    } catch {
      throw new InvalidArgumentError(`${u} is not a URL`);
    }
  }
  return list;
};

/** Raw commander options of `llmd bench`. */
interface BenchFlags {
  url: string;
  model?: string;
  api: "completions" | "chat";
  workload: "shared-prefix" | "long-prompt";
  longPromptTokens: number;
  shortPromptTokens: number;
  longFraction: number;
  longOutputTokens: number;
  groups: number;
  promptsPerGroup: number;
  systemPromptTokens: number;
  questionTokens: number;
  outputTokens: number;
  requests?: number;
  rate?: number;
  concurrency?: number;
  seed: number;
  stream: boolean;
  timeout: number;
  blockSize: number;
  json?: string;
  metricsUrls?: string[];
  apiKey?: string;
  quiet?: boolean;
}

/** Maps parsed flags to {@link BenchOptions}. */
export function benchOptionsFromFlags(f: BenchFlags): BenchOptions {
  return {
    url: f.url,
    model: f.model,
    api: f.api,
    workload: f.workload,
    sharedPrefix: {
      groups: f.groups,
      promptsPerGroup: f.promptsPerGroup,
      systemPromptTokens: f.systemPromptTokens,
      questionTokens: f.questionTokens,
    },
    longPrompt: {
      longPromptTokens: f.longPromptTokens,
      shortPromptTokens: f.shortPromptTokens,
      longFraction: f.longFraction,
      longOutputTokens: f.longOutputTokens,
    },
    outputTokens: f.outputTokens,
    requests: f.requests,
    rate: f.rate,
    concurrency: f.concurrency,
    seed: f.seed,
    stream: f.stream,
    timeoutMs: f.timeout,
    blockSize: f.blockSize,
    metricsUrls: f.metricsUrls,
    headers: f.apiKey ? { authorization: `Bearer ${f.apiKey}` } : undefined,
  };
}

/** Where `llmd bench` writes (tests pass their own). */
export interface BenchIo {
  /** Receives the report table. Default `process.stdout`. */
  stdout?: { write(text: string): unknown };
}

/**
 * Adds the `bench` command to a commander program.
 * @param program the root `llmd` command
 * @param io output override (default: the process's stdout)
 */
export function registerBench(program: Command, io: BenchIo = {}): void {
  program
    .command("bench")
    .description(
      "Send a seeded workload to an OpenAI-compatible endpoint and report TTFT, ITL, E2E, throughput, " +
        "the fleet prefix-cache hit rate and the workload's oracle hit rate. Token counts are exact for " +
        "llmd's sim engine (one word = one token) and approximate for other tokenizers.",
    )
    .option("--url <url>", "base URL of the endpoint", DEFAULT_BENCH_URL)
    .option("--model <id>", "model (default: first id of GET {url}/v1/models)")
    .addOption(
      new Option("--api <api>", "OpenAI API").choices(["completions", "chat"]).default("completions"),
    )
    .addOption(
      new Option("--workload <name>", "workload")
        .choices(["shared-prefix", "long-prompt"])
        .default("shared-prefix"),
    )
    .option("--groups <n>", "shared-prefix num_groups", int, 16)
    .option("--prompts-per-group <n>", "shared-prefix num_prompts_per_group", int, 8)
    .option("--system-prompt-tokens <n>", "system prompt length, tokens", int, 1024)
    .option("--question-tokens <n>", "question length, tokens", int, 64)
    .option("--long-prompt-tokens <n>", "long-prompt: prompt length of long requests, tokens", int, 4096)
    .option("--short-prompt-tokens <n>", "long-prompt: prompt length of short requests, tokens", int, 64)
    .option("--long-fraction <f>", "long-prompt: fraction 0..1 of long requests", Number, 0.25)
    .option("--long-output-tokens <n>", "long-prompt: completion tokens of long requests", int, 8)
    .option("--output-tokens <n>", "completion tokens (max_tokens with ignore_eos)", int, 32)
    .option("--requests <n>", "requests to send (default groups × prompts-per-group)", int)
    .addOption(
      new Option("--rate <r>", "Poisson arrival rate, requests/s (seeded)")
        .argParser(positive)
        .conflicts("concurrency"),
    )
    .addOption(new Option("--concurrency <n>", "closed-loop concurrency (default 8)").argParser(int))
    .option("--seed <n>", "PRNG seed for prompts, order and arrivals", anyInt, 1)
    .option("--no-stream", "non-streaming requests (no TTFT/ITL)")
    .option("--timeout <ms>", "per-request timeout, ms", int, DEFAULT_TIMEOUT_MS)
    .option("--block-size <n>", "KV block size for the oracle hit rate, tokens", int, 16)
    .option("--json <file>", "also write the report as JSON to FILE")
    .option("--metrics-urls <urls>", "comma-separated model-server /metrics URLs", urlList)
    .option("--api-key <key>", "send Authorization: Bearer KEY")
    .option("--quiet", "no progress bar")
    .action(async (flags: BenchFlags) => {
      const showBar = !flags.quiet && process.stderr.isTTY === true;
      const bar = showBar
        ? new cliProgress.SingleBar(
            {
              stream: process.stderr,
              format: "bench [{bar}] {value}/{total} requests | {duration}s",
              hideCursor: true,
            },
            cliProgress.Presets.shades_classic,
          )
        : undefined;
      let started = false;
      // Ctrl-C: stop sending, abort in-flight requests, still print the report of what was sent.
      const controller = new AbortController();
      const onSigint = (): void => {
        if (controller.signal.aborted) process.exit(130);
        process.stderr.write("\nllmd bench: interrupted; reporting what was sent (Ctrl-C again to quit)\n");
        controller.abort();
      };
      process.on("SIGINT", onSigint);
      try {
        const report = await runBench(
          { ...benchOptionsFromFlags(flags), signal: controller.signal },
          {
            onProgress(done, total) {
              if (!bar) return;
              if (!started) {
                bar.start(total, done);
                started = true;
              } else bar.update(done);
            },
          },
        );
        bar?.stop();
        if (flags.json) await writeFile(flags.json, `${JSON.stringify(report, null, 2)}\n`);
        (io.stdout ?? process.stdout).write(formatReport(report));
        if (report.stopped_early) process.exitCode = 130;
        else if (report.completed === 0) process.exitCode = 1;
      } finally {
        process.off("SIGINT", onSigint);
        if (started) bar?.stop();
      }
    });
}
