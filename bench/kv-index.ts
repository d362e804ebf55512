/**
 * Precise KV index figures (issue "Precise prefix-cache routing from KV events"):
 *
 * 1. Ingestion, block events/s on one core (target ≥ 1,000,000): `BlockStored` events of one
 *    block each (the common vLLM shape during decode; prompts arrive as multi-block events,
 *    which are cheaper per block), random token ids < 150k, 64 endpoints, chained parents,
 *    one `BlockRemoved` per 4 stores, into an index at steady state (bounded at 2^18 request keys,
 *    already full, so inserts evict). Measured (a) index only, from decoded events, and
 *    (b) end to end from msgpack payloads (decode + index, through the subscriber's
 *    `BatchIngester`), batches of 16 events.
 *    Extra lines (not the target's worst case): a realistic mix — per request a prefill
 *    `BlockStored` of 8–128 blocks (half of them continuing an earlier sequence of the endpoint),
 *    then 0–16 decode `BlockStored` events of one block; each endpoint's engine holds 2,048
 *    blocks and removes its oldest one (`BlockRemoved`, one hash) for each block beyond. Counted
 *    per block stored or removed, into an index warmed with the same mix.
 * 2. Lookup of an 8k-token prompt against 64 endpoints, p50 (target ≤ 100 µs): (a) LongestPrefix
 *    over precomputed request keys, (b) request-key computation + LongestPrefix, cold (every
 *    block hashed), (c) the same through the producer's PromptKeyCache for a multi-turn shape
 *    (7,680 tokens shared with recent prompts, new 512-token tail). The index holds the prompt's prefix on 10 endpoints at
 *    different lengths and unrelated chains on all 64.
 *
 * Prints each figure and its ratio to the target (ratio ≥ 1 = target met for throughput,
 * ≤ 1 for latency). Run: `node --expose-gc --import tsx bench/kv-index.ts [--block-size 16] [--events N]`.
 * Figures are given per CPU-second of the process (what "one core" means on a shared machine)
 * and per wall-second.
 */
import { loadavg } from "node:os";
import { blockStored, encodeBatch } from "../src/kvcache/events/codec.js";
import { BatchIngester } from "../src/kvcache/events/ingest.js";
import { U64 } from "../src/kvcache/events/msgpack.js";
import type { EventBatch, KvEvent } from "../src/kvcache/events/types.js";
import { KvBlockIndex } from "../src/kvcache/precise/index.js";
import { modelRootKey, PromptKeyCache, promptKeys } from "../src/kvcache/precise/request-keys.js";

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

/**
 * A compact event stream: one-block events per endpoint, each chained on the previous block of
 * its endpoint (a new sequence every 32 blocks), one `BlockRemoved` per 4 stores. Stored
 * compactly (flat typed arrays) so that the bench's own heap does not dominate GC; event objects
 * are materialized on the fly as views, as a decoder would allocate them.
 */
interface Stream {
  n: number;
  ep: Int32Array;
  kind: Uint8Array; // 0 stored, 1 removed
  hash: Uint32Array; // pair per event
  parent: Int32Array; // index of the parent event, -1 = none
  tokens: Uint32Array; // BS per event
}

function makeStream(n: number): Stream {
  const st: Stream = {
    n,
    ep: new Int32Array(n),
    kind: new Uint8Array(n),
    hash: new Uint32Array(2 * n),
    parent: new Int32Array(n).fill(-1),
    tokens: new Uint32Array(n * BS),
  };
  const last = new Int32Array(ENDPOINTS).fill(-1);
  const stored: number[][] = Array.from({ length: ENDPOINTS }, () => []);
  const seqLen = new Int32Array(ENDPOINTS);
  for (let i = 0; i < n; i++) {
    const ep = i % ENDPOINTS;
    st.ep[i] = ep;
    if (i % 5 === 4 && stored[ep]!.length > 0) {
      const j = stored[ep]!.shift()!;
      st.kind[i] = 1;
      st.hash[2 * i] = st.hash[2 * j]!;
      st.hash[2 * i + 1] = st.hash[2 * j + 1]!;
      continue;
    }
    st.hash.set(pair(i), 2 * i);
    for (let k = 0; k < BS; k++) st.tokens[i * BS + k] = rnd() % 150_000;
    if (seqLen[ep]! % 32 !== 0) st.parent[i] = last[ep]!;
    seqLen[ep]!++;
    last[ep] = i;
    stored[ep]!.push(i);
  }
  return st;
}

