import assert from "node:assert/strict";
import { test } from "node:test";
import { LONG_PROMPT_DEFAULTS, longPromptWorkload, simTokens } from "./workload.js";

test("long-prompt: the long fraction, exact token counts, unique prefixes, seeded order", () => {
  const w = longPromptWorkload(
    { requests: 40, outputTokens: 32, seed: 7 },
    { ...LONG_PROMPT_DEFAULTS, longPromptTokens: 500 },
  );
  assert.equal(w.requests.length, 40);
  const long = w.requests.filter((r) => r.group === 1);
  assert.equal(long.length, 10, "25% long");
  for (const r of w.requests) {
    assert.equal(simTokens(r.prompt).length, r.promptTokens);
    assert.equal(r.promptTokens, r.group === 1 ? 500 : 64);
    assert.equal(r.maxTokens, r.group === 1 ? 8 : 32);
  }
  const firstWords = new Set(w.requests.map((r) => simTokens(r.prompt)[0]));
  assert.equal(firstWords.size, 40, "no two prompts share a first token");
  const again = longPromptWorkload(
    { requests: 40, outputTokens: 32, seed: 7 },
    { ...LONG_PROMPT_DEFAULTS, longPromptTokens: 500 },
  );
  assert.deepEqual(
    again.requests.map((r) => r.group),
    w.requests.map((r) => r.group),
  );
  assert.throws(
    () => longPromptWorkload({ outputTokens: 1, seed: 1 }, { ...LONG_PROMPT_DEFAULTS, longFraction: 2 }),
    /long-fraction/,
  );
});
