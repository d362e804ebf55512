/**
 * `llmd epp` as wired by the CLI (`runEpp`): TLS with the self-signed certificate generated at
 * start, static endpoints scraped from a fake vLLM (`/metrics`, `/v1/models`), gRPC health
 * readiness, the Prometheus endpoint; and Kubernetes discovery against the fake API server
 * (readiness follows the InferencePool sync).
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import type { EventEmitter } from "node:events";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { KubeConfig } from "@kubernetes/client-node";
import { runEpp } from "../../src/cli/epp.js";
import { loadProtos, type PbProcessingResponse } from "../../src/extproc/proto.js";
import { generateSelfSignedCert } from "../../src/extproc/selfsigned.js";
import { FakeApiServer, inferencePool, pod } from "../k8s/fake-apiserver.js";

async function until(em: EventEmitter, event: string, pred: () => boolean): Promise<void> {
  for (let i = 0; i < 1000; i++) {
    if (pred()) return;
    await once(em, event);
  }
  assert.fail(`condition not reached after 1000 ${event} events`);
}

type HealthClient = grpc.Client & {
  Check(req: { service: string }, cb: (e: grpc.ServiceError | null, r?: { status: string }) => void): void;
};
const check = (c: HealthClient, service: string) =>
  new Promise<string>((resolve, reject) =>
    c.Check({ service }, (e, r) => (e ? reject(e) : resolve(r!.status))),
  );

test("runEpp: TLS self-signed ext_proc, static endpoint scraped, health and metrics", {
  timeout: 30_000,
}, async () => {
  const vllm = createServer((req, res) => {
    if (req.url === "/v1/models") {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ object: "list", data: [{ id: "m1", object: "model" }] }));
    } else if (req.url === "/metrics") {
      res.writeHead(200, { "content-type": "text/plain" });
      res.end("vllm:num_requests_waiting 2\nvllm:num_requests_running 1\nvllm:kv_cache_usage_perc 0.25\n");
    } else res.writeHead(404).end();
  });
  vllm.listen(0, "127.0.0.1");
  await once(vllm, "listening");
  const vport = (vllm.address() as AddressInfo).port;
  const epp = await runEpp({
    host: "127.0.0.1",
    grpcPort: 0,
    grpcHealthPort: 0,
    metricsPort: 0,
    secureServing: true,
    endpoints: [`127.0.0.1:${vport},llm-d.ai/role=decode`],
    refreshMetricsIntervalMs: 20,
  });
  const { ExternalProcessor, Health } = loadProtos();
  const health = new Health(
    `127.0.0.1:${epp.healthPort}`,
    grpc.credentials.createInsecure(),
  ) as unknown as HealthClient;
  assert.ok(epp.certPem?.startsWith("-----BEGIN CERTIFICATE-----"));
  const client = new ExternalProcessor(
    `127.0.0.1:${epp.grpcPort}`,
    grpc.credentials.createSsl(Buffer.from(epp.certPem!)),
    {
      "grpc.ssl_target_name_override": "localhost",
    },
  ) as unknown as grpc.Client & { Process(): grpc.ClientDuplexStream<unknown, PbProcessingResponse> };
  try {
    await until(epp.store, "changed", () => epp.store.ready().length === 1);
    assert.equal(await check(health, "readiness"), "SERVING");
    assert.equal(await check(health, "liveness"), "SERVING");

    const call = client.Process();
    const reply = once(call, "data");
    call.write({
      request_headers: {
        headers: { headers: [{ key: ":path", raw_value: Buffer.from("/v1/completions") }] },
      },
    });
    call.write({ request_body: { body: Buffer.from('{"model":"m1","prompt":"hi"}'), end_of_stream: true } });
    const [r] = (await reply) as [PbProcessingResponse];
    const set = r.request_headers!.response.header_mutation!.set_headers!;
    const dest = set.find((h) => h.header.key === "x-gateway-destination-endpoint");
    assert.equal(Buffer.from(dest!.header.raw_value!).toString(), `127.0.0.1:${vport}`);
    call.end();

    const res = await fetch(`http://127.0.0.1:${epp.metricsPort}/metrics`);
    assert.equal(res.status, 200);
    const text = await res.text();
    assert.match(text, /llm_d_epp_ready_endpoints\{[^}]*name="epp"[^}]*\} 1\n/);
    assert.match(text, /llm_d_epp_request_total\{[^}]*model_name="m1"[^}]*\} 1\n/);
  } finally {
    client.close();
    health.close();
    await epp.close();
    vllm.closeAllConnections();
    vllm.close();
  }
});

test("runEpp with Kubernetes discovery: readiness follows the InferencePool", {
  timeout: 30_000,
}, async () => {
  const api = new FakeApiServer("llm");
  await api.start();
  api.apply("pods", pod("vllm-0", "10.2.0.1", { app: "vllm" }, true));
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: "fake", server: api.url, skipTLSVerify: true }],
    users: [{ name: "u", token: "t" }],
    contexts: [{ name: "c", cluster: "fake", user: "u" }],
    currentContext: "c",
  });
  const epp = await runEpp({
    host: "127.0.0.1",
    grpcPort: 0,
    grpcHealthPort: 0,
    metricsPort: 0,
    secureServing: false,
    poolName: "pool",
    poolNamespace: "llm",
    kubeConfigObject: kc,
  });
  const { Health } = loadProtos();
  const health = new Health(
    `127.0.0.1:${epp.healthPort}`,
    grpc.credentials.createInsecure(),
  ) as unknown as HealthClient;
  try {
    // no InferencePool yet: not ready
    await until(api, "list", () => api.lists.includes("inferencepools") && api.lists.includes("pods"));
    assert.equal(await check(health, "readiness"), "NOT_SERVING");
    api.apply("inferencepools", inferencePool("pool", { app: "vllm" }, [8000]));
    await until(epp.store, "changed", () => epp.store.get("llm/vllm-0") !== undefined);
    assert.equal(epp.store.get("llm/vllm-0")?.metadata.hostPort, "10.2.0.1:8000");
    assert.equal(await check(health, "readiness"), "SERVING");
    assert.equal(await check(health, "envoy.service.ext_proc.v3.ExternalProcessor"), "SERVING");
  } finally {
    health.close();
    await epp.close();
    await api.close();
  }
});

test("runEpp --cert-path: serves the given tls.crt/tls.key; a missing file is named", {
  timeout: 30_000,
}, async () => {
  const dir = mkdtempSync(join(tmpdir(), "llmd-tls-"));
  const { cert, key } = generateSelfSignedCert({ commonName: "given-cert" });
  writeFileSync(join(dir, "tls.crt"), cert);
  writeFileSync(join(dir, "tls.key"), key);
  const base = {
    host: "127.0.0.1",
    grpcPort: 0,
    grpcHealthPort: 0,
    metricsPort: 0,
    secureServing: true,
    endpoints: ["127.0.0.1:1"],
  };
  const epp = await runEpp({ ...base, certPath: dir });
  const { ExternalProcessor } = loadProtos();
  const client = new ExternalProcessor(
    `127.0.0.1:${epp.grpcPort}`,
    grpc.credentials.createSsl(Buffer.from(cert)),
    {
      "grpc.ssl_target_name_override": "localhost",
    },
  ) as unknown as grpc.Client;
  try {
    assert.equal(epp.certPem, cert);
    // the TLS handshake succeeds only if the server presents the given certificate
    await new Promise<void>((resolve, reject) =>
      client.waitForReady(Date.now() + 10_000, (e) => (e ? reject(e) : resolve())),
    );
  } finally {
    client.close();
    await epp.close();
  }
  rmSync(join(dir, "tls.key"));
  await assert.rejects(runEpp({ ...base, certPath: dir }), /cannot read .*tls\.key/);
  rmSync(dir, { recursive: true });
});
