import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { discoveryFileText, parseDiscoveryFile, watchDiscoveryFile } from "./discovery-file.js";

test("parses llm-d's file-discovery format (YAML, port as string, labels)", () => {
  const eps = parseDiscoveryFile(`endpoints:
- name: vllm-0
  address: 10.0.0.1
  port: "8000"
  labels:
    llm-d.ai/role: decode
- name: vllm-1
  namespace: prod
  address: 10.0.0.2
  port: 8200
`);
  assert.equal(eps.length, 2);
  assert.deepEqual(eps[0], {
    id: "default/vllm-0",
    name: "vllm-0",
    namespace: "default",
    address: "10.0.0.1",
    port: 8000,
    hostPort: "10.0.0.1:8000",
    labels: { "llm-d.ai/role": "decode" },
  });
  assert.equal(eps[1]!.id, "prod/vllm-1");
  assert.equal(eps[1]!.port, 8200);
});

test("unknown fields, bad ports and duplicates are errors that name the problem", () => {
  assert.throws(
    () => parseDiscoveryFile("endpoints:\n- {name: a, address: x, port: '1', weight: 3}\n"),
    /endpoints\.0/,
  );
  assert.throws(
    () => parseDiscoveryFile("endpoints:\n- {name: a, address: x, port: 'http'}\n"),
    /endpoints\.0\.port/,
  );
  assert.throws(
    () => parseDiscoveryFile("endpoints:\n- {name: a, address: x, port: 70000}\n"),
    /out of range/,
  );
  assert.throws(
    () =>
      parseDiscoveryFile("endpoints:\n- {name: a, address: x, port: 1}\n- {name: a, address: y, port: 2}\n"),
    /duplicate endpoint default\/a/,
  );
});

test("round-trips the text written by llmd up and reloads on change", async () => {
  const dir = mkdtempSync(join(tmpdir(), "llmd-disc-"));
  const f = join(dir, "e.json");
  writeFileSync(f, discoveryFileText([{ name: "s0", address: "127.0.0.1", port: 9001 }]));
  const seen: number[] = [];
  let resolveSecond!: () => void;
  const second = new Promise<void>((r) => {
    resolveSecond = r;
  });
  const stop = watchDiscoveryFile(
    f,
    (eps) => {
      seen.push(eps.length);
      if (seen.length >= 2 && eps.length === 2) resolveSecond();
    },
    { watch: true },
  );
  assert.deepEqual(seen, [1]);
  writeFileSync(
    f,
    discoveryFileText([
      { name: "s0", address: "127.0.0.1", port: 9001 },
      { name: "s1", address: "127.0.0.1", port: 9002 },
    ]),
  );
  await second;
  stop();
  assert.equal(seen.at(-1), 2);
});
