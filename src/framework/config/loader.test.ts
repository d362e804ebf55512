/**
 * Loader tests against a registry of test doubles (the framework does not import plugins;
 * the real plugins and the fixtures are tested in src/plugins/builtins.test.ts).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { z } from "zod";
import { ConfigError } from "../errors.js";
import type {
  Filter,
  Picker,
  Plugin,
  PluginFactory,
  PluginRegistry,
  ProfileHandler,
  Scorer,
} from "../plugin.js";
import { createRegistry } from "../registry.js";
import type { SchedulingResult } from "../types.js";
import { closeTypes, DEFAULT_PARSERS, loadConfig } from "./loader.js";
import { decodeParams } from "./params.js";

const strictEmpty = z.object({}).strict();
const filterF: PluginFactory = (name, params): Filter => {
  decodeParams(strictEmpty, params);
  return { type: "test-filter", name, filter: (_r, e) => e };
};
const scorerF: PluginFactory = (name, params): Scorer => {
  decodeParams(z.object({ factor: z.number().optional() }).strict(), params);
  return { type: "test-scorer", name, category: "Distribution", score: () => new Map() };
};
const pickerF =
  (type: string): PluginFactory =>
  (name, params): Picker => {
    decodeParams(z.object({ maxNumOfEndpoints: z.number().optional() }).strict(), params);
    return { type, name, pick: () => ({ targetEndpoints: [], scoredCandidates: [] }) };
  };
const handlerF =
  (type: string): PluginFactory =>
  (name, params): ProfileHandler => {
    decodeParams(z.object({}).passthrough(), params);
    return {
      type,
      name,
      pickProfiles: () => [],
      processResults: (): SchedulingResult => ({ profileResults: {}, primaryProfileName: "" }),
    };
  };
const plainF =
  (type: string, extra: Record<string, unknown> = {}): PluginFactory =>
  (name) =>
    ({ type, name, ...extra }) as Plugin;

/** Records instantiation order. */
let created: string[] = [];
const recording =
  (type: string, f: PluginFactory): PluginFactory =>
  (name, params, handle) => {
    const p = f(name, params, handle);
    created.push(name);
    return { ...p, type } as Plugin;
  };

function testRegistry(): PluginRegistry {
  const r = createRegistry();
  r.register("test-filter", filterF);
  r.register("test-scorer", scorerF);
  r.register("other-scorer", scorerF);
  r.register("max-score-picker", pickerF("max-score-picker"));
  r.register("random-picker", pickerF("random-picker"));
  r.register("single-profile-handler", handlerF("single-profile-handler"));
  r.register("multi-profile-handler", handlerF("multi-profile-handler"));
  r.register("old-filter", filterF, { deprecatedReplacement: "test-filter" });
  r.register("test-parser", plainF("test-parser"));
  r.register("test-detector", plainF("test-detector"));
  r.register("test-source", plainF("test-source"));
  // dependency doubles
  r.register(
    "ref-holder",
    recording("ref-holder", (name) => ({ type: "ref-holder", name })),
    { pluginRefs: (p) => [(p as { target: string }).target] },
  );
  r.register(
    "untagged-holder",
    recording("untagged-holder", (name) => ({ type: "untagged-holder", name })),
  );
  r.register(
    "lazy-holder",
    recording("lazy-holder", (name, params, handle) => {
      const target = (params as { target: string }).target;
      const t = handle.plugin(target);
      if (t === undefined) throw new Error(`target ${target} not found`);
      return { type: "lazy-holder", name };
    }),
  );
  r.register(
    "leaf",
    recording("leaf", (name) => ({ type: "leaf", name })),
  );
  // default producers
  r.register("consumer-scorer", (name) => ({
    ...(scorerF(name, undefined, undefined as never) as Scorer),
    type: "consumer-scorer",
    consumes: ["key-a"],
  }));
  r.register("producer-a", plainF("producer-a", { produces: ["key-a"], consumes: ["key-b"] }), {
    defaultProducerFor: ["key-a"],
  });
  r.register("producer-b", plainF("producer-b", { produces: ["key-b"] }), { defaultProducerFor: ["key-b"] });
  return r;
}