/** Event i of a stream (fresh view objects). */
function eventAt(st: Stream, i: number): KvEvent {
  const blockHashes = st.hash.subarray(2 * i, 2 * i + 2);
  if (st.kind[i] === 1) return { type: "BlockRemoved", blockHashes, medium: "GPU", groupIdx: null };
  const p = st.parent[i]!;
  return {
    type: "BlockStored",
    blockHashes,
    parentBlockHash: p < 0 ? null : new U64(st.hash[2 * p]!, st.hash[2 * p + 1]!),
    tokenIds: st.tokens.subarray(i * BS, (i + 1) * BS),
    blockSize: BS,
    loraId: null,
    medium: "GPU",
    loraName: null,
    extraKeys: null,
    groupIdx: null,
    kvCacheSpecKind: null,
    kvCacheSpecSlidingWindow: null,
  };
}

const gc = (globalThis as { gc?: () => void }).gc;

/** Wall and process-CPU seconds of `f` (CPU time is what "on one core" means on a shared machine). */
function timed(f: () => void): { wall: number; cpu: number } {
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  f();
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const c = process.cpuUsage(c0);
  return { wall, cpu: (c.user + c.system) / 1e6 };
}

/** Index at steady state: bounded at MAX_KEYS request keys and already full (inserts evict). */
const MAX_KEYS = 1 << 18;
function steadyIndex(): KvBlockIndex {
  const idx = new KvBlockIndex({ blockSize: BS, maxKeys: MAX_KEYS });
  for (let i = 0; i < ENDPOINTS; i++) idx.endpointSlot(`10.0.0.${i}:8000`);
  const warm = makeStream(MAX_KEYS * 2);
  for (let i = 0; i < warm.n; i++) idx.apply(warm.ep[i]!, MODEL, eventAt(warm, i));
  return idx;
}

function ingestIndexOnly(): { wall: number; cpu: number } {
  const idx = steadyIndex();
  const st = makeStream(EVENTS);
  gc?.();
  const t = timed(() => {
    for (let i = 0; i < st.n; i++) idx.apply(st.ep[i]!, MODEL, eventAt(st, i));
  });
  return { wall: st.n / t.wall, cpu: st.n / t.cpu };
}

/** msgpack payloads of `n` events: batches of 16 events of one endpoint, as one engine step would publish. */
function encodePayloads(n: number, epOf: (i: number) => number, at: (i: number) => KvEvent): Payload[] {
  const perEp: KvEvent[][] = Array.from({ length: ENDPOINTS }, () => []);
  for (let i = 0; i < n; i++) perEp[epOf(i)]!.push(at(i));
  const payloads: Payload[] = [];
  for (let ep = 0; ep < ENDPOINTS; ep++) {
    const l = perEp[ep]!;
    for (let i = 0; i < l.length; i += 16) {
      const b: EventBatch = { ts: 1, events: l.slice(i, i + 16), dataParallelRank: 0 };
      payloads.push({ ep, buf: encodeBatch(b) });
    }
  }
  return payloads;
}

interface Payload {
  ep: number;
  buf: Uint8Array;
}

/** Decodes and applies every payload; timed after a GC. Returns blocks per wall- and CPU-second. */
function ingestPayloads(
  idx: KvBlockIndex,
  payloads: Payload[],
  blocks: number,
): { wall: number; cpu: number } {
  // exactly what the subscriber does with a payload (ingest.ts)
  const ing = new BatchIngester(idx);
  const drops = { unknown_parent: 0, block_size_mismatch: 0, token_count_mismatch: 0, unknown_engine_key: 0 };
  const models: string[] = [];
  gc?.();
  const t = timed(() => {
    for (const { ep, buf } of payloads) ing.ingest(ep, MODEL, buf, drops, models);
  });
  return { wall: blocks / t.wall, cpu: blocks / t.cpu };
}

