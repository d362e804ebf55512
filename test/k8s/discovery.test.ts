/**
 * Kubernetes discovery against a fake API server: InferencePool + Pods → endpoint store
 * (Ready/NotReady, labels, deletions, pool selector/targetPorts edits), InferenceObjective /
 * InferenceModelRewrite → policies, and the list+watch machinery (bookmarks, 410 Gone as
 * status and as ERROR event → relist, dropped connections → re-watch from the last version,
 * failing watches → backoff and reconnect). Every step awaits the store's (or the
 * discovery's / fake server's) events; no sleeps.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import type { EventEmitter } from "node:events";
import { after, before, describe, test } from "node:test";
import { KubeConfig } from "@kubernetes/client-node";
import { KubernetesDiscovery } from "../../src/datalayer/k8s/discovery.js";
import { EndpointStore } from "../../src/datalayer/store.js";
import { FakeApiServer, inferencePool, pod } from "./fake-apiserver.js";

/** Awaits `event` on `em` until `pred()` holds (checked first); at most 1000 events. */
async function until(em: EventEmitter, event: string, pred: () => boolean): Promise<void> {
  for (let i = 0; i < 1000; i++) {
    if (pred()) return;
    await once(em, event);
  }
  assert.fail(`condition not reached after 1000 ${event} events`);
}

const view = (store: EndpointStore) =>
  store
    .all()
    .map((e) => `${e.metadata.id}@${e.metadata.hostPort}`)
    .sort()
    .join(" ");

function kubeConfig(server: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: "fake", server, skipTLSVerify: true }],
    users: [{ name: "tester", token: "t0ken" }],
    contexts: [{ name: "fake", cluster: "fake", user: "tester", namespace: "default" }],
    currentContext: "fake",
  });
  return kc;
}