const head = "apiVersion: llm-d.ai/v1alpha1\nkind: EndpointPickerConfig\n";
const load = (body: string, warnings: string[] = []) =>
  loadConfig(head + body, testRegistry(), { warn: (m) => warnings.push(m) });

/** Asserts a ConfigError whose message matches `re`. */
function rejects(text: string, re: RegExp, full = false): void {
  assert.throws(
    () => loadConfig(full ? text : head + text, testRegistry(), { warn: () => {} }),
    (e: unknown) => {
      assert.ok(e instanceof ConfigError, `expected ConfigError, got ${e}`);
      assert.match(e.message, re);
      return true;
    },
  );
}

describe("loadConfig: defaults", () => {
  it("no profiles → one `default` profile with every filter/scorer/picker; handler and picker injected", () => {
    const c = load("plugins:\n- type: test-scorer\n- type: test-filter\n- type: test-parser\n");
    assert.deepEqual([...c.profiles.keys()], ["default"]);
    const p = c.profiles.get("default")!;
    assert.deepEqual(
      p.filters.map((f) => f.name),
      ["test-filter"],
    );
    assert.deepEqual(
      p.scorers.map((s) => [s.scorer.name, s.weight]),
      [["test-scorer", 1]],
    );
    assert.equal(p.picker.type, "max-score-picker");
    assert.equal(c.profileHandler.type, "single-profile-handler");
    assert.deepEqual(
      c.plugins.map((x) => x.name),
      ["test-scorer", "test-filter", "test-parser", "single-profile-handler", "max-score-picker"],
    );
    assert.deepEqual(c.resolved.schedulingProfiles, [
      {
        name: "default",
        plugins: [
          { pluginRef: "test-scorer", weight: 1 },
          { pluginRef: "test-filter" },
          { pluginRef: "max-score-picker" },
        ],
      },
    ]);
  });

  it("one profile without a handler → single-profile-handler; weights float, default 1.0", () => {
    const c = load(
      "plugins:\n- type: test-scorer\n- type: other-scorer\nschedulingProfiles:\n- name: p\n  plugins:\n  - pluginRef: test-scorer\n    weight: 2.5\n  - pluginRef: other-scorer\n",
    );
    assert.equal(c.profileHandler.type, "single-profile-handler");
    assert.deepEqual(
      c.profiles.get("p")!.scorers.map((s) => s.weight),
      [2.5, 1.0],
    );
  });

  it("profiles without a picker share one injected max-score-picker, appended last", () => {
    const c = load(
      "plugins:\n- type: test-filter\n- type: multi-profile-handler\nschedulingProfiles:\n- name: a\n  plugins:\n  - pluginRef: test-filter\n- name: b\n  plugins: []\n",
    );
    const a = c.profiles.get("a")!;
    const b = c.profiles.get("b")!;
    assert.equal(a.picker.type, "max-score-picker");
    assert.equal(a.picker, b.picker);
    assert.equal(c.plugins.filter((p) => p.type === "max-score-picker").length, 1);
    assert.deepEqual((c.resolved.schedulingProfiles as { plugins: unknown[] }[])[0]!.plugins, [
      { pluginRef: "test-filter" },
      { pluginRef: "max-score-picker" },
    ]);
  });

  it("a configured max-score-picker is reused for profiles lacking a picker", () => {
    const c = load(
      "plugins:\n- name: mine\n  type: max-score-picker\n  parameters: {maxNumOfEndpoints: 2}\n- type: random-picker\n- type: test-filter\n- type: multi-profile-handler\nschedulingProfiles:\n- name: a\n  plugins:\n  - pluginRef: test-filter\n- name: b\n  plugins:\n  - pluginRef: random-picker\n",
    );
    assert.equal(c.profiles.get("a")!.picker.name, "mine");
    assert.equal(c.profiles.get("b")!.picker.name, "random-picker");
    assert.equal(c.plugins.length, 4);
  });

  it("a configured picker in the profile is kept; no injection", () => {
    const c = load("plugins:\n- type: random-picker\n- type: test-scorer\n");
    assert.equal(c.profiles.get("default")!.picker.type, "random-picker");
    assert.ok(!c.plugins.some((p) => p.type === "max-score-picker"));
  });

  it("resolved: data-layer, flow-control and parser defaults", () => {
    const c = load("plugins:\n- type: test-scorer\n");
    const r = c.resolved as Record<string, Record<string, unknown>>;
    assert.equal(r.apiVersion, "llm-d.ai/v1alpha1");
    assert.deepEqual(r.dataLayer, {
      injectDefaults: true,
      sources: [{ pluginRef: "metrics-data-source", extractors: [{ pluginRef: "core-metrics-extractor" }] }],
    });
    assert.deepEqual(r.requestHandler, { parsers: DEFAULT_PARSERS.map((p) => ({ pluginRef: p })) });
    assert.equal(r.flowControl!.defaultRequestTTL, "60s");
    assert.deepEqual(r.flowControl!.saturationDetector, { pluginRef: "utilization-detector" });
    assert.equal(r.flowControl!.usageLimitPolicyPluginRef, "static-usage-limit-policy");
    assert.deepEqual(r.flowControl!.defaultPriorityBand, {
      maxBytes: "1G",
      maxRequests: 5000,
      fairnessPolicyRef: "global-strict-fairness-policy",
      orderingPolicyRef: "fcfs-ordering-policy",
    });
    assert.deepEqual(r.featureGates, ["flowControl=false", "haPopulateNonLeaderDatastore=true"]);
  });

  it("dataLayer.injectDefaults: false → no injected source; configured sources kept", () => {
    const c = load(
      "plugins:\n- type: test-scorer\n- type: test-source\ndataLayer:\n  injectDefaults: false\n  sources:\n  - pluginRef: test-source\n",
    );
    assert.deepEqual((c.resolved.dataLayer as { sources: unknown }).sources, [
      { pluginRef: "test-source", extractors: [] },
    ]);
  });

  it("deprecated top-level parser and saturationDetector fold into their sections with warnings", () => {
    const warnings: string[] = [];
    const c = load(
      "plugins:\n- type: test-scorer\n- type: test-parser\n- type: test-detector\nparser:\n  pluginRef: test-parser\nsaturationDetector:\n  pluginRef: test-detector\n",
      warnings,
    );
    const r = c.resolved as Record<string, Record<string, unknown>>;
    assert.deepEqual(r.requestHandler, { parsers: [{ pluginRef: "test-parser" }] });
    assert.deepEqual(r.flowControl!.saturationDetector, { pluginRef: "test-detector" });
    assert.ok(warnings.some((w) => /parser is deprecated/.test(w)));
    assert.ok(warnings.some((w) => /saturationDetector is deprecated/.test(w)));
  });

  it("a profile may reference a non-scheduling plugin: ignored with a warning (as upstream)", () => {
    const warnings: string[] = [];
    const c = load(
      "plugins:\n- type: test-parser\n- type: test-scorer\nschedulingProfiles:\n- name: a\n  plugins:\n  - pluginRef: test-parser\n  - pluginRef: test-scorer\n",
      warnings,
    );
    const p = c.profiles.get("a")!;
    assert.equal(p.filters.length + p.scorers.length, 1);
    assert.match(
      warnings.join("\n"),
      /schedulingProfiles\[0\]\.plugins\[0\]\.pluginRef: plugin "test-parser" \(test-parser\) is not a filter, scorer or picker; ignored/,
    );
  });

  it("legacy apiVersion loads with a warning", () => {
    const warnings: string[] = [];
    loadConfig(
      "apiVersion: inference.networking.x-k8s.io/v1alpha1\nkind: EndpointPickerConfig\nplugins:\n- type: test-scorer\n",
      testRegistry(),
      { warn: (m) => warnings.push(m) },
    );
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /deprecated/);
  });

  it("a deprecated plugin type loads with a warning naming the replacement", () => {
    const warnings: string[] = [];
    const c = load("plugins:\n- type: old-filter\n", warnings);
    assert.equal(c.profiles.get("default")!.filters.length, 1);
    assert.deepEqual(warnings, ['plugins[0].type: "old-filter" is deprecated; use "test-filter"']);
  });

  it("feature gates: name, name=true, name=false", () => {
    assert.deepEqual(
      [...load("featureGates: [flowControl]\nplugins:\n- type: test-scorer\n").featureGates].sort(),
      ["flowControl", "haPopulateNonLeaderDatastore"],
    );
    assert.deepEqual(
      [
        ...load(
          "featureGates: ['flowControl=true', 'haPopulateNonLeaderDatastore=false']\nplugins:\n- type: test-scorer\n",
        ).featureGates,
      ],
      ["flowControl"],
    );
    assert.deepEqual(
      [...load("featureGates: ['flowControl=false']\nplugins:\n- type: test-scorer\n").featureGates],
      ["haPopulateNonLeaderDatastore"],
    );
  });
});

