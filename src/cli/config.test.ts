import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { Command } from "commander";
import { parse } from "yaml";
import { registerConfig, runConfigCheck } from "./config.js";

const FIXTURES = fileURLToPath(new URL("../../../shared/fixtures/epp-configs", import.meta.url));

function capture() {
  const out = { stdout: "", stderr: "" };
  const io = {
    stdout: (t: string) => {
      out.stdout += t;
    },
    stderr: (t: string) => {
      out.stderr += t;
    },
  };
  return { out, io };
}

describe("llmd config check", () => {
  for (const f of ["epp-config.yaml", "sim-epp-config.yaml"]) {
    it(`${f}: exit 0, resolved YAML with defaults`, () => {
      const { out, io } = capture();
      assert.equal(runConfigCheck(join(FIXTURES, f), io), 0);
      assert.equal(out.stderr, "");
      const doc = parse(out.stdout);
      assert.equal(doc.apiVersion, "llm-d.ai/v1alpha1");
      assert.equal(doc.kind, "EndpointPickerConfig");
      assert.deepEqual(doc.schedulingProfiles[0].plugins, [
        { pluginRef: "decode-filter" },
        { pluginRef: "max-score-picker" },
        { pluginRef: "prefix-cache-scorer", weight: 2 },
      ]);
      assert.ok(doc.plugins.some((p: { type: string }) => p.type === "token-producer"));
      assert.equal(doc.requestHandler.parsers.length, 4);
      assert.equal(doc.flowControl.saturationDetector.pluginRef, "utilization-detector");
    });
  }

  it("epp-precise-prefix-cache-config.yaml: exit 0, precise producer and both data-layer sources resolved", () => {
    const { out, io } = capture();
    assert.equal(runConfigCheck(join(FIXTURES, "epp-precise-prefix-cache-config.yaml"), io), 0);
    const doc = parse(out.stdout);
    const producer = doc.plugins.find(
      (p: { type: string }) => p.type === "precise-prefix-cache-producer",
    );
    assert.equal(producer.parameters.tokenProcessorConfig.blockSize, 64);
    assert.deepEqual(
      doc.dataLayer.sources.map((s: { pluginRef: string }) => s.pluginRef),
      ["metrics-data-source", "endpoint-notification-source"],
    );
    const src = doc.plugins.find((p: { type: string }) => p.type === "metrics-data-source");
    assert.equal(src.parameters.path, "/metrics");
  });

  it("an unknown field: exit 1 naming the field path", () => {
    const dir = mkdtempSync(join(tmpdir(), "cfg-"));
    const file = join(dir, "bad.yaml");
    writeFileSync(
      file,
      "apiVersion: llm-d.ai/v1alpha1\nkind: EndpointPickerConfig\nplugins:\n- type: queue-scorer\n- type: decode-filter\n- type: max-score-picker\n  parameters:\n    foo: 1\n",
    );
    const { out, io } = capture();
    assert.equal(runConfigCheck(file, io), 1);
    assert.equal(out.stderr, "error: plugins[2].parameters.foo: unknown field\n");
  });

  it("a missing file: exit 1 naming the path", () => {
    const { out, io } = capture();
    assert.equal(runConfigCheck("/nonexistent/x.yaml", io), 1);
    assert.match(out.stderr, /^error: cannot read config file \/nonexistent\/x\.yaml/);
  });

  it("deprecated types: exit 0 with a warning on stderr", () => {
    const dir = mkdtempSync(join(tmpdir(), "cfg-"));
    const file = join(dir, "old.yaml");
    writeFileSync(
      file,
      "apiVersion: inference.networking.x-k8s.io/v1alpha1\nkind: EndpointPickerConfig\nplugins:\n- type: by-label\n  parameters: {label: gpu, validValues: [a100]}\n- type: queue-scorer\n",
    );
    const { out, io } = capture();
    assert.equal(runConfigCheck(file, io), 0);
    assert.match(
      out.stderr,
      /^warning: apiVersion inference\.networking\.x-k8s\.io\/v1alpha1 is deprecated/m,
    );
    assert.match(out.stderr, /^warning: plugins\[0\]\.type: "by-label" is deprecated/m);
  });

  it("is wired as `config check FILE` on a commander program", async () => {
    const { out, io } = capture();
    const program = new Command().exitOverride();
    registerConfig(program, io);
    const before = process.exitCode;
    try {
      const bad = join(mkdtempSync(join(tmpdir(), "llmd-cfg-")), "bad.yaml");
      writeFileSync(
        bad,
        "apiVersion: llm-d.ai/v1alpha1\nkind: EndpointPickerConfig\nplugins:\n- type: no-such-plugin\n",
      );
      await program.parseAsync(["node", "llmd", "config", "check", bad]);
      assert.equal(process.exitCode, 1);
      assert.match(out.stderr, /unknown plugin type "no-such-plugin"/);
      await program.parseAsync(["node", "llmd", "config", "check", join(FIXTURES, "epp-config.yaml")]);
      assert.equal(process.exitCode, 0);
      assert.equal(parse(out.stdout).kind, "EndpointPickerConfig");
    } finally {
      process.exitCode = before;
    }
  });
});
