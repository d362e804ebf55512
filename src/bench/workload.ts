/**
 * Workloads: what the bench sends. A workload is a deterministic (seeded) list of prompts in
 * send order; the load runner decides when each is sent. Add a workload (e.g. `long-prompt`)
 * by implementing {@link WorkloadFactory} in its own file and registering it in
 * {@link WORKLOADS}.
 *
 * Token counts: prompts are made of whitespace-separated words from {@link WORDS} (plus a few
 * generated marker words). llmd's sim engine makes one whitespace-separated word exactly one
 * token, so the counts below are **exact for the sim** and **approximate for other
 * tokenizers** (a real BPE tokenizer usually needs 1–3 tokens per word; the chat API also
 * adds chat-template tokens).
 */
import { createRng, shuffleInPlace } from "./prng.js";
import { WORDS } from "./words.js";

/** One request of a workload, in send order. */
export interface WorkloadRequest {
  /** Position in send order, 0-based. */
  index: number;
  /** The prompt text (completions `prompt`; the single user message for chat). */
  prompt: string;
  /** Prompt length in tokens under the sim tokenizer (= whitespace-separated words). */
  promptTokens: number;
  /** Completion length to request, in tokens (sent as `max_tokens` with `ignore_eos: true`). */
  maxTokens: number;
  /** Prefix group (shared system prompt) the request belongs to, when the workload has groups. */
  group?: number;
}

/** A generated workload. */
export interface Workload {
  /** Workload name as on the command line, e.g. `shared-prefix`. */
  readonly name: string;
  /** The requests in send order; `requests.length` is the run's request count. */
  readonly requests: readonly WorkloadRequest[];
  /** The workload's parameters as reported under `config.workload` in the JSON report. */
  readonly params: Readonly<Record<string, unknown>>;
}

/** Options common to every workload. */
export interface WorkloadCommonOptions {
  /** Number of requests to generate; `undefined` = the workload's natural size. */
  requests?: number;
  /** Completion tokens per request. */
  outputTokens: number;
  /** PRNG seed. */
  seed: number;
}

/** Builds a workload from common options plus its own parameters (already validated). */
export type WorkloadFactory<P> = (common: WorkloadCommonOptions, params: P) => Workload;

/**
 * inference-perf `shared_prefix` parameters (reference/peers.md §5), lengths in tokens.
 */
export interface SharedPrefixParams {
  /** `num_groups`: number of distinct system prompts. Default 16. */
  groups: number;
  /** `num_prompts_per_group`: questions per system prompt. Default 8. */
  promptsPerGroup: number;
  /** `system_prompt_len`, tokens. Default 1024. */
  systemPromptTokens: number;
  /** `question_len`, tokens. Default 64. */
  questionTokens: number;
}

/** Defaults of {@link SharedPrefixParams}. */
export const SHARED_PREFIX_DEFAULTS: Readonly<SharedPrefixParams> = Object.freeze({
  groups: 16,
  promptsPerGroup: 8,
  systemPromptTokens: 1024,
  questionTokens: 64,
});

function requirePositiveInt(name: string, v: number): void {
  if (!Number.isInteger(v) || v < 1) throw new RangeError(`${name} must be a positive integer, got ${v}`);
}

function randomWords(rng: ReturnType<typeof createRng>, n: number, out: string[]): void {
  for (let i = 0; i < n; i++) out.push(WORDS[rng.int(WORDS.length)]!);
}

/**
 * `shared-prefix`: `groups` system prompts of `systemPromptTokens` tokens each, and per
 * request a question of `questionTokens` tokens; prompt = system + " " + question, so every
 * prompt has exactly `systemPromptTokens + questionTokens` sim tokens.
 *
 * - System prompt of group g starts with the marker word `sys-<seed>-<g>` (unique per group
 *   and seed), then random words: prompts of different groups share no prefix; a rerun with
 *   the same seed hits whatever the servers still cache from the previous run.
 * - Each question starts with the marker word `q-<seed>-<index>` (unique per request), so two
 *   requests share exactly their system prompt and nothing more.
 * - Order: a seeded shuffle of all (group, prompt) pairs. When `requests` exceeds
 *   `groups × promptsPerGroup`, further rounds use fresh shuffles (still fresh questions);
 *   when it is smaller, the first `requests` of the shuffle are sent.
 *
 * Throws `RangeError` for non-positive or non-integer parameters.
 */