describe("loadConfig: plugin instantiation order", () => {
  it("pluginRef-tagged dependencies are instantiated first", () => {
    created = [];
    load(
      "plugins:\n- name: h\n  type: ref-holder\n  parameters: {target: l}\n- name: l\n  type: leaf\n- type: test-scorer\n",
    );
    assert.deepEqual(created, ["l", "h"]);
  });
  it("untagged string parameters naming another plugin are dependencies too", () => {
    created = [];
    load(
      "plugins:\n- name: h\n  type: untagged-holder\n  parameters: {deep: {list: [x, l2]}}\n- name: l2\n  type: leaf\n- type: test-scorer\n",
    );
    assert.deepEqual(created, ["l2", "h"]);
  });
  it("a factory that looks a later plugin up through the handle gets it instantiated", () => {
    created = [];
    load(
      "plugins:\n- name: h\n  type: lazy-holder\n  parameters: {target: l3}\n- name: l3\n  type: leaf\n- type: test-scorer\n",
    );
    assert.deepEqual(created, ["l3", "h"]);
  });
  it("untagged references that would form a cycle are dropped, not an error", () => {
    created = [];
    load(
      "plugins:\n- name: a\n  type: untagged-holder\n  parameters: {peer: b}\n- name: b\n  type: untagged-holder\n  parameters: {peer: a}\n- type: test-scorer\n",
    );
    assert.deepEqual(created, ["a", "b"]);
  });
  it("missing default producers are created (transitively), named after their type", () => {
    const c = load("plugins:\n- type: consumer-scorer\n");
    assert.deepEqual(
      c.plugins.map((p) => p.name),
      ["consumer-scorer", "producer-a", "producer-b", "single-profile-handler", "max-score-picker"],
    );
  });
  it("a configured producer prevents the default one", () => {
    const c = load(
      "plugins:\n- type: consumer-scorer\n- name: mine\n  type: producer-a\n- type: producer-b\n",
    );
    assert.equal(c.plugins.filter((p) => p.type === "producer-a").length, 1);
  });
});