describe("Kubernetes discovery", { timeout: 30_000 }, () => {
  const api = new FakeApiServer("default");
  const store = new EndpointStore();
  let disc: KubernetesDiscovery;

  before(async () => {
    await api.start();
    api.apply("inferencepools", inferencePool("pool", { app: "vllm" }, [8000]));
    api.apply("inferencepools", inferencePool("other-pool", { app: "x" }, [9000]));
    api.apply("pods", pod("p1", "10.1.0.1", { app: "vllm", "llm-d.ai/role": "decode" }, true));
    api.apply("pods", pod("p2", "10.1.0.2", { app: "vllm", "llm-d.ai/role": "decode" }, false));
    api.apply("pods", pod("p3", "10.1.0.3", { app: "other" }, true));
    disc = new KubernetesDiscovery({
      kubeConfig: kubeConfig(api.url),
      poolName: "pool",
      namespace: "default",
      store,
      initialBackoffMs: 5,
      maxBackoffMs: 20,
      random: () => 0.9,
    });
    disc.start();
    await until(store, "changed", () => store.all().length > 0);
  });
  after(async () => {
    await disc.stop();
    await api.close();
  });

  test("initial list: only Ready pods matching the selector, labels carried", async () => {
    assert.equal(view(store), "default/p1@10.1.0.1:8000");
    assert.deepEqual(store.get("default/p1")?.metadata.labels, { app: "vllm", "llm-d.ai/role": "decode" });
    assert.equal(disc.synced(), true);
    // watches are opened with bookmarks from the list's resourceVersion
    await until(api, "watch", () => api.watchRequests.some((w) => w.kind === "pods"));
    const podWatch = api.watchRequests.find((w) => w.kind === "pods");
    assert.ok(podWatch);
    assert.equal(podWatch.bookmarks, true);
    assert.notEqual(podWatch.resourceVersion, "");
  });

  test("a pod becoming Ready is added; NotReady is removed; deletion is removed", async () => {
    const added = once(store, "added");
    api.apply("pods", pod("p2", "10.1.0.2", { app: "vllm", "llm-d.ai/role": "decode" }, true));
    const [ep] = await added;
    assert.equal(ep.metadata.id, "default/p2");
    assert.equal(view(store), "default/p1@10.1.0.1:8000 default/p2@10.1.0.2:8000");

    const removed = once(store, "removed");
    api.apply("pods", pod("p1", "10.1.0.1", { app: "vllm", "llm-d.ai/role": "decode" }, false));
    assert.equal((await removed)[0].metadata.id, "default/p1");
    assert.equal(view(store), "default/p2@10.1.0.2:8000");

    api.apply("pods", pod("p1", "10.1.0.1", { app: "vllm", "llm-d.ai/role": "decode" }, true));
    await until(store, "changed", () => store.all().length === 2);
    const removed2 = once(store, "removed");
    api.delete("pods", "p1");
    assert.equal((await removed2)[0].metadata.id, "default/p1");
    assert.equal(view(store), "default/p2@10.1.0.2:8000");
  });

  test("label changes reach the endpoint; a label leaving the selector removes it", async () => {
    api.apply("pods", pod("p2", "10.1.0.2", { app: "vllm", "llm-d.ai/role": "prefill" }, true));
    await until(
      store,
      "changed",
      () => store.get("default/p2")?.metadata.labels["llm-d.ai/role"] === "prefill",
    );
    const removed = once(store, "removed");
    api.apply("pods", pod("p2", "10.1.0.2", { app: "gone" }, true));
    assert.equal((await removed)[0].metadata.id, "default/p2");
    assert.equal(store.all().length, 0);
    api.apply("pods", pod("p2", "10.1.0.2", { app: "vllm", "llm-d.ai/role": "decode" }, true));
    await until(store, "changed", () => store.all().length === 1);
  });

  test("InferencePool edits: targetPorts → one endpoint per port (rank ids); selector change", async () => {
    api.apply("inferencepools", inferencePool("pool", { app: "vllm" }, [8000, 8001]));
    await until(store, "changed", () => store.all().length === 2);
    assert.equal(view(store), "default/p2-rank-0@10.1.0.2:8000 default/p2-rank-1@10.1.0.2:8001");
    assert.equal(store.get("default/p2-rank-1")?.metadata.port, 8001);

    api.apply("inferencepools", inferencePool("pool", { app: "other" }, [8000]));
    await until(store, "changed", () => view(store) === "default/p3@10.1.0.3:8000");

    // edits to another pool are ignored
    api.apply("inferencepools", inferencePool("other-pool", { app: "vllm" }, [1234]));
    api.apply("inferencepools", inferencePool("pool", { app: "vllm" }, [8000]));
    await until(store, "changed", () => view(store) === "default/p2@10.1.0.2:8000");
  });

  test("InferenceObjective and InferenceModelRewrite reach the policies", async () => {
    api.apply("inferenceobjectives", {
      apiVersion: "llm-d.ai/v1alpha2",
      kind: "InferenceObjective",
      metadata: { name: "critical" },
      spec: { priority: 10, poolRef: { name: "pool" } },
    });
    api.apply("inferenceobjectives", {
      apiVersion: "llm-d.ai/v1alpha2",
      kind: "InferenceObjective",
      metadata: { name: "elsewhere" },
      spec: { priority: 5, poolRef: { name: "other-pool" } },
    });
    await until(disc, "policies", () => disc.policies.objective("critical")?.priority === 10);
    assert.equal(disc.policies.objective("elsewhere"), undefined);
    api.apply("inferencemodelrewrites", {
      apiVersion: "llm-d.ai/v1alpha2",
      kind: "InferenceModelRewrite",
      metadata: { name: "canary", creationTimestamp: "2026-01-01T00:00:00Z" },
      spec: {
        poolRef: { name: "pool" },
        rules: [
          {
            matches: [{ model: { type: "Exact", value: "llama" } }],
            targets: [
              { modelRewrite: "llama-v1", weight: 90 },
              { modelRewrite: "llama-v2", weight: 10 },
            ],
          },
        ],
      },
    });
    // random() = 0.9 → 0.9 × 100 = 90 falls in the second target's range [90, 100)
    await until(disc, "policies", () => disc.policies.rewriteModel("llama") === "llama-v2");
    assert.equal(disc.policies.rewriteModel("mistral"), undefined);
    api.delete("inferenceobjectives", "critical");
    await until(disc, "policies", () => disc.policies.objective("critical") === undefined);
  });

  test("dropped watch connection: re-watch from the last resourceVersion, no relist", async () => {
    const listsBefore = api.lists.filter((k) => k === "pods").length;
    const watchesBefore = api.watchRequests.filter((w) => w.kind === "pods").length;
    const rewatch = once(api, "watch");
    api.dropWatches("pods");
    const [kind, rv] = await rewatch;
    assert.equal(kind, "pods");
    assert.equal(rv, String(Number(rv))); // a concrete version, not a fresh start
    api.apply("pods", pod("p5", "10.1.0.5", { app: "vllm" }, true));
    await until(store, "changed", () => store.get("default/p5") !== undefined);
    assert.equal(api.lists.filter((k) => k === "pods").length, listsBefore);
    assert.ok(api.watchRequests.filter((w) => w.kind === "pods").length > watchesBefore);
  });

  test("bookmarks advance the resourceVersion used by the next watch", async () => {
    await until(api, "watch", () => api.openWatches("pods") > 0);
    const seen = once(disc, "bookmark");
    const rv = api.bookmark("pods");
    const [path, got] = await seen;
    assert.equal(path, "/api/v1/namespaces/default/pods");
    assert.equal(got, rv);
    const next = new Promise<string>((resolve) => {
      const on = (kind: string, v: string) => {
        if (kind !== "pods") return;
        api.off("watch", on);
        resolve(v);
      };
      api.on("watch", on);
    });
    api.dropWatches("pods");
    // no pod event since the bookmark: the next watch starts exactly at the bookmark's version
    assert.equal(await next, rv);
  });

  for (const mode of ["event", "status"] as const) {
    test(`410 Gone (${mode}) → relist; changes missed while disconnected are applied`, async () => {
      api.goneMode = mode;
      const listsBefore = api.lists.filter((k) => k === "pods").length;
      api.freeze(true);
      api.apply("pods", pod(`g-${mode}`, mode === "event" ? "10.1.1.1" : "10.1.1.2", { app: "vllm" }, true));
      api.delete("pods", "p5");
      api.compact();
      api.freeze(false);
      const relisted = new Promise<void>((resolve) => {
        const on = (k: string) => {
          if (k !== "pods") return;
          api.off("list", on);
          resolve();
        };
        api.on("list", on);
      });
      api.dropWatches("pods");
      await relisted;
      await until(
        store,
        "changed",
        () => store.get(`default/g-${mode}`) !== undefined && store.get("default/p5") === undefined,
      );
      assert.equal(api.lists.filter((k) => k === "pods").length, listsBefore + 1);
      api.apply("pods", pod("p5", "10.1.0.5", { app: "vllm" }, true));
      await until(store, "changed", () => store.get("default/p5") !== undefined);
    });
  }

  test("failing watches → backoff and reconnect, then events flow again", async () => {
    const before = api.watchRequests.filter((w) => w.kind === "pods").length;
    api.failWatches(3);
    api.dropWatches("pods");
    // after three 500s the fourth watch succeeds
    await until(api, "watch", () => api.watchRequests.filter((w) => w.kind === "pods").length >= before + 4);
    api.apply("pods", pod("p7", "10.1.0.7", { app: "vllm" }, true));
    await until(store, "changed", () => store.get("default/p7") !== undefined);
    const stats = disc.stats()["/api/v1/namespaces/default/pods"]!;
    assert.ok(stats.errors >= 3, `errors ${stats.errors}`);
  });

  test("deleting the InferencePool empties the store; readiness drops", async () => {
    api.delete("inferencepools", "pool");
    await until(store, "changed", () => store.all().length === 0);
    assert.equal(disc.synced(), false);
  });
});