export const sharedPrefixWorkload: WorkloadFactory<SharedPrefixParams> = (common, params) => {
  const { groups, promptsPerGroup, systemPromptTokens, questionTokens } = params;
  requirePositiveInt("groups", groups);
  requirePositiveInt("prompts-per-group", promptsPerGroup);
  requirePositiveInt("system-prompt-tokens", systemPromptTokens);
  requirePositiveInt("question-tokens", questionTokens);
  requirePositiveInt("output-tokens", common.outputTokens);
  const pairs = groups * promptsPerGroup;
  const count = common.requests ?? pairs;
  requirePositiveInt("requests", count);
  const seed = common.seed;

  const sysRng = createRng(seed, 1);
  const systems: string[] = [];
  for (let g = 0; g < groups; g++) {
    const words = [`sys-${seed}-${g}`];
    randomWords(sysRng, systemPromptTokens - 1, words);
    systems.push(words.join(" "));
  }

  const orderRng = createRng(seed, 2);
  const questionRng = createRng(seed, 3);
  const requests: WorkloadRequest[] = [];
  let round: number[] = [];
  for (let index = 0; index < count; index++) {
    if (round.length === 0) {
      round = shuffleInPlace(
        Array.from({ length: pairs }, (_, k) => k),
        orderRng,
      ).reverse();
    }
    const pair = round.pop()!;
    const group = Math.floor(pair / promptsPerGroup);
    const q = [`q-${seed}-${index}`];
    randomWords(questionRng, questionTokens - 1, q);
    requests.push({
      index,
      prompt: `${systems[group]} ${q.join(" ")}`,
      promptTokens: systemPromptTokens + questionTokens,
      maxTokens: common.outputTokens,
      group,
    });
  }
  return {
    name: "shared-prefix",
    requests,
    params: {
      num_groups: groups,
      num_prompts_per_group: promptsPerGroup,
      system_prompt_len: systemPromptTokens,
      question_len: questionTokens,
      output_len: common.outputTokens,
    },
  };
};

/**
 * `long-prompt` parameters: long prompts mixed with ongoing decodes — the workload that shows
 * prefill/decode interference (a long prefill in an engine step stalls the decodes sharing
 * that step) and what P/D disaggregation buys. Lengths in tokens.
 */
export interface LongPromptParams {
  /** prompt length of the long requests, tokens. Default 4096. */
  longPromptTokens: number;
  /** prompt length of the short (decode-heavy) requests, tokens. Default 64. */
  shortPromptTokens: number;
  /** fraction 0..1 of requests that are long. Default 0.25. */
  longFraction: number;
  /** completion tokens of the long requests (short ones use `outputTokens`). Default 8. */
  longOutputTokens: number;
}

/** Defaults of {@link LongPromptParams}. */
export const LONG_PROMPT_DEFAULTS: Readonly<LongPromptParams> = Object.freeze({
  longPromptTokens: 4096,
  shortPromptTokens: 64,
  longFraction: 0.25,
  longOutputTokens: 8,
});

/**
 * `long-prompt`: `requests` (default 64) requests in a seeded order, a `longFraction` of them
 * with `longPromptTokens`-token prompts and `longOutputTokens` outputs, the rest with
 * `shortPromptTokens`-token prompts and `outputTokens` outputs (the ongoing decodes). Every
 * prompt starts with a unique marker word, so no two requests share a prefix: every long
 * prompt is a full prefill. `group` is 1 for long requests and 0 for short ones.
 *
 * Throws `RangeError` for invalid parameters.
 */
export const longPromptWorkload: WorkloadFactory<LongPromptParams> = (common, params) => {
  const { longPromptTokens, shortPromptTokens, longFraction, longOutputTokens } = params;
  requirePositiveInt("long-prompt-tokens", longPromptTokens);
  requirePositiveInt("short-prompt-tokens", shortPromptTokens);
  requirePositiveInt("long-output-tokens", longOutputTokens);
  requirePositiveInt("output-tokens", common.outputTokens);
  if (!(longFraction >= 0 && longFraction <= 1))
    throw new RangeError(`long-fraction must be in 0..1, got ${longFraction}`);
  const count = common.requests ?? 64;
  requirePositiveInt("requests", count);
  const seed = common.seed;
  const nLong = Math.round(count * longFraction);
  const kinds = shuffleInPlace(
    Array.from({ length: count }, (_, i) => i < nLong),
    createRng(seed, 4),
  );
  const rng = createRng(seed, 5);
  const requests: WorkloadRequest[] = kinds.map((long, index) => {
    const n = long ? longPromptTokens : shortPromptTokens;
    const words = [`p-${seed}-${index}`];
    randomWords(rng, n - 1, words);
    return {
      index,
      prompt: words.join(" "),
      promptTokens: n,
      maxTokens: long ? longOutputTokens : common.outputTokens,
      group: long ? 1 : 0,
    };
  });
  return {
    name: "long-prompt",
    requests,
    params: {
      long_prompt_len: longPromptTokens,
      short_prompt_len: shortPromptTokens,
      long_fraction: longFraction,
      long_output_len: longOutputTokens,
      output_len: common.outputTokens,
    },
  };
};

/** Parameters of each workload, by name. */
export interface WorkloadParamsByName {
  "shared-prefix": SharedPrefixParams;
  "long-prompt": LongPromptParams;
}

/** Workload names accepted by `--workload`. */
export type WorkloadName = keyof WorkloadParamsByName;

/** Registry of workloads by name. */
export const WORKLOADS: Readonly<{ [K in WorkloadName]: WorkloadFactory<WorkloadParamsByName[K]> }> =
  Object.freeze({
    "shared-prefix": sharedPrefixWorkload,
    "long-prompt": longPromptWorkload,
  });

/**
 * Splits a prompt into sim tokens (whitespace-separated words). Exact for llmd's sim
 * tokenizer; an approximation for real tokenizers.
 */
export function simTokens(text: string): string[] {
  return text.split(/\s+/).filter((w) => w.length > 0);
}
