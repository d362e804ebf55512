import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseDurationMs } from "./duration.js";

describe("parseDurationMs", () => {
  it("parses Go durations and plain ms", () => {
    assert.equal(parseDurationMs("250us"), 0.25);
    assert.equal(parseDurationMs("12ms"), 12);
    assert.equal(parseDurationMs("1s"), 1000);
    assert.equal(parseDurationMs("1.5s"), 1500);
    assert.equal(parseDurationMs("1m30s"), 90_000);
    assert.equal(parseDurationMs("500ns"), 0.0005);
    assert.equal(parseDurationMs("0"), 0);
    assert.equal(parseDurationMs("30"), 30);
    assert.equal(parseDurationMs(7), 7);
  });
  it("rejects garbage", () => {
    for (const bad of ["", "abc", "12 ms", "-1ms", "5x", "ms"])
      assert.throws(() => parseDurationMs(bad), bad);
    assert.throws(() => parseDurationMs(-1));
  });
});