function ingestEndToEnd(): { wall: number; cpu: number } {
  const st = makeStream(EVENTS);
  const payloads = encodePayloads(
    st.n,
    (i) => st.ep[i]!,
    (i) => eventAt(st, i),
  );
  return ingestPayloads(steadyIndex(), payloads, st.n);
}

/**
 * The realistic mix (see module doc), compact like {@link Stream}: event i has `nb[i]` blocks
 * whose hashes start at pair `off[i]` (and, for stores, tokens at `off[i]·BS`).
 */
interface MixStream {
  n: number;
  blocks: number;
  ep: Int32Array;
  kind: Uint8Array; // 0 stored, 1 removed
  nb: Int32Array;
  off: Int32Array;
  parent: Int32Array; // block whose hash is the parent, -1 = none
  hash: Uint32Array; // pair per block
  tokens: Uint32Array; // BS per block
}

const MIX_ENGINE_BLOCKS = 2048;

function makeMixStream(minBlocks: number): MixStream {
  const ep: number[] = [];
  const kind: number[] = [];
  const nb: number[] = [];
  const off: number[] = [];
  const parent: number[] = [];
  let nBlocks = 0; // block ids (stored blocks; removed ones refer to them)
  const cap = minBlocks + 256;
  const hash = new Uint32Array(2 * cap);
  const toks = new Uint32Array(cap * BS);
  const cached: number[][] = Array.from({ length: ENDPOINTS }, () => []); // per endpoint, FIFO
  const live = new Uint8Array(cap);
  const seqEnds: number[][] = Array.from({ length: ENDPOINTS }, () => []);
  let blockEvents = 0;
  const store = (e: number, n: number, par: number) => {
    const first = nBlocks;
    for (let b = 0; b < n; b++) {
      hash.set(pair(nBlocks), 2 * nBlocks);
      for (let k = 0; k < BS; k++) toks[nBlocks * BS + k] = rnd() % 150_000;
      live[nBlocks] = 1;
      cached[e]!.push(nBlocks++);
    }
    ep.push(e);
    kind.push(0);
    nb.push(n);
    off.push(first);
    parent.push(par);
    blockEvents += n;
    // the engine evicts its oldest blocks beyond its capacity
    while (cached[e]!.length > MIX_ENGINE_BLOCKS) {
      const old = cached[e]!.shift()!;
      live[old] = 0;
      ep.push(e);
      kind.push(1);
      nb.push(1);
      off.push(old);
      parent.push(-1);
      blockEvents++;
    }
    return nBlocks - 1;
  };
  while (nBlocks + 128 + 16 < cap && blockEvents < minBlocks) {
    const e = rnd() % ENDPOINTS;
    const ends = seqEnds[e]!;
    const cont = ends.filter((b) => live[b] === 1);
    const par = cont.length > 0 && rnd() % 2 === 0 ? cont[rnd() % cont.length]! : -1;
    let last = store(e, 8 + (rnd() % 121), par);
    const decode = rnd() % 17;
    for (let d = 0; d < decode && nBlocks + 1 < cap; d++) last = store(e, 1, last);
    ends.push(last);
    if (ends.length > 8) ends.shift();
  }
  return {
    n: ep.length,
    blocks: blockEvents,
    ep: Int32Array.from(ep),
    kind: Uint8Array.from(kind),
    nb: Int32Array.from(nb),
    off: Int32Array.from(off),
    parent: Int32Array.from(parent),
    hash,
    tokens: toks,
  };
}

function mixEventAt(st: MixStream, i: number): KvEvent {
  const o = st.off[i]!;
  const n = st.nb[i]!;
  const blockHashes = st.hash.subarray(2 * o, 2 * (o + n));
  if (st.kind[i] === 1) return { type: "BlockRemoved", blockHashes, medium: "GPU", groupIdx: null };
  const p = st.parent[i]!;
  return {
    type: "BlockStored",
    blockHashes,
    parentBlockHash: p < 0 ? null : new U64(st.hash[2 * p]!, st.hash[2 * p + 1]!),
    tokenIds: st.tokens.subarray(o * BS, (o + n) * BS),
    blockSize: BS,
    loraId: null,
    medium: "GPU",
    loraName: null,
    extraKeys: null,
    groupIdx: null,
    kvCacheSpecKind: null,
    kvCacheSpecSlidingWindow: null,
  };
}

