/**
 * Helm chart `deploy/helm/llmd`: rendered with the in-repo renderer (`helm` is not installed
 * here) for default, P/D (simulated accelerators), P/D with vLLM, and ServiceMonitor values;
 * every object validated — core kinds against kubernetes-models (the Kubernetes OpenAPI
 * schemas), the InferencePool against the CRD's openAPIV3Schema from
 * `shared/fixtures/k8s/` plus its two CEL rules by hand — and the wiring between objects
 * checked (pool ↔ EPP flags ↔ Service ↔ pod labels ↔ RBAC ↔ EPP config).
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { ConfigMap, Service, ServiceAccount } from "kubernetes-models/v1";
import { Deployment } from "kubernetes-models/apps/v1";
import { Role, RoleBinding } from "kubernetes-models/rbac.authorization.k8s.io/v1";
import { parse as parseYaml } from "yaml";
import { loadConfig } from "../../src/framework/config/index.js";
import { builtinRegistry } from "../../src/plugins/builtins.js";
import { type RenderedObject, renderChart, renderTemplate } from "./render.js";
import { celRules, type Schema, validateSchema } from "./schema.js";

const root = join(fileURLToPath(import.meta.url), "..", "..", "..");
const chartDir = join(root, "deploy", "helm", "llmd");
const crdPath = join(
  root,
  "..",
  "shared",
  "fixtures",
  "k8s",
  "inference.networking.k8s.io_inferencepools.yaml",
);
const poolCrd = parseYaml(readFileSync(crdPath, "utf8")) as {
  spec: {
    group: string;
    names: { kind: string };
    versions: { name: string; schema: { openAPIV3Schema: Schema } }[];
  };
};
const poolSchema = poolCrd.spec.versions.find((v) => v.name === "v1")!.schema.openAPIV3Schema;

// biome-ignore lint/suspicious/noExplicitAny: rendered manifests are untyped JSON, read field by field
type Obj = RenderedObject["object"] & Record<string, any>;

// biome-ignore lint/suspicious/noExplicitAny: each model class takes its own object type
const MODELS: Record<string, new (o: any) => { validate(): void }> = {
  "v1/ServiceAccount": ServiceAccount,
  "v1/ConfigMap": ConfigMap,
  "v1/Service": Service,
  "apps/v1/Deployment": Deployment,
  "rbac.authorization.k8s.io/v1/Role": Role,
  "rbac.authorization.k8s.io/v1/RoleBinding": RoleBinding,
};

/** InferencePool: CRD schema + the CRD's CEL rules, evaluated by hand. */
function validatePool(o: Obj): string[] {
  const errs = validateSchema(poolSchema, o);
  const rules = celRules(poolSchema).map((r) => r.rule);
  assert.equal(rules.length, 2, `CEL rules changed in the CRD: ${rules.join(" | ")}`);
  const ports = (o.spec?.targetPorts ?? []).map((p: { number: number }) => p.number);
  if (new Set(ports).size !== ports.length) errs.push("$.spec.targetPorts: port number must be unique");
  const ref = o.spec?.endpointPickerRef;
  if (ref && (ref.kind ?? "Service") === "Service" && !ref.port)
    errs.push("$.spec.endpointPickerRef: port is required when kind is 'Service'");
  return errs;
}

