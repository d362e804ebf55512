/**
 * Precise KV index figures (issue "Precise prefix-cache routing from KV events"):
 *
 * 1. Ingestion, block events/s on one core (target ≥ 1,000,000): `BlockStored` events of one
 *    block each (the common vLLM shape during decode; prompts arrive as multi-block events,
 *    which are cheaper per block), random token ids < 150k, 64 endpoints, chained parents,
 *    one `BlockRemoved` per 4 stores, into an index at steady state (bounded at 2^18 request keys,
 *    already full, so inserts evict). Measured (a) index only, from decoded events, and
 *    (b) end to end from msgpack payloads (decode + index), batches of 16 events.
 * 2. Lookup of an 8k-token prompt against 64 endpoints, p50 (target ≤ 100 µs): (a) LongestPrefix
 *    over precomputed request keys, (b) request-key computation + LongestPrefix (what the
 *    producer does per request). The index holds the prompt's prefix on 10 endpoints at
 *    different lengths and unrelated chains on all 64.
 *
 * Prints each figure and its ratio to the target (ratio ≥ 1 = target met for throughput,
 * ≤ 1 for latency). Run: `node --import tsx bench/kv-index.ts [--block-size 16]`.
 */
import { loadavg } from "node:os";
import { blockStored, decodeBatch, encodeBatch } from "../src/kvcache/events/codec.js";
import { U64 } from "../src/kvcache/events/msgpack.js";
import type { EventBatch, KvEvent } from "../src/kvcache/events/types.js";
import { KvBlockIndex } from "../src/kvcache/precise/index.js";
import { modelRootKey, promptKeys } from "../src/kvcache/precise/request-keys.js";

const arg = (name: string, def: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};
const BS = arg("block-size", 16);
const ENDPOINTS = 64;
const EVENTS = arg("events", 400_000);
const MODEL = "bench/model";
const INGEST_TARGET = 1_000_000;
const LOOKUP_TARGET_US = 100;

let seed = 0x2545f491;
const rnd = () => {
  seed ^= seed << 13;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return seed >>> 0;
};
const tokens = (n: number) => Uint32Array.from({ length: n }, () => rnd() % 150_000);

function pair(i: number): Uint32Array {
  // engine hash: any 64-bit value
  return Uint32Array.from([rnd() | 0x80000000, i >>> 0]);
}

/** One-block events per endpoint, each chained on the previous block of its endpoint. */
function makeEvents(n: number): { ep: number; ev: KvEvent }[] {
  const out: { ep: number; ev: KvEvent }[] = [];
  const lastHash: (U64 | null)[] = new Array(ENDPOINTS).fill(null);
  const stored: Uint32Array[][] = Array.from({ length: ENDPOINTS }, () => []);
  let id = 0;
  for (let i = 0; i < n; i++) {
    const ep = i % ENDPOINTS;
    if (i % 5 === 4 && stored[ep]!.length > 0) {
      const h = stored[ep]!.shift()!;
      out.push({ ep, ev: { type: "BlockRemoved", blockHashes: h, medium: "GPU", groupIdx: null } });
      continue;
    }
    // a new sequence every 32 blocks
    const parent = id % 32 === 0 ? null : lastHash[ep]!;
    const h = pair(id++);
    out.push({
      ep,
      ev: blockStored({ blockHashes: h, parentBlockHash: parent, tokenIds: tokens(BS), blockSize: BS }),
    });
    lastHash[ep] = new U64(h[0]!, h[1]!);
    stored[ep]!.push(h);
  }
  return out;
}

function blockCount(evs: { ev: KvEvent }[]): number {
  let n = 0;
  for (const { ev } of evs) if (ev.type !== "AllBlocksCleared") n += ev.blockHashes.length / 2;
  return n;
}

/** Index at steady state: bounded at MAX_KEYS request keys and already full (inserts evict). */
const MAX_KEYS = 1 << 18;
function steadyIndex(): KvBlockIndex {
  const idx = new KvBlockIndex({ blockSize: BS, maxKeys: MAX_KEYS });
  for (let i = 0; i < ENDPOINTS; i++) idx.endpointSlot(`10.0.0.${i}:8000`);
  for (const { ep, ev } of makeEvents(MAX_KEYS * 2)) idx.apply(ep, MODEL, ev);
  return idx;
}

function ingestIndexOnly(): number {
  const idx = steadyIndex();
  const evs = makeEvents(EVENTS);
  const blocks = blockCount(evs);
  const t0 = process.hrtime.bigint();
  for (const { ep, ev } of evs) idx.apply(ep, MODEL, ev);
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  const st = idx.stats();
  const dropped = Object.values(st.drops).reduce((a, b) => a + b, 0);
  if (dropped > 0) console.log(`  (drops: ${JSON.stringify(st.drops)})`);
  return blocks / s;
}