/** Index warmed with the mix (bounded at MAX_KEYS request keys). */
function mixIndex(): KvBlockIndex {
  const idx = new KvBlockIndex({ blockSize: BS, maxKeys: MAX_KEYS });
  for (let i = 0; i < ENDPOINTS; i++) idx.endpointSlot(`10.0.0.${i}:8000`);
  const warm = makeMixStream(MAX_KEYS * 2);
  for (let i = 0; i < warm.n; i++) idx.apply(warm.ep[i]!, MODEL, mixEventAt(warm, i));
  return idx;
}

function ingestMixIndexOnly(): { wall: number; cpu: number } {
  const idx = mixIndex();
  const st = makeMixStream(EVENTS * 4);
  gc?.();
  const t = timed(() => {
    for (let i = 0; i < st.n; i++) idx.apply(st.ep[i]!, MODEL, mixEventAt(st, i));
  });
  return { wall: st.blocks / t.wall, cpu: st.blocks / t.cpu };
}

function ingestMixEndToEnd(): { wall: number; cpu: number } {
  const st = makeMixStream(EVENTS * 4);
  const payloads = encodePayloads(
    st.n,
    (i) => st.ep[i]!,
    (i) => mixEventAt(st, i),
  );
  return ingestPayloads(mixIndex(), payloads, st.blocks);
}

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

function lookup(): { warm: number; lookupOnly: number; withKeys: number; p99Only: number; p99Keys: number } {
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
  // warm: multi-turn shape — every prompt shares its first 7,680 tokens with recent ones and
  // has a new 512-token tail; the producer's PromptKeyCache hashes only the tail
  const variants = Array.from({ length: 64 }, () => {
    const v = prompt.slice();
    v.set(tokens(512), 8192 - 512);
    return v;
  });
  const cache = new PromptKeyCache(8);
  const [rh, rl] = [Number(root >> 32n), Number(root & 0xffffffffn)];
  for (const v of variants) idx.longestPrefix(cache.keys(MODEL, rh, rl, v, BS).keys);
  const warm: number[] = [];
  for (let i = 0; i < N; i++) {
    const v = variants[i % variants.length]!;
    const t0 = process.hrtime.bigint();
    idx.longestPrefix(cache.keys(MODEL, rh, rl, v, BS).keys);
    warm.push(Number(process.hrtime.bigint() - t0) / 1e3);
  }
  return {
    warm: percentile(warm, 50),
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
const fmt = (x: number) => Math.round(x).toLocaleString("en-US");
for (const [label, f] of [
  ["index only        ", ingestIndexOnly],
  ["msgpack + index   ", ingestEndToEnd],
  ["mix, index only   ", ingestMixIndexOnly],
  ["mix, msgpack+index", ingestMixEndToEnd],
] as const) {
  const r = f();
  console.log(
    `ingestion (${label}): ${fmt(r.cpu)} block events per CPU-second (ratio to 1M target ${(r.cpu / INGEST_TARGET).toFixed(2)}); ${fmt(r.wall)} per wall-second`,
  );
}
const l = lookup();
console.log(
  `lookup 8k tokens, 64 eps (keys precomputed): p50 ${l.lookupOnly.toFixed(1)} µs (p99 ${l.p99Only.toFixed(1)})  ratio to 100 µs target ${(l.lookupOnly / LOOKUP_TARGET_US).toFixed(2)}`,
);
console.log(
  `lookup 8k tokens, 64 eps (keys + lookup):    p50 ${l.withKeys.toFixed(1)} µs (p99 ${l.p99Keys.toFixed(1)})  ratio to 100 µs target ${(l.withKeys / LOOKUP_TARGET_US).toFixed(2)}`,
);
console.log(
  `lookup 8k tokens, 64 eps (multi-turn, cached prefix keys): p50 ${l.warm.toFixed(1)} µs  ratio to 100 µs target ${(l.warm / LOOKUP_TARGET_US).toFixed(2)}`,
);
