/**
 * Output text of the sim engine (`--mode echo|random`, after llm-d-inference-sim
 * reference/engine.md §6.1 "Modes").
 *
 * - **echo**: the output is the echo tokens (the completion prompt, or the last user
 *   message of a chat), truncated to `max_tokens` (finish `length`), else complete
 *   (finish `stop`).
 * - **random**: words of a fixed list, drawn by a seeded PRNG (mulberry32) whose seed mixes
 *   the server `--seed`, the request `seed` and the prompt token ids, so the same
 *   seed + prompt + request seed always gives the same text. Length is `max_tokens`
 *   (finish `length`), unless `ignore_eos` is false and a seeded EOS comes first: after
 *   `max(1, min_tokens)` tokens every token is an EOS with probability
 *   {@link EOS_PROBABILITY} (a geometric length, mean ≈ 256 extra tokens), and the request
 *   ends there with finish `stop`. So short `max_tokens` (16–64) mostly run to `length`, and a
 *   chat request without `max_tokens` ends after a few hundred tokens instead of running to
 *   max-model-len.
 *   The first token is a word, later ones are ` word` (one token each with the sim
 *   tokenizer, so N output tokens are N words).
 */
import type { FinishReason, SamplingParams } from "../../engine.js";
import type { SimTokenizer } from "../../tokenizer.js";

/** Per-token EOS probability (0..1) of random mode without `ignore_eos`. */
export const EOS_PROBABILITY = 1 / 256;

/** The word list of random mode. */
export const WORDS: readonly string[] = (
  "the of and to in is was that for it with as on be at by this had not are but from or have an they which " +
  "one you were all we her she there would their been has when who will more no if out so said what up its " +
  "about into than them can only other new some could time these two may then do first any my now such like " +
  "our over man me even most made after also did many before must through back years where much your way well " +
  "down should because each just those people how too little state good very make world still own see men work " +
  "long get here between both life being under never day same another know while last might us great old year " +
  "off come since against go came right used take three model token cache block prefix decode prefill router " +
  "server request latency batch"
).split(" ");

/** Seeded PRNG, uniform in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The planned output of one request: its length, its end reason and its tokens in order. */
export interface TextPlan {
  /** output tokens (0..maxTokens) */
  readonly length: number;
  /** reason when `length` tokens have been produced */
  readonly reason: FinishReason;
  /** the next token id; called exactly `length` times, in order */
  next(): number;
}

/** Echo plan (see module doc). */
export function echoPlan(echo: readonly number[], params: SamplingParams): TextPlan {
  const length = Math.min(echo.length, params.maxTokens);
  let i = 0;
  return {
    length,
    reason: echo.length > params.maxTokens ? "length" : "stop",
    next: () => echo[i++]!,
  };
}

/** Word token ids for random mode, registered in the tokenizer. */
export class WordTokens {
  readonly first: number[];
  readonly rest: number[];
  constructor(tok: SimTokenizer) {
    this.first = WORDS.map((w) => tok.register(w));
    this.rest = WORDS.map((w) => tok.register(` ${w}`));
  }
}

function mixSeed(serverSeed: number, reqSeed: number | undefined, prompt: readonly number[]): number {
  let h = 0x811c9dc5 ^ (serverSeed >>> 0);
  h = Math.imul(h, 0x01000193);
  h ^= reqSeed === undefined ? 0x9e3779b9 : reqSeed >>> 0;
  h = Math.imul(h, 0x01000193);
  for (let i = 0; i < prompt.length; i++) {
    h ^= prompt[i]!;
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** Random plan (see module doc). */
export function randomPlan(
  words: WordTokens,
  serverSeed: number,
  prompt: readonly number[],
  params: SamplingParams,
): TextPlan {
  const rnd = mulberry32(mixSeed(serverSeed, params.seed, prompt));
  let length = params.maxTokens;
  let reason: FinishReason = "length";
  if (!params.ignoreEos) {
    const lo = Math.max(1, params.minTokens);
    // geometric number of tokens after `lo` before the EOS (inverse CDF, U in (0, 1])
    const extra = Math.floor(Math.log(1 - rnd()) / Math.log(1 - EOS_PROBABILITY));
    if (lo + extra < params.maxTokens) {
      length = lo + extra;
      reason = "stop";
    }
  }
  let i = 0;
  return {
    length,
    reason,
    next: () => {
      const w = Math.floor(rnd() * WORDS.length);
      return (i++ === 0 ? words.first : words.rest)[w]!;
    },
  };
}