/** Validates every object; returns `kind/name: error` lines. */
function validateAll(objs: RenderedObject[]): string[] {
  const errs: string[] = [];
  for (const { object: o, template } of objs) {
    const id = `${template} ${o.kind}/${o.metadata?.name}`;
    if (!o.apiVersion || !o.kind || !o.metadata?.name) {
      errs.push(`${id}: apiVersion, kind and metadata.name are required`);
      continue;
    }
    const key = `${o.apiVersion}/${o.kind}`;
    if (key === "inference.networking.k8s.io/v1/InferencePool") {
      errs.push(...validatePool(o as Obj).map((e) => `${id}: ${e}`));
    } else if (key === "monitoring.coreos.com/v1/ServiceMonitor") {
      const s = (o as Obj).spec;
      if (!s?.selector?.matchLabels || !Array.isArray(s.endpoints) || s.endpoints.length === 0)
        errs.push(`${id}: spec.selector.matchLabels and spec.endpoints are required`);
    } else if (MODELS[key]) {
      try {
        new MODELS[key](o).validate();
      } catch (e) {
        errs.push(`${id}: ${(e as Error).message}`);
      }
    } else {
      errs.push(`${id}: no validator for ${key}`);
    }
  }
  return errs;
}

const render = (values: Record<string, unknown> = {}) =>
  renderChart(chartDir, { release: "demo", namespace: "llm", values });
const pdValues = parseYaml(readFileSync(join(chartDir, "values-pd.yaml"), "utf8")) as Record<string, unknown>;
const find = (objs: RenderedObject[], kind: string, name: string): Obj => {
  const o = objs.find((x) => x.object.kind === kind && x.object.metadata?.name === name);
  assert.ok(
    o,
    `${kind}/${name} not rendered; got ${objs.map((x) => `${x.object.kind}/${x.object.metadata?.name}`).join(", ")}`,
  );
  return o.object as Obj;
};
const container = (d: Obj, name: string) => {
  const c = d.spec.template.spec.containers.find((x: { name: string }) => x.name === name);
  assert.ok(c, `container ${name} in ${d.metadata?.name}`);
  return c;
};
const labelsMatch = (sel: Record<string, string>, labels: Record<string, string>) =>
  Object.entries(sel).every(([k, v]) => labels[k] === v);

