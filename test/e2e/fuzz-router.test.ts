/**
 * HTTP-level fuzz of a running `llmd router` (fast-check): thousands of random and mutated
 * bodies, paths, methods and headers over one keep-alive connection pool. The upstream (a fake
 * model server) is always up, so no answer may be a 5xx; every error answer has the OpenAI
 * shape; the router keeps serving throughout and afterwards.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import fc from "fast-check";
import { Pool } from "undici";
import * as H from "../../src/framework/headers.js";
import { freePort, type LlmdChild, runLlmd } from "./helpers.js";
import { type FakeUpstream, fakeUpstream, waitEndpoints } from "./router-helpers.js";

const RUNS = Number(process.env.LLMD_FUZZ_RUNS ?? 3000);
let upstream: FakeUpstream;
let router: LlmdChild;
let url: string;
let pool: Pool;

before(async () => {
  upstream = await fakeUpstream("m");
  const port = await freePort();
  router = runLlmd([
    "router",
    "--port",
    String(port),
    "--endpoint",
    upstream.hostPort,
    "--max-body-bytes",
    String(256 * 1024),
  ]);
  url = `http://127.0.0.1:${port}`;
  await waitEndpoints(url, (eps) => eps.length === 1 && eps[0]!.ready);
  pool = new Pool(url, { connections: 4, keepAliveTimeout: 30_000 });
});

after(async () => {
  await pool?.close();
  await router?.stop();
  await upstream?.close();
});

const VALID_BODIES = [
  { model: "m", prompt: "hello", max_tokens: 4 },
  { model: "m", prompt: ["a", "b"], stream: true },
  { model: "m", prompt: [1, 2, 3], max_tokens: 1, temperature: 0.5 },
  { model: "m", messages: [{ role: "user", content: "hi" }] },
  {
    model: "m",
    messages: [
      { role: "system", content: "s" },
      { role: "user", content: [{ type: "text", text: "x" }] },
    ],
    stream: true,
    stream_options: { include_usage: true },
  },
  { model: "m", messages: [{ role: "user", content: "hi" }], max_completion_tokens: 3, stop: ["\n"], n: 1 },
].map((b) => JSON.stringify(b));

const PATHS = [
  "/v1/completions",
  "/v1/chat/completions",
  "/v1/models",
  "/v1/embeddings",
  "/v1/completions/",
  "/v1//completions",
  "/V1/completions",
  "/health",
  "/metrics",
  "/llmd/endpoints",
  "/llmd/config",
  "/",
  "/v1",
  "/v1/completions?x=1",
  "/v1/chat/completions?stream=true&a=%00",
  "/v1/%2e%2e/metrics",
  "/../../etc/passwd",
  "/v1/completions%00",
  "/v1/chat/completions#frag",
];

const pathArb = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom("/v1/completions", "/v1/chat/completions") },
  { weight: 2, arbitrary: fc.constantFrom(...PATHS) },
  fc
    .array(fc.stringMatching(/^[A-Za-z0-9._~%-]{0,12}$/), { maxLength: 5 })
    .map((segs) => `/${segs.join("/")}`),
  fc
    .tuple(fc.constantFrom(...PATHS), fc.stringMatching(/^[A-Za-z0-9=&%._-]{0,30}$/))
    .map(([p, q]) => `${p}?${q}`),
);

const methodArb = fc.oneof(
  { weight: 6, arbitrary: fc.constant("POST") },
  { weight: 2, arbitrary: fc.constantFrom("GET", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD") },
);

const jsonValue = fc.jsonValue({ maxDepth: 4 });

/** A valid body with one field replaced, added or removed. */
const fieldMutation = fc
  .tuple(
    fc.constantFrom(...VALID_BODIES),
    fc.constantFrom(
      "model",
      "prompt",
      "messages",
      "max_tokens",
      "max_completion_tokens",
      "stream",
      "stream_options",
      "temperature",
      "n",
      "stop",
      "min_tokens",
      "kv_transfer_params",
      "cache_salt",
      "__proto__",
      "constructor",
    ),
    fc.option(jsonValue, { nil: undefined }),
  )
  .map(([b, k, v]) => {
    const o = JSON.parse(b) as Record<string, unknown>;
    if (v === undefined) delete o[k];
    else o[k] = v;
    return k === "__proto__"
      ? b.replace(/^\{/, `{"__proto__":${JSON.stringify(v ?? null)},`)
      : JSON.stringify(o);
  });

/** A valid body with byte-level damage: insertions, deletions, truncation. */
const byteMutation = fc
  .tuple(
    fc.constantFrom(...VALID_BODIES),
    fc.array(fc.tuple(fc.nat(), fc.nat({ max: 8 }), fc.string({ unit: "binary", maxLength: 4 })), {
      minLength: 1,
      maxLength: 4,
    }),
  )
  .map(([b, edits]) => {
    let s = b;
    for (const [at, del, ins] of edits) {
      const i = at % (s.length + 1);
      s = s.slice(0, i) + ins + s.slice(i + del);
    }
    return s;
  });

const bodyArb = fc.oneof(
  { weight: 2, arbitrary: fc.constantFrom(...VALID_BODIES) },
  { weight: 4, arbitrary: fieldMutation },
  { weight: 4, arbitrary: byteMutation },
  { weight: 2, arbitrary: jsonValue.map((v) => JSON.stringify(v)) },
  { weight: 1, arbitrary: fc.string({ unit: "binary", maxLength: 200 }) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)) },
  { weight: 1, arbitrary: fc.constant("") },
  {
    weight: 1,
    arbitrary: fc.nat({ max: 20_000 }).map((n) => `{"model":"m","prompt":${"[".repeat(n)}${"]".repeat(n)}}`),
  },
  {
    weight: 1,
    arbitrary: fc.nat({ max: 300 * 1024 }).map((n) => JSON.stringify({ model: "m", prompt: "x".repeat(n) })),
  },
);

