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

/** Parameters of each workload, by name (add `"long-prompt": LongPromptParams` here). */
export interface WorkloadParamsByName {
  "shared-prefix": SharedPrefixParams;
}

/** Workload names accepted by `--workload`. */
export type WorkloadName = keyof WorkloadParamsByName;

/** Registry of workloads by name. */
export const WORKLOADS: Readonly<{ [K in WorkloadName]: WorkloadFactory<WorkloadParamsByName[K]> }> =
  Object.freeze({
    "shared-prefix": sharedPrefixWorkload,
  });

/**
 * Splits a prompt into sim tokens (whitespace-separated words). Exact for llmd's sim
 * tokenizer; an approximation for real tokenizers.
 */
export function simTokens(text: string): string[] {
  return text.split(/\s+/).filter((w) => w.length > 0);
}