describe("loadConfig: errors name the offending field or type", () => {
  const cases: { name: string; text: string; want: RegExp; full?: boolean }[] = [
    {
      name: "bad apiVersion",
      text: "apiVersion: v1\nkind: EndpointPickerConfig\n",
      want: /^apiVersion: unsupported "v1"/,
      full: true,
    },
    {
      name: "missing apiVersion",
      text: "kind: EndpointPickerConfig\n",
      want: /^apiVersion: required/,
      full: true,
    },
    {
      name: "bad kind",
      text: "apiVersion: llm-d.ai/v1alpha1\nkind: Pod\n",
      want: /^kind: unsupported "Pod"/,
      full: true,
    },
    { name: "invalid YAML", text: "plugins: [\n", want: /^invalid YAML/ },
    { name: "duplicate YAML key", text: "plugins: []\nplugins: []\n", want: /^invalid YAML/ },
    { name: "not a mapping", text: "- a\n", want: /expected a mapping/, full: true },
    { name: "unknown top-level field", text: "plugin: []\n", want: /^plugin: unknown field$/ },
    {
      name: "unknown plugin field",
      text: "plugins:\n- type: test-scorer\n  paramters: {}\n",
      want: /^plugins\[0\]\.paramters: unknown field$/,
    },
    {
      name: "unknown parameter field",
      text: "plugins:\n- type: test-filter\n- type: test-filter\n  name: f2\n- type: test-scorer\n  parameters:\n    foo: 1\n",
      want: /^plugins\[2\]\.parameters\.foo: unknown field$/,
    },
    {
      name: "bad parameter value",
      text: "plugins:\n- type: test-scorer\n  parameters: {factor: high}\n",
      want: /^plugins\[0\]\.parameters\.factor: /,
    },
    {
      name: "unknown profile plugin field",
      text: "plugins:\n- type: test-scorer\nschedulingProfiles:\n- name: p\n  plugins:\n  - pluginRef: test-scorer\n    wieght: 2\n",
      want: /^schedulingProfiles\[0\]\.plugins\[0\]\.wieght: unknown field$/,
    },
    {
      name: "unknown dataLayer field",
      text: "plugins:\n- type: test-source\ndataLayer:\n  sources:\n  - pluginRef: test-source\n    extractor: []\n",
      want: /^dataLayer\.sources\[0\]\.extractor: unknown field$/,
    },
    {
      name: "unknown flowControl field",
      text: "flowControl:\n  maxQueue: 3\n",
      want: /^flowControl\.maxQueue: unknown field$/,
    },
    {
      name: "unknown plugin type, with close types",
      text: "plugins:\n- type: test-scorr\n",
      want: /^plugins\[0\]\.type: unknown plugin type "test-scorr" \(did you mean "test-scorer"/,
    },
    {
      name: "every unknown type is named",
      text: "plugins:\n- type: nope-one\n- type: test-scorer\n- type: nope-two\n",
      want: /plugins\[0\]\.type: unknown plugin type "nope-one".*plugins\[2\]\.type: unknown plugin type "nope-two"/,
    },
    {
      name: "duplicate name (default name = type)",
      text: "plugins:\n- type: test-scorer\n- type: test-scorer\n",
      want: /^plugins\[1\]\.name: duplicate plugin name "test-scorer" \(also plugins\[0\]\)/,
    },
    {
      name: "duplicate explicit name",
      text: "plugins:\n- name: x\n  type: test-scorer\n- name: x\n  type: test-filter\n",
      want: /^plugins\[1\]\.name: duplicate plugin name "x"/,
    },
    {
      name: "undefined pluginRef in a profile",
      text: "plugins:\n- type: test-scorer\nschedulingProfiles:\n- name: p\n  plugins:\n  - pluginRef: test-scorer\n  - pluginRef: ghost\n",
      want: /^schedulingProfiles\[0\]\.plugins\[1\]\.pluginRef: undefined plugin "ghost"/,
    },
    {
      name: "undefined pluginRef in dataLayer",
      text: "plugins:\n- type: test-scorer\ndataLayer:\n  sources:\n  - pluginRef: ghost\n",
      want: /^dataLayer\.sources\[0\]\.pluginRef: undefined plugin "ghost"/,
    },
    {
      name: "undefined tagged pluginRef in parameters",
      text: "plugins:\n- type: ref-holder\n  parameters: {target: ghost}\n",
      want: /^plugins\[0\]\.parameters: pluginRef "ghost" is not a defined plugin/,
    },
    {
      name: "dependency cycle",
      text: "plugins:\n- name: a\n  type: ref-holder\n  parameters: {target: b}\n- name: b\n  type: ref-holder\n  parameters: {target: a}\n",
      want: /dependency cycle among "a", "b"/,
    },
    {
      name: "weight on a filter",
      text: "plugins:\n- type: test-filter\nschedulingProfiles:\n- name: p\n  plugins:\n  - pluginRef: test-filter\n    weight: 2\n",
      want: /^schedulingProfiles\[0\]\.plugins\[0\]\.weight: weight is only allowed for scorers; "test-filter" \(test-filter\) is not a scorer/,
    },
    {
      name: "weight not a number",
      text: "plugins:\n- type: test-scorer\nschedulingProfiles:\n- name: p\n  plugins:\n  - pluginRef: test-scorer\n    weight: heavy\n",
      want: /^schedulingProfiles\[0\]\.plugins\[0\]\.weight: /,
    },
    {
      name: "profile without name",
      text: "plugins:\n- type: test-scorer\nschedulingProfiles:\n- plugins:\n  - pluginRef: test-scorer\n",
      want: /^schedulingProfiles\[0\]\.name: required field missing/,
    },
    {
      name: "duplicate profile name",
      text: "plugins:\n- type: test-scorer\n- type: multi-profile-handler\nschedulingProfiles:\n- name: p\n- name: p\n",
      want: /^schedulingProfiles\[1\]\.name: duplicate profile name "p"/,
    },
    {
      name: "two profile handlers",
      text: "plugins:\n- type: single-profile-handler\n- type: multi-profile-handler\n- type: test-scorer\n",
      want: /only one profile handler is allowed, found 2: "single-profile-handler", "multi-profile-handler"/,
    },
    {
      name: "single-profile-handler with two profiles",
      text: "plugins:\n- type: single-profile-handler\n- type: test-scorer\nschedulingProfiles:\n- name: a\n- name: b\n",
      want: /single-profile-handler "single-profile-handler" needs exactly one scheduling profile, found 2/,
    },
    {
      name: "two profiles and no handler",
      text: "plugins:\n- type: test-scorer\nschedulingProfiles:\n- name: a\n- name: b\n",
      want: /a profile handler is required with 2 scheduling profiles/,
    },
    {
      name: "two pickers in one profile",
      text: "plugins:\n- type: random-picker\n- type: max-score-picker\nschedulingProfiles:\n- name: a\n  plugins:\n  - pluginRef: random-picker\n  - pluginRef: max-score-picker\n",
      want: /^schedulingProfiles\[0\]\.plugins\[1\]\.pluginRef: profile "a" already has picker "random-picker"/,
    },
    {
      name: "unknown feature gate",
      text: "featureGates: [warpDrive]\n",
      want: /^featureGates\[0\]: unknown feature gate "warpDrive"/,
    },
    {
      name: "prototype key is not a feature gate",
      text: "featureGates: [constructor]\n",
      want: /^featureGates\[0\]: unknown feature gate "constructor"/,
    },
    {
      name: "bad feature gate value",
      text: "featureGates: ['flowControl=maybe']\n",
      want: /^featureGates\[0\]: invalid/,
    },
    {
      name: "factory error names the plugin",
      text: "plugins:\n- name: h\n  type: lazy-holder\n  parameters: {target: nowhere}\n",
      want: /^plugins\[0\] \(lazy-holder "h"\): target nowhere not found/,
    },
  ];
  for (const c of cases) it(c.name, () => rejects(c.text, c.want, c.full));
});

describe("closeTypes", () => {
  it("suggests near names and shared stems", () => {
    const known = ["decode-filter", "prefill-filter", "queue-scorer", "single-profile-handler"];
    assert.deepEqual(closeTypes("decod-filter", known), ["decode-filter"]);
    assert.deepEqual(closeTypes("queue-scorrer", known), ["queue-scorer"]);
    assert.deepEqual(closeTypes("disagg-profile-handler", known), ["single-profile-handler"]);
    assert.deepEqual(closeTypes("zzz", known), []);
  });
});