describe("helm chart", () => {
  test("default values: objects, validation, wiring", () => {
    const objs = render();
    assert.deepEqual(objs.map((o) => `${o.object.kind}/${o.object.metadata?.name}`).sort(), [
      "ConfigMap/demo-epp-config",
      "Deployment/demo-decode",
      "Deployment/demo-epp",
      "InferencePool/demo-pool",
      "Role/demo-epp",
      "RoleBinding/demo-epp",
      "Service/demo-epp",
      "ServiceAccount/demo-epp",
    ]);
    assert.deepEqual(validateAll(objs), []);
    for (const { object } of objs) assert.equal(object.metadata?.namespace, "llm");

    const epp = find(objs, "Deployment", "demo-epp");
    const c = container(epp, "epp");
    assert.equal(c.image, "ghcr.io/llmd-ts/llmd:0.1.0");
    assert.deepEqual(c.args.slice(0, 4), [
      "epp",
      "--pool-name=demo-pool",
      "--pool-namespace=llm",
      "--config-file=/etc/llmd/config/config.yaml",
    ]);
    assert.ok(c.args.includes("--secure-serving=true"));
    assert.deepEqual(c.livenessProbe.grpc, { port: 9003, service: "liveness" });
    assert.deepEqual(c.readinessProbe.grpc, { port: 9003, service: "readiness" });
    assert.equal(epp.spec.template.spec.serviceAccountName, "demo-epp");
    assert.equal(epp.spec.template.spec.securityContext.runAsNonRoot, true);

    const svc = find(objs, "Service", "demo-epp");
    assert.deepEqual(
      svc.spec.ports.map((p: { name: string; port: number }) => [p.name, p.port]),
      [
        ["grpc", 9002],
        ["grpc-health", 9003],
        ["metrics", 9090],
      ],
    );
    assert.ok(labelsMatch(svc.spec.selector, epp.spec.template.metadata.labels));

    const pool = find(objs, "InferencePool", "demo-pool");
    assert.deepEqual(pool.spec.targetPorts, [{ number: 8000 }]);
    assert.deepEqual(pool.spec.endpointPickerRef, {
      kind: "Service",
      name: "demo-epp",
      port: { number: 9002 },
      failureMode: "FailClose",
    });
    const decode = find(objs, "Deployment", "demo-decode");
    const podLabels = decode.spec.template.metadata.labels;
    assert.ok(labelsMatch(pool.spec.selector.matchLabels, podLabels), "pool selects the model server pods");
    assert.equal(podLabels["llm-d.ai/role"], "decode");
    const server = container(decode, "server");
    assert.deepEqual(server.args, [
      "serve",
      "--engine=sim",
      "--host=0.0.0.0",
      "--port=8000",
      "--model=sim-model",
    ]);
    assert.equal(decode.spec.template.spec.containers.length, 1, "no sidecar without P/D");

    const role = find(objs, "Role", "demo-epp");
    const granted = new Set<string>();
    for (const r of role.rules) {
      assert.deepEqual(r.verbs, ["get", "list", "watch"]);
      for (const g of r.apiGroups) for (const res of r.resources) granted.add(`${g}/${res}`);
    }
    assert.deepEqual([...granted].sort(), [
      "/pods",
      "inference.networking.k8s.io/inferencepools",
      "llm-d.ai/inferencemodelrewrites",
      "llm-d.ai/inferenceobjectives",
    ]);
    const rb = find(objs, "RoleBinding", "demo-epp");
    assert.deepEqual(rb.subjects, [{ kind: "ServiceAccount", name: "demo-epp", namespace: "llm" }]);

    // the ConfigMap's EndpointPickerConfig loads with the EPP's own loader
    const cm = find(objs, "ConfigMap", "demo-epp-config");
    const loaded = loadConfig(cm.data["config.yaml"], builtinRegistry(), { warn: () => {} });
    assert.deepEqual([...loaded.profiles.keys()], ["default"]);
  });

  test("P/D values (simulated accelerators): prefill + decode with the sidecar", () => {
    const objs = render(pdValues);
    assert.deepEqual(validateAll(objs), []);
    const pool = find(objs, "InferencePool", "demo-pool");
    const decode = find(objs, "Deployment", "demo-decode");
    const prefill = find(objs, "Deployment", "demo-prefill");
    assert.equal(prefill.spec.replicas, 2);
    assert.equal(prefill.spec.template.metadata.labels["llm-d.ai/role"], "prefill");
    assert.ok(labelsMatch(pool.spec.selector.matchLabels, prefill.spec.template.metadata.labels));
    assert.ok(labelsMatch(pool.spec.selector.matchLabels, decode.spec.template.metadata.labels));
    const sidecar = container(decode, "sidecar");
    assert.deepEqual(sidecar.args, ["sidecar", "--host=0.0.0.0", "--port=8000", "--vllm-port=8200"]);
    assert.equal(sidecar.ports[0].containerPort, pool.spec.targetPorts[0].number);
    assert.ok(container(decode, "server").args.includes("--port=8200"));
    assert.ok(container(prefill, "server").args.includes("--port=8000"));
    const cm = find(objs, "ConfigMap", "demo-epp-config");
    const loaded = loadConfig(cm.data["config.yaml"], builtinRegistry(), { warn: () => {} });
    assert.deepEqual([...loaded.profiles.keys()].sort(), ["decode", "prefill"]);
    assert.equal(loaded.profileHandler.type, "pd-profile-handler");
  });

  test("P/D with vLLM: NixlConnector kv-transfer-config, side-channel host from the pod IP, GPUs", () => {
    const objs = render(
      mergeDeep(pdValues, {
        modelServers: { engine: "vllm", model: "Qwen/Qwen3-0.6B" },
        serviceMonitor: { enabled: true },
      }),
    );
    assert.deepEqual(validateAll(objs), []);
    for (const name of ["demo-decode", "demo-prefill"]) {
      const vllm = container(find(objs, "Deployment", name), "vllm");
      assert.deepEqual(vllm.command, ["vllm", "serve"]);
      assert.equal(vllm.args[0], "Qwen/Qwen3-0.6B");
      const i = vllm.args.indexOf("--kv-transfer-config");
      assert.ok(i > 0);
      assert.deepEqual(JSON.parse(vllm.args[i + 1]), { kv_connector: "NixlConnector", kv_role: "kv_both" });
      const env = vllm.env.find((e: { name: string }) => e.name === "VLLM_NIXL_SIDE_CHANNEL_HOST");
      assert.deepEqual(env.valueFrom, { fieldRef: { fieldPath: "status.podIP" } });
      assert.equal(vllm.resources.limits["nvidia.com/gpu"], 1);
    }
    assert.ok(container(find(objs, "Deployment", "demo-decode"), "vllm").args.includes("--port=8200"));
    const sm = find(objs, "ServiceMonitor", "demo-epp");
    assert.equal(sm.spec.endpoints[0].port, "metrics");
  });

  test("validation catches broken objects (the checks can fail)", () => {
    const objs = render();
    const pool = structuredClone(find(objs, "InferencePool", "demo-pool"));
    pool.spec.targetPorts = [{ number: 8000 }, { number: 8000 }];
    pool.spec.endpointPickerRef.failureMode = "Sometimes";
    delete pool.spec.endpointPickerRef.port;
    pool.spec.selector.matchLabels = {};
    const errs = validatePool(pool);
    assert.ok(
      errs.some((e) => e.includes("failureMode: must be one of")),
      errs.join("\n"),
    );
    assert.ok(errs.some((e) => e.includes("port number must be unique")));
    assert.ok(errs.some((e) => e.includes("port is required")));
    assert.ok(errs.some((e) => e.includes("matchLabels: must have at least 1 properties")));
    assert.deepEqual(
      validatePool({ ...pool, spec: { ...pool.spec, targetPorts: [] } }).filter((e) =>
        e.includes("at least 1 items"),
      ).length,
      1,
    );

    const dep = structuredClone(find(objs, "Deployment", "demo-epp"));
    dep.spec.template.spec.containers[0].ports[0].containerPort = "grpc";
    assert.match(validateAll([{ template: "x", object: dep }]).join("\n"), /containerPort must be integer/);
  });

  test("renderer: trimming, if/else, range over maps and lists, unsupported syntax throws", () => {
    const ctx = { Values: { on: true, off: false, m: { b: "2", a: "1" }, l: ["x", "y"], s: "" } };
    assert.equal(renderTemplate("a\n{{- if .Values.on }} yes{{ else }} no{{ end }}", ctx), "a yes");
    assert.equal(renderTemplate("{{ if .Values.s }}t{{ else if .Values.on }}elif{{ end }}", ctx), "elif");
    assert.equal(
      renderTemplate("{{ range $k, $v := .Values.m }}{{ $k }}={{ $v }};{{ end }}", ctx),
      "a=1;b=2;",
    );
    assert.equal(renderTemplate("{{ range .Values.l }}[{{ . }}]{{ end }}", ctx), "[x][y]");
    assert.equal(renderTemplate('{{ .Values.missing | default "d" | quote }}', ctx), '"d"');
    assert.equal(renderTemplate("k:{{ .Values.m | toYaml | nindent 2 }}", ctx), 'k:\n  b: "2"\n  a: "1"');
    assert.throws(() => renderTemplate('{{ include "x" . }}', ctx), /unsupported action/);
    assert.throws(() => renderTemplate("{{ .Values.l | sha256sum }}", ctx), /unsupported function/);
    assert.throws(() => renderTemplate("{{ if .Values.on }}", ctx), /missing \{\{ end \}\}/);
  });
});

function mergeDeep(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const cur = out[k];
    out[k] =
      cur && v && typeof cur === "object" && typeof v === "object" && !Array.isArray(v)
        ? mergeDeep(cur as Record<string, unknown>, v as Record<string, unknown>)
        : v;
  }
  return out;
}
