import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { MAX_VOCAB, renderChatTemplate, SimTokenizer, splitTokens, tokenId } from "./tokenizer.js";

describe("SimTokenizer", () => {
  it("splits into whitespace-led tokens and attaches trailing whitespace to the last", () => {
    assert.deepEqual(splitTokens("hello  world\n foo "), ["hello", "  world", "\n foo "]);
    assert.deepEqual(splitTokens("  lead"), ["  lead"]);
    assert.deepEqual(splitTokens("   "), ["   "]);
    assert.deepEqual(splitTokens(""), []);
  });

  it("counts N space-separated words as exactly N tokens", () => {
    const t = new SimTokenizer();
    for (const n of [1, 2, 7, 100, 1000]) {
      const text = Array.from({ length: n }, (_, i) => `w${i % 13}`).join(" ");
      assert.equal(t.encode(text).length, n);
    }
  });

  it("round-trips any string: decode(encode(t)) === t", () => {
    const t = new SimTokenizer();
    fc.assert(
      fc.property(fc.string({ unit: "grapheme", maxLength: 200 }), (s) => {
        assert.equal(t.decode(t.encode(s)), s);
      }),
      { numRuns: 300 },
    );
    const tricky = "\t tabs\nnew lines  émoji 🎉 and\u00a0nbsp  ";
    assert.equal(t.decode(t.encode(tricky)), tricky);
  });

  it("uses FNV-1a 32-bit ids masked to 31 bits", () => {
    // FNV-1a("a") = 0xe40c292c; masked → 0x640c292c
    assert.equal(tokenId("a"), 0xe40c292c & 0x7fffffff);
    assert.equal(tokenId(""), 0x811c9dc5 & 0x7fffffff);
    const t = new SimTokenizer();
    const ids = t.encode("a a");
    assert.deepEqual(ids, [tokenId("a"), tokenId(" a")]);
    for (const id of ids) assert.ok(id >= 0 && id <= 0x7fffffff);
    // deterministic across instances
    assert.deepEqual(new SimTokenizer().encode("x y z"), new SimTokenizer().encode("x y z"));
  });

  it("hashes the UTF-8 bytes (non-ASCII included)", () => {
    const ref = (s: string) => {
      let h = 0x811c9dc5;
      for (const b of Buffer.from(s, "utf8")) h = Math.imul(h ^ b, 0x01000193);
      return h & 0x7fffffff;
    };
    fc.assert(
      fc.property(fc.string({ unit: "grapheme", maxLength: 30 }), (s) => {
        assert.equal(tokenId(s), ref(s));
      }),
      { numRuns: 300 },
    );
    assert.equal(tokenId(" émoji🎉"), ref(" émoji🎉"));
  });

  it("decodes unknown ids to a placeholder", () => {
    const t = new SimTokenizer();
    assert.equal(t.decodeOne(12345), "<|tok_12345|>");
    assert.ok(MAX_VOCAB >= 1 << 20);
  });

  it("renders the documented chat template", () => {
    const msgs = [
      { role: "system", content: "be brief" },
      { role: "user", content: "hi there" },
    ];
    assert.equal(renderChatTemplate(msgs), "<|system|>\nbe brief\n<|user|>\nhi there\n<|assistant|>\n");
    assert.equal(renderChatTemplate(msgs, false), "<|system|>\nbe brief\n<|user|>\nhi there\n");
    const t = new SimTokenizer();
    const ids = t.encode(t.applyChatTemplate(msgs));
    // <|system|> | \nbe | brief | \n<|user|> | \nhi | there | \n<|assistant|>\n
    assert.equal(ids.length, 7);
  });
});