function ingestEndToEnd(): number {
  const evs = makeEvents(EVENTS);
  const blocks = blockCount(evs);
  // batches of 16 events of one endpoint, as one engine step would publish
  const perEp: KvEvent[][] = Array.from({ length: ENDPOINTS }, () => []);
  for (const { ep, ev } of evs) perEp[ep]!.push(ev);
  const payloads: { ep: number; buf: Uint8Array }[] = [];
  for (let ep = 0; ep < ENDPOINTS; ep++) {
    const l = perEp[ep]!;
    for (let i = 0; i < l.length; i += 16) {
      const b: EventBatch = { ts: 1, events: l.slice(i, i + 16), dataParallelRank: 0 };
      payloads.push({ ep, buf: encodeBatch(b) });
    }
  }
  const idx = steadyIndex();
  const t0 = process.hrtime.bigint();
  for (const { ep, buf } of payloads) {
    const { batch } = decodeBatch(buf);
    for (const ev of batch.events) idx.apply(ep, MODEL, ev);
  }
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  return blocks / s;
}

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

function lookup(): { lookupOnly: number; withKeys: number; p99Only: number; p99Keys: number } {
  const idx = new KvBlockIndex({ blockSize: BS });
  const eps = Array.from({ length: ENDPOINTS }, (_, i) => idx.endpointSlot(`10.0.0.${i}:8000`));
  const prompt = tokens(8192);
  const nBlocks = Math.floor(8192 / BS);
  // the prompt's prefix on 10 endpoints, at lengths from 10% to 100%
  let id = 0;
  for (let k = 0; k < 10; k++) {
    const len = Math.max(1, Math.floor((nBlocks * (k + 1)) / 10));
    const hs = new Uint32Array(2 * len);
    for (let i = 0; i < len; i++) hs.set(pair(id++), 2 * i);
    idx.apply(
      eps[k]!,
      MODEL,
      blockStored({ blockHashes: hs, tokenIds: prompt.subarray(0, len * BS), blockSize: BS }),
    );
  }
  // unrelated chains everywhere (index size ~ 64 × 512 blocks)
  for (const ep of eps) {
    const hs = new Uint32Array(2 * nBlocks);
    for (let i = 0; i < nBlocks; i++) hs.set(pair(id++), 2 * i);
    idx.apply(ep, MODEL, blockStored({ blockHashes: hs, tokenIds: tokens(nBlocks * BS), blockSize: BS }));
  }
  const root = modelRootKey(MODEL);
  const keys = promptKeys(prompt, BS, root);
  const r = idx.longestPrefix(keys);
  if (r.blocks[eps[9]!] !== nBlocks)
    throw new Error(`bench setup: expected ${nBlocks} blocks, got ${r.blocks[eps[9]!]}`);
  const N = 3000;
  const only: number[] = [];
  const withKeys: number[] = [];
  for (let i = 0; i < 300; i++) idx.longestPrefix(promptKeys(prompt, BS, root));
  for (let i = 0; i < N; i++) {
    const t0 = process.hrtime.bigint();
    idx.longestPrefix(keys);
    only.push(Number(process.hrtime.bigint() - t0) / 1e3);
    const t1 = process.hrtime.bigint();
    idx.longestPrefix(promptKeys(prompt, BS, root));
    withKeys.push(Number(process.hrtime.bigint() - t1) / 1e3);
  }
  return {
    lookupOnly: percentile(only, 50),
    withKeys: percentile(withKeys, 50),
    p99Only: percentile(only, 99),
    p99Keys: percentile(withKeys, 99),
  };
}

console.log(
  `precise KV index bench — block size ${BS} tokens, ${ENDPOINTS} endpoints, node ${process.version}, load average ${loadavg()
    .map((x) => x.toFixed(1))
    .join(" ")}`,
);
const a = ingestIndexOnly();
console.log(
  `ingestion (index only):        ${Math.round(a).toLocaleString("en-US")} block events/s  ratio to 1M target ${(a / INGEST_TARGET).toFixed(2)}`,
);
const b = ingestEndToEnd();
console.log(
  `ingestion (msgpack + index):   ${Math.round(b).toLocaleString("en-US")} block events/s  ratio to 1M target ${(b / INGEST_TARGET).toFixed(2)}`,
);
const l = lookup();
console.log(
  `lookup 8k tokens, 64 eps (keys precomputed): p50 ${l.lookupOnly.toFixed(1)} µs (p99 ${l.p99Only.toFixed(1)})  ratio to 100 µs target ${(l.lookupOnly / LOOKUP_TARGET_US).toFixed(2)}`,
);
console.log(
  `lookup 8k tokens, 64 eps (keys + lookup):    p50 ${l.withKeys.toFixed(1)} µs (p99 ${l.p99Keys.toFixed(1)})  ratio to 100 µs target ${(l.withKeys / LOOKUP_TARGET_US).toFixed(2)}`,
);
