/**
 * Property-based fuzzing of the request parser and validator (fast-check): random JSON
 * values, random objects shaped like OpenAI requests, and mutated valid bodies (bytes cut,
 * flipped, duplicated). Every input either parses or throws an ApiError with a 4xx status
 * and the OpenAI error shape — never another exception.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { ApiError } from "./errors.js";
import { parseRequest } from "./openai.js";

const VALID = [
  {
    kind: "completions" as const,
    body: {
      model: "m",
      prompt: "hello there",
      max_tokens: 4,
      stream: true,
      stream_options: { include_usage: true },
    },
  },
  {
    kind: "chat" as const,
    body: {
      model: "m",
      messages: [{ role: "user", content: "hi" }],
      max_completion_tokens: 3,
      temperature: 0.5,
    },
  },
];

function check(kind: "completions" | "chat", raw: Buffer | string): void {
  try {
    parseRequest(kind, raw);
  } catch (e) {
    assert.ok(e instanceof ApiError, `non-ApiError thrown: ${String(e)}`);
    assert.ok(e.status >= 400 && e.status < 500, `status ${e.status}`);
    const b = e.toBody();
    assert.equal(typeof b.error.message, "string");
    assert.equal(typeof b.error.type, "string");
    assert.ok("param" in b.error && "code" in b.error);
  }
}

const kinds = fc.constantFrom("completions" as const, "chat" as const);
const fieldValue = fc.oneof(
  fc.jsonValue(),
  fc.string(),
  fc.integer(),
  fc.double(),
  fc.constant(null),
  fc.array(fc.jsonValue(), { maxLength: 4 }),
);
const shaped = fc.record(
  {
    model: fieldValue,
    prompt: fieldValue,
    messages: fc.oneof(
      fieldValue,
      fc.array(fc.record({ role: fieldValue, content: fieldValue }, { requiredKeys: [] }), { maxLength: 3 }),
    ),
    max_tokens: fieldValue,
    stream: fieldValue,
    stream_options: fieldValue,
    temperature: fieldValue,
    stop: fieldValue,
    n: fieldValue,
  },
  { requiredKeys: [] },
);

test("random JSON values: parsed or a 4xx ApiError", () => {
  fc.assert(
    fc.property(kinds, fc.jsonValue(), (kind, v) => check(kind, JSON.stringify(v) ?? "null")),
    { numRuns: 3000 },
  );
});

test("random request-shaped objects: parsed or a 4xx ApiError", () => {
  fc.assert(
    fc.property(kinds, shaped, (kind, v) => check(kind, JSON.stringify(v))),
    { numRuns: 3000 },
  );
});

test("mutated valid bodies (cut, flipped, duplicated bytes): parsed or a 4xx ApiError", () => {
  fc.assert(
    fc.property(
      fc.constantFrom(...VALID),
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 }), fc.constantFrom("flip", "cut", "dup")), {
        maxLength: 6,
      }),
      (base, muts) => {
        let buf = Buffer.from(JSON.stringify(base.body));
        for (const [pos, byte, op] of muts) {
          if (buf.length === 0) break;
          const i = pos % buf.length;
          if (op === "flip") buf[i] = byte;
          else if (op === "cut") buf = Buffer.concat([buf.subarray(0, i), buf.subarray(i + 1)]);
          else buf = Buffer.concat([buf.subarray(0, i), buf.subarray(i, i + 1), buf.subarray(i)]);
        }
        check(base.kind, buf);
      },
    ),
    { numRuns: 3000 },
  );
});
