import assert from "node:assert/strict";
import { once } from "node:events";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import { MetricsScraper } from "./scraper.js";
import { EndpointStore } from "./store.js";

test("scrapes /metrics and /v1/models into the endpoint, marks failures, recovers", async () => {
  let waiting = 2;
  let failing = false;
  const server = createServer((req, res) => {
    if (failing) {
      res.writeHead(500).end("down");
      return;
    }
    if (req.url === "/v1/models") {
      res
        .writeHead(200, { "content-type": "application/json" })
        .end(JSON.stringify({ data: [{ id: "m" }, { id: "lora-a" }] }));
      return;
    }
    res
      .writeHead(200)
      .end(
        `# TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting{model_name="m"} ${waiting}\n` +
          `# TYPE vllm:cache_config_info gauge\nvllm:cache_config_info{block_size="16",num_gpu_blocks="64"} 1\n`,
      );
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const port = (server.address() as AddressInfo).port;
  const store = new EndpointStore();
  const ep = store.upsert({
    id: "default/s",
    name: "s",
    namespace: "default",
    address: "127.0.0.1",
    port,
    hostPort: `127.0.0.1:${port}`,
    labels: {},
  });
  const errors: string[] = [];
  const scraper = new MetricsScraper(store, { intervalMs: 5, onPollError: (_e, m) => errors.push(m) });
  const waitUntil = async (cond: () => boolean) => {
    for (let i = 0; i < 400 && !cond(); i++) await new Promise((r) => setTimeout(r, 5));
    assert.ok(cond(), "condition not reached");
  };
  try {
    scraper.start();
    await waitUntil(() => store.ready().length === 1);
    assert.equal(ep.metrics.waitingQueueSize, 2);
    assert.equal(ep.metrics.cacheNumBlocks, 64);
    assert.deepEqual([...ep.models].sort(), ["lora-a", "m"]);
    waiting = 7;
    await waitUntil(() => ep.metrics.waitingQueueSize === 7);
    failing = true;
    await waitUntil(() => store.ready().length === 0);
    assert.ok(errors.some((m) => m.includes("HTTP 500")));
    failing = false;
    await waitUntil(() => store.ready().length === 1);
  } finally {
    await scraper.stop();
    server.close();
  }
});