const headerName = fc
  .stringMatching(/^[a-z][a-z0-9-]{0,20}$/)
  .filter(
    (h) =>
      ![
        "connection",
        "keep-alive",
        "transfer-encoding",
        "upgrade",
        "expect",
        "host",
        "content-length",
        "te",
        "trailer",
      ].includes(h),
  );
const headerValue = fc.stringMatching(/^[\x20-\x7e]{0,60}$/).map((v) => v.trim());
const headersArb = fc
  .tuple(
    fc.dictionary(headerName, headerValue, { maxKeys: 5 }),
    fc.option(
      fc.constantFrom(
        "application/json",
        "text/plain",
        "application/json; charset=utf-16",
        "multipart/form-data; boundary=x",
        "",
      ),
      { nil: undefined },
    ),
    fc.subarray([
      H.DESTINATION_ENDPOINT,
      H.PREFILLER_HOST_PORT,
      H.OBJECTIVE,
      H.FAIRNESS_ID,
      H.MODEL_NAME_REWRITE,
      "content-encoding",
      "authorization",
      H.REQUEST_ID,
      "prefer",
    ]),
    headerValue,
  )
  .map(([extra, ct, special, v]) => {
    const h: Record<string, string> = { ...extra };
    if (ct !== undefined) h["content-type"] = ct;
    for (const s of special) h[s] = s === "content-encoding" ? "gzip" : v;
    return h;
  });

interface Outcome {
  status: number;
  contentType: string;
  body: string;
}

async function send(method: string, path: string, headers: Record<string, string>, body: string | Buffer) {
  const r = await pool.request({
    method,
    path,
    headers,
    body: method === "GET" || method === "HEAD" ? undefined : body,
  });
  let text = "";
  for await (const c of r.body) text += (c as Buffer).toString("utf8");
  return {
    status: r.statusCode,
    contentType: String(r.headers["content-type"] ?? ""),
    body: text,
  } as Outcome;
}

function checkOutcome(method: string, path: string, o: Outcome): void {
  assert.ok(o.status < 500, `${method} ${path} → ${o.status} ${o.body.slice(0, 300)}`);
  if (o.status >= 400 && method !== "HEAD") {
    assert.match(o.contentType, /application\/json/, `${method} ${path} → ${o.status}: ${o.contentType}`);
    const j = JSON.parse(o.body) as { error?: { message?: unknown; type?: unknown } };
    assert.equal(typeof j.error?.message, "string", o.body);
    assert.equal(typeof j.error?.type, "string", o.body);
    assert.ok("param" in j.error! && "code" in j.error!, o.body);
  }
}

test(`fuzz: ${RUNS} random requests never get a 5xx and errors keep the OpenAI shape`, async (t) => {
  const statuses = new Map<number, number>();
  let dropped = 0;
  await fc.assert(
    fc.asyncProperty(methodArb, pathArb, headersArb, bodyArb, async (method, path, headers, body) => {
      let o: Outcome;
      try {
        o = await send(method, path, headers, body);
      } catch (e) {
        // 413 answers close the connection; the client may see the close while still sending
        const code = (e as { code?: string }).code ?? "";
        if (
          Buffer.byteLength(body) > 256 * 1024 &&
          (code === "UND_ERR_SOCKET" || code === "EPIPE" || code === "ECONNRESET")
        ) {
          dropped++;
          return;
        }
        throw new Error(`${method} ${path} ${JSON.stringify(headers)}: ${code} ${(e as Error).message}`);
      }
      statuses.set(o.status, (statuses.get(o.status) ?? 0) + 1);
      checkOutcome(method, path, o);
    }),
    { numRuns: RUNS, seed: Number(process.env.LLMD_FUZZ_SEED ?? 20261129), endOnFailure: true },
  );
  t.diagnostic(
    `statuses ${JSON.stringify([...statuses].sort((a, b) => a[0] - b[0]))}, closed on 413: ${dropped}`,
  );
  const total = [...statuses.values()].reduce((a, b) => a + b, 0) + dropped;
  assert.equal(total, RUNS);
  // the mix exercised both successes and refusals
  assert.ok((statuses.get(200) ?? 0) > 0, JSON.stringify([...statuses]));
  assert.ok((statuses.get(400) ?? 0) > 0, JSON.stringify([...statuses]));
  assert.equal(router.child.exitCode, null, "the router is still running");
  const h = await fetch(`${url}/health`);
  assert.equal(h.status, 200);
  const ok = await send("POST", "/v1/completions", { "content-type": "application/json" }, VALID_BODIES[0]!);
  assert.equal(ok.status, 200, ok.body);
  const st = await send("POST", "/v1/completions", { "content-type": "application/json" }, VALID_BODIES[1]!);
  assert.equal(st.status, 200);
  assert.ok(st.body.trimEnd().endsWith("data: [DONE]"), st.body);
});
