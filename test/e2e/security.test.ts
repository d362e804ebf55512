/**
 * Input safety of `llmd router` as a process: API keys (401 before anything reaches an
 * upstream), internal routing headers from clients never reach an upstream, an oversized body
 * is refused with 413 while the client is still sending it (so the router never buffers it
 * whole), and HTTPS with the official `openai` client trusting the router's certificate.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import OpenAI from "openai";
import { Agent, fetch as undiciFetch } from "undici";
import * as H from "../../src/framework/headers.js";
import { SYSTEM_OWNED_HEADERS } from "../../src/requestcontrol/pipeline.js";
import { freePort, type LlmdChild, runLlmd } from "./helpers.js";
import { type FakeUpstream, fakeUpstream, waitEndpoints } from "./router-helpers.js";

const KEY = "sk-test-0123456789";
const MAX_BODY = 64 * 1024;
let dir: string;
let upstream: FakeUpstream;
let router: LlmdChild;
let url: string;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "llmd-sec-"));
  writeFileSync(join(dir, "keys"), `# test keys\n${KEY}\nsk-other\n`);
  upstream = await fakeUpstream("m");
  const port = await freePort();
  router = runLlmd([
    "router",
    "--port",
    String(port),
    "--endpoint",
    upstream.hostPort,
    "--api-keys-file",
    join(dir, "keys"),
    "--max-body-bytes",
    String(MAX_BODY),
  ]);
  url = `http://127.0.0.1:${port}`;
  await waitEndpoints(url, (eps) => eps.length === 1 && eps[0]!.ready);
});

after(async () => {
  await router?.stop();
  await upstream?.close();
  rmSync(dir, { recursive: true, force: true });
});

const body = JSON.stringify({ model: "m", prompt: "hello", max_tokens: 4 });

function assertOpenAiError(json: unknown, status: number): void {
  const e = (json as { error?: Record<string, unknown> }).error;
  assert.ok(e, `OpenAI error shape expected, got ${JSON.stringify(json)}`);
  assert.equal(typeof e.message, "string");
  assert.equal(typeof e.type, "string");
  assert.ok("param" in e && "code" in e, JSON.stringify(e));
  void status;
}

describe("API keys", () => {
  test("requests without a valid bearer token get 401 and never reach an upstream", async () => {
    const before = upstream.seen.length;
    const variants: Record<string, string>[] = [
      {},
      { authorization: "" },
      { authorization: "Bearer" },
      { authorization: "Bearer " },
      { authorization: "Bearer sk-wrong" },
      { authorization: `Bearer ${KEY}x` },
      { authorization: `Bearer ${KEY.slice(0, -1)}` },
      { authorization: `Basic ${Buffer.from(`u:${KEY}`).toString("base64")}` },
      { authorization: KEY },
      { "x-api-key": KEY },
    ];
    for (const h of variants) {
      for (const path of ["/v1/completions", "/v1/chat/completions", "/v1/models"]) {
        const r = await fetch(`${url}${path}`, {
          method: path === "/v1/models" ? "GET" : "POST",
          headers: { "content-type": "application/json", ...h },
          body: path === "/v1/models" ? undefined : body,
        });
        assert.equal(r.status, 401, `${path} ${JSON.stringify(h)}`);
        const json = await r.json();
        assertOpenAiError(json, 401);
        assert.equal((json as { error: { code: string } }).error.code, "invalid_api_key");
      }
    }
    assert.equal(upstream.seen.length, before, "no unauthenticated request reached the upstream");
  });

  test("a valid key (any of the file's, case-insensitive scheme) passes", async () => {
    const before = upstream.seen.length;
    for (const auth of [`Bearer ${KEY}`, "bearer sk-other", `Bearer   ${KEY}  `]) {
      const r = await fetch(`${url}/v1/completions`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: auth },
        body,
      });
      assert.equal(r.status, 200, auth);
      await r.arrayBuffer();
    }
    assert.equal(upstream.seen.length, before + 3);
    for (const seen of upstream.seen.slice(before)) {
      assert.equal(
        seen.headers.authorization,
        undefined,
        "the router's API key never reaches a model server",
      );
    }
  });
});

describe("internal headers", () => {
  test("routing headers set by a client never reach an upstream", async () => {
    const internal: Record<string, string> = {};
    for (const h of H.INTERNAL_HEADERS) internal[h] = "10.0.0.66:9999";
    internal["x-gateway-destination-endpoint-anything"] = "10.0.0.66:9999";
    internal["X-Gateway-Destination-Endpoint"] = "10.0.0.66:9999";
    const n = upstream.seen.length;
    for (const stream of [false, true]) {
      const r = await fetch(`${url}/v1/completions`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${KEY}`, ...internal },
        body: JSON.stringify({ model: "m", prompt: "hi", stream }),
      });
      assert.equal(r.status, 200);
      await r.arrayBuffer();
      // the router's own answer says where it went: the real upstream, not the client's choice
      assert.equal(r.headers.get(H.DESTINATION_ENDPOINT_SERVED), upstream.hostPort);
    }
    assert.equal(upstream.seen.length, n + 2);
    for (const s of upstream.seen.slice(n)) {
      for (const name of Object.keys(s.headers)) {
        assert.ok(
          !H.INTERNAL_HEADERS.includes(name) && !name.startsWith("x-gateway-destination-endpoint"),
          `internal header ${name} reached the upstream`,
        );
        assert.ok(!String(s.headers[name]).includes("10.0.0.66"), `${name}: ${s.headers[name]}`);
      }
    }
  });

  test("input-control headers are consumed by the router, not forwarded (system-owned, reference/epp.md §1.4)", async () => {
    const n = upstream.seen.length;
    const r = await fetch(`${url}/v1/completions`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        authorization: `Bearer ${KEY}`,
        "x-custom-header": "kept",
        ...Object.fromEntries(
          SYSTEM_OWNED_HEADERS.filter((h) => h !== "content-length").map((h) => [
            h,
            h.includes("model-name-rewrite") ? "m" : "1",
          ]),
        ),
      },
      body,
    });
    assert.equal(r.status, 200);
    await r.arrayBuffer();
    const s = upstream.seen[n]!;
    assert.equal(s.headers["x-custom-header"], "kept", "other client headers are forwarded");
    for (const h of SYSTEM_OWNED_HEADERS) {
      if (h === "content-length") continue;
      assert.equal(s.headers[h], undefined, `${h} reached the upstream`);
    }
  });
});

describe("body limit", () => {
  test("a declared Content-Length over the limit gets 413 before any body is sent", async () => {
    const n = upstream.seen.length;
    const { status, json } = await new Promise<{ status: number; json: unknown }>((resolve, reject) => {
      const req = httpRequest(`${url}/v1/completions`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          authorization: `Bearer ${KEY}`,
          "content-length": String(MAX_BODY * 100),
        },
      });
      req.on("error", reject);
      req.on("response", (res) => {
        let t = "";
        res.on("data", (c) => {
          t += c;
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(t) }));
      });
      req.flushHeaders();
    });
    assert.equal(status, 413);
    assertOpenAiError(json, 413);
    assert.equal(upstream.seen.length, n);
  });

  test("a chunked body growing past the limit gets 413 while the client is still sending", async () => {
    const n = upstream.seen.length;
    const chunk = Buffer.alloc(16 * 1024, 0x61);
    const result = await new Promise<{ status: number; sentWhenAnswered: number; json: unknown }>(
      (resolve, reject) => {
        const req = httpRequest(`${url}/v1/completions`, {
          method: "POST",
          headers: { "content-type": "application/json", authorization: `Bearer ${KEY}` },
        });
        let sent = 0;
        let answered = false;
        let writes = 0;
        const pump = () => {
          // send at most 64× the limit; the answer must come long before that
          if (answered || writes >= 256) {
            if (!answered) req.end();
            return;
          }
          writes++;
          sent += chunk.length;
          req.write(chunk, () => setImmediate(pump));
        };
        req.on("error", (e) => {
          // the router closes the connection after answering 413: expected once answered
          if (!answered) reject(e);
        });
        req.on("response", (res) => {
          answered = true;
          const at = sent;
          let t = "";
          res.on("data", (c) => {
            t += c;
          });
          res.on("end", () => {
            req.destroy();
            resolve({ status: res.statusCode ?? 0, sentWhenAnswered: at, json: JSON.parse(t) });
          });
        });
        req.write('{"model":"m","prompt":"');
        pump();
      },
    );
    assert.equal(result.status, 413);
    assertOpenAiError(result.json, 413);
    assert.ok(
      result.sentWhenAnswered < 256 * chunk.length,
      `answered after ${result.sentWhenAnswered} of ${256 * chunk.length} bytes`,
    );
    assert.equal(upstream.seen.length, n, "the oversized request never reached an upstream");
    // still serving
    const r = await fetch(`${url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${KEY}` },
      body,
    });
    assert.equal(r.status, 200);
    await r.arrayBuffer();
  });
});

describe("TLS", () => {
  test("--cert-path: the openai client talks to the router over HTTPS trusting its certificate", async (t) => {
    const certDir = join(dir, "certs");
    try {
      execFileSync(
        "openssl",
        [
          "req",
          "-x509",
          "-newkey",
          "rsa:2048",
          "-nodes",
          "-days",
          "1",
          "-subj",
          "/CN=localhost",
          "-addext",
          "subjectAltName=DNS:localhost,IP:127.0.0.1",
          "-keyout",
          join(dir, "tls.key"),
          "-out",
          join(dir, "tls.crt"),
        ],
        { stdio: "ignore" },
      );
    } catch {
      t.skip("openssl is not installed");
      return;
    }
    execFileSync("mkdir", ["-p", certDir]);
    writeFileSync(join(certDir, "tls.crt"), readFileSync(join(dir, "tls.crt")));
    writeFileSync(join(certDir, "tls.key"), readFileSync(join(dir, "tls.key")));
    const port = await freePort();
    const tls = runLlmd([
      "router",
      "--port",
      String(port),
      "--endpoint",
      upstream.hostPort,
      "--cert-path",
      certDir,
      "--api-keys-file",
      join(dir, "keys"),
    ]);
    try {
      const base = `https://127.0.0.1:${port}`;
      const ca = readFileSync(join(certDir, "tls.crt"));
      const agent = new Agent({ connect: { ca } });
      const deadline = Date.now() + 30_000;
      for (;;) {
        try {
          const r = await undiciFetch(`${base}/llmd/endpoints`, { dispatcher: agent });
          const eps = ((await r.json()) as { endpoints: { ready: boolean }[] }).endpoints;
          if (eps.every((e) => e.ready)) break;
        } catch (e) {
          if (Date.now() > deadline) throw e;
        }
        assert.ok(Date.now() < deadline, "TLS router not ready");
        await new Promise((r) => setTimeout(r, 50));
      }
      const client = new OpenAI({
        baseURL: `${base}/v1`,
        apiKey: KEY,
        maxRetries: 0,
        fetch: undiciFetch as unknown as typeof fetch,
        fetchOptions: { dispatcher: agent } as never,
      });
      const c = await client.completions.create({ model: "m", prompt: "hi", max_tokens: 2 });
      assert.equal(c.choices[0]?.text, "ok");
      const s = await client.completions.create({ model: "m", prompt: "hi", max_tokens: 2, stream: true });
      let text = "";
      for await (const ev of s) text += ev.choices[0]?.text ?? "";
      assert.equal(text, "ok");
      // a client that does not trust the certificate is refused by TLS, not served in clear
      await assert.rejects(fetch(`${base}/v1/models`));
      await assert.rejects(fetch(`http://127.0.0.1:${port}/v1/models`));
      await agent.close();
    } finally {
      await tls.stop();
    }
  });
});
