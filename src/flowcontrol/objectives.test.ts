import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { loadObjectivesFile, ObjectiveStore, parseObjectivesYaml } from "./objectives.js";

const FILE = `
- apiVersion: llm-d.ai/v1alpha2
  kind: InferenceObjective
  metadata: {name: critical, namespace: prod}
  spec: {priority: 10, poolRef: {name: pool-a}}
- apiVersion: llm-d.ai/v1alpha2
  kind: InferenceObjective
  metadata: {name: batch}
  spec: {priority: -1, poolRef: {name: pool-a}}
- apiVersion: inference.networking.x-k8s.io/v1alpha2
  kind: InferenceObjective
  metadata: {name: standard}
  spec: {poolRef: {name: pool-a}}
- apiVersion: llm-d.ai/v1alpha2
  kind: InferenceObjective
  metadata: {name: other-pool}
  spec: {priority: 99, poolRef: {name: pool-b}}
`;

describe("InferenceObjectives", () => {
  it("parses a list; unset priority ⇒ 0; lookups by name, missing ⇒ 0", () => {
    const objs = parseObjectivesYaml(FILE);
    assert.deepEqual(
      objs.map((o) => [o.name, o.namespace, o.priority, o.poolRef.name]),
      [
        ["critical", "prod", 10, "pool-a"],
        ["batch", "default", -1, "pool-a"],
        ["standard", "default", 0, "pool-a"],
        ["other-pool", "default", 99, "pool-b"],
      ],
    );
    const store = new ObjectiveStore();
    store.replaceAll(objs);
    assert.equal(store.priorityOf("critical"), 10);
    assert.equal(store.priorityOf("batch"), -1);
    assert.equal(store.priorityOf("standard"), 0);
    assert.equal(store.priorityOf("nope"), 0);
    assert.equal(store.priorityOf(undefined), 0);
    assert.equal(store.priorityForHeaders({ "x-llm-d-inference-objective": "critical" }), 10);
    assert.equal(store.priorityForHeaders({ "x-gateway-inference-objective": "batch" }), -1);
    assert.equal(store.priorityForHeaders({}), 0);
    assert.equal(store.objective("critical")?.priority, 10);
    assert.equal(store.objective("nope"), undefined);
  });

  it("pool filter, upsert and remove (the CRD watcher's API)", () => {
    const store = new ObjectiveStore("pool-a");
    store.replaceAll(parseObjectivesYaml(FILE));
    assert.equal(store.priorityOf("other-pool"), 0, "other pools are ignored");
    assert.deepEqual(
      store.list().map((o) => o.name),
      ["batch", "critical", "standard"],
    );
    assert.equal(
      store.upsert({ name: "critical", namespace: "prod", priority: 7, poolRef: { name: "pool-a" } }),
      true,
    );
    assert.equal(store.priorityOf("critical"), 7);
    assert.equal(store.remove("critical"), true);
    assert.equal(store.remove("critical"), false);
    assert.equal(store.priorityOf("critical"), 0);
  });

  it("multi-document and kind: List files", () => {
    const one = (name: string, p: number) =>
      `apiVersion: llm-d.ai/v1alpha2\nkind: InferenceObjective\nmetadata: {name: ${name}}\nspec: {priority: ${p}, poolRef: {name: x}}\n`;
    assert.deepEqual(
      parseObjectivesYaml(`${one("a", 1)}---\n${one("b", 2)}`).map((o) => o.priority),
      [1, 2],
    );
    const list = `apiVersion: v1\nkind: List\nitems:\n- ${one("c", 3).trimEnd().split("\n").join("\n  ")}\n`;
    assert.deepEqual(
      parseObjectivesYaml(list).map((o) => o.name),
      ["c"],
    );
  });

  it("errors name the object and field", () => {
    assert.throws(
      () =>
        parseObjectivesYaml(
          "- apiVersion: llm-d.ai/v1alpha2\n  kind: InferenceObjective\n  metadata: {name: a}\n  spec: {priority: 1}\n",
        ),
      /objectives\[0\]\.spec\.poolRef: required field missing/,
    );
    assert.throws(
      () =>
        parseObjectivesYaml(
          "- apiVersion: v9\n  kind: InferenceObjective\n  metadata: {name: a}\n  spec: {poolRef: {name: p}}\n",
        ),
      /objectives\[0\]\.apiVersion: unsupported "v9"/,
    );
    assert.throws(
      () =>
        parseObjectivesYaml(
          "- apiVersion: llm-d.ai/v1alpha2\n  kind: InferenceObjective\n  metadata: {name: a}\n  spec: {priority: 1.5, poolRef: {name: p}}\n",
        ),
      /objectives\[0\]\.spec\.priority/,
    );
  });

  it("loads a file, and the CRD fixture's schema has the fields we read", () => {
    const dir = mkdtempSync(join(tmpdir(), "objectives-"));
    const path = join(dir, "objectives.yaml");
    writeFileSync(path, FILE);
    const store = loadObjectivesFile(path);
    assert.equal(store.priorityOf("critical"), 10);
    assert.throws(() => loadObjectivesFile(join(dir, "missing.yaml")), /cannot read objectives file/);
    const crd = readFileSync(
      new URL("../../../shared/fixtures/k8s/llm-d.ai_inferenceobjectives.yaml", import.meta.url),
      "utf8",
    );
    assert.match(crd, /name: v1alpha2/);
    assert.match(crd, /priority:\n\s+description:/);
    assert.match(crd, /required:\n\s+- poolRef/);
  });
});
