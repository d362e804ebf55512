/**
 * `llmd doctor` checks: pure functions over evidence gathered from a running stack, each
 * returning a verdict with the evidence and a fix hint. They encode the seeds' "is P/D
 * really working?" checklist — the silent failures people hit with llm-d on real hardware:
 * P/D configured but every request decode-only, prefill servers missing from the pool, no KV
 * transfers while P/D decisions happen, prefill and decode TTFT identical (no transfer in
 * the path), mismatched KV layouts between prefill and decode, a side-channel host of 0.0.0.0.
 * With precise prefix-cache routing (`GET /llmd/kv-events` says a precise producer is
 * configured) also: KV events that never reach the scheduler from a server serving traffic,
 * topic/model or block-size mismatches (the producer's drop counters), token ids that are not
 * the engine's, and zero precise hits while the servers see prefix reuse.
 */

/** A verdict. `skip` = not applicable to this stack (e.g. P/D checks on an aggregated stack). */
export type CheckStatus = "pass" | "fail" | "warn" | "skip";

/** One row of the doctor's table. */
export interface CheckResult {
  id: string;
  title: string;
  status: CheckStatus;
  /** what was seen, with numbers */
  evidence: string;
  /** how to fix it (empty when passing) */
  fix: string;
}

/** KV layout a model server advertises (`GET /llmd/kv/layout`). */
export interface KvLayout {
  engine_id?: string;
  model?: string;
  block_size?: number;
  kv_cache_dtype?: string;
  num_layers?: number;
  num_kv_heads?: number;
  head_dim?: number;
  attention_backend?: string;
  tp_size?: number;
  /** NIXL side-channel host the server puts in `remote_host` */
  side_channel_host?: string;
  side_channel_port?: number;
  [k: string]: unknown;
}

/** Fields that must match between a prefill and a decode server for a KV transfer to be correct. */
export const LAYOUT_FIELDS = [
  "model",
  "block_size",
  "kv_cache_dtype",
  "num_layers",
  "num_kv_heads",
  "head_dim",
  "attention_backend",
  "tp_size",
] as const;

/** What the doctor knows about one model server. */
export interface ServerEvidence {
  id: string;
  url: string;
  /** `llm-d.ai/role` label, null when unlabelled */
  role: string | null;
  /** ready in the router's pool */
  ready: boolean;
  /** reachable directly (its /metrics answered) */
  reachable: boolean;
  layout?: KvLayout;
  /** Σ vllm:time_to_first_token_seconds sum / count */
  ttftSum: number;
  ttftCount: number;
  /** vllm:nixl_xfer_time_seconds_count (transfers this server pulled) */
  kvTransfers: number;
  /** Σ vllm:nixl_bytes_transferred sum */
  kvBytes: number;
  /** vllm:nixl_num_failed_transfers_total */
  kvFailedTransfers: number;
  /** requests this server finished (Σ vllm:request_success_total) */
  requests: number;
  /** Σ vllm:prefix_cache_hits_total (tokens served from the prefix cache); absent = not read */
  prefixCacheHits?: number;
}

/** One endpoint's KV-event feed as `GET /llmd/kv-events` shows it (producer `health()`). */
export interface KvFeedEvidence {
  /** `ip:port` of the endpoint */
  endpointId: string;
  events: number;
  batches: number;
  gaps: number;
  replays: number;
  resyncs: number;
  /** -1 = no batch yet */
  lastSeq: number;
  drops: Record<string, number>;
  /** models named by the endpoint's topics / LoRA names */
  models: string[];
  /** requests where this endpoint matched ≥ 1 block */
  lookupHits?: number;
  matchedBlocks?: number;
}

/** A precise prefix-cache producer's health. */
export interface PreciseProducerEvidence {
  name: string;
  /** tokens per block of its request keys */
  blockSize: number;
  lookups: number;
  lookupHits: number;
  unusableTokenRequests: number;
  unknownModelRequests: number;
  endpoints: KvFeedEvidence[];
}

/** `GET /llmd/kv-events`. */
export interface KvEventsEvidence {
  /** a precise-prefix-cache-producer is configured */
  configured: boolean;
  producers: PreciseProducerEvidence[];
}

/** What the doctor knows about the router. */
export interface RouterEvidence {
  url: string;
  reachable: boolean;
  /** from `/llmd/config` */
  pdConfigured: boolean;
  profileHandler?: string;
  /** llm_d_epp_disagg_decision_total by decision_type */
  decisions: Record<string, number>;
  /** llm_d_epp_request_total summed */
  requests: number;
  /** llm_d_epp_prefix_indexer_hit_ratio histogram totals (absent = not read) */
  prefixHitRatio?: { sum: number; count: number };
}

/** All evidence. */
export interface Evidence {
  router: RouterEvidence;
  servers: ServerEvidence[];
  /** precise routing feed health; absent or `configured: false` = precise routing not configured */
  kvEvents?: KvEventsEvidence;
}

const isPrefill = (role: string | null) => role === "prefill" || role === "prefill-decode" || role === "both";
const isDecode = (role: string | null) =>
  role === null ||
  role === "decode" ||
  role === "prefill-decode" ||
  role === "both" ||
  role === "encode-prefill-decode";
const fmtMs = (s: number) => `${(s * 1000).toFixed(1)} ms`;

/** Minimum routed requests before "no decisions/transfers" is a failure rather than a warning. */
export const MIN_REQUESTS_FOR_VERDICT = 5;

/** Runs every check. */
export function runChecks(e: Evidence): CheckResult[] {
  const out: CheckResult[] = [];
  const r = e.router;
  const pdRequests = r.decisions["prefill-decode"] ?? 0;
  const decodeOnly = r.decisions["decode-only"] ?? 0;

  out.push({
    id: "router-reachable",
    title: "router reachable",
    status: r.reachable ? "pass" : "fail",
    evidence: r.reachable ? `${r.url} answered` : `${r.url} did not answer`,
    fix: r.reachable ? "" : "start the stack (llmd up) or give the right --url",
  });
  const ready = e.servers.filter((s) => s.ready);
  out.push({
    id: "pool-ready",
    title: "model servers ready in the EPP's pool",
    status:
      e.servers.length > 0 && ready.length === e.servers.length ? "pass" : ready.length > 0 ? "warn" : "fail",
    evidence: `${ready.length}/${e.servers.length} ready${e.servers
      .filter((s) => !s.ready)
      .map((s) => `; ${s.id} not ready`)
      .join("")}`,
    fix:
      ready.length === e.servers.length
        ? ""
        : "check the servers' /health and /metrics; the router scrapes them every 50 ms",
  });

  if (!r.pdConfigured) {
    out.push({
      id: "pd-configured",
      title: "P/D disaggregation configured",
      status: "skip",
      evidence: `profile handler ${r.profileHandler ?? "?"}: aggregated serving`,
      fix: "",
    });
  } else {
    const prefill = e.servers.filter((s) => isPrefill(s.role));
    const prefillReady = prefill.filter((s) => s.ready);
    out.push({
      id: "prefill-endpoints",
      title: "prefill endpoints present and ready",
      status: prefillReady.length > 0 ? (prefillReady.length === prefill.length ? "pass" : "warn") : "fail",
      evidence:
        prefill.length === 0
          ? "no endpoint has llm-d.ai/role=prefill in the pool"
          : `${prefillReady.length}/${prefill.length} prefill endpoints ready (${prefill.map((s) => `${s.id}${s.ready ? "" : " NOT READY"}`).join(", ")})`,
      fix:
        prefillReady.length > 0
          ? ""
          : "start prefill servers and label them llm-d.ai/role=prefill; check they answer /health",
    });
    const decided = pdRequests + decodeOnly;
    out.push({
      id: "pd-decisions",
      title: "P/D decisions happen (not decode-only)",
      status: pdRequests > 0 ? "pass" : decided >= MIN_REQUESTS_FOR_VERDICT ? "fail" : "warn",
      evidence: `${pdRequests} prefill-decode, ${decodeOnly} decode-only decisions (llm_d_epp_disagg_decision_total)`,
      fix:
        pdRequests > 0
          ? ""
          : decided >= MIN_REQUESTS_FOR_VERDICT
            ? "the decider never approves: set deciders.prefill on disagg-profile-handler and check prefix-based-pd-decider nonCachedTokens against your prompt lengths"
            : "send some traffic with long prompts, then run the doctor again",
    });
    const decode = e.servers.filter((s) => isDecode(s.role) && !isPrefill(s.role));
    const transfers = decode.reduce((a, s) => a + s.kvTransfers, 0);
    const failed = decode.reduce((a, s) => a + s.kvFailedTransfers, 0);
    const bytes = decode.reduce((a, s) => a + s.kvBytes, 0);
    out.push({
      id: "kv-transfers",
      title: "KV transfers happen when P/D is decided",
      status:
        pdRequests === 0 ? "skip" : transfers > 0 && failed === 0 ? "pass" : transfers > 0 ? "warn" : "fail",
      evidence: `${transfers} transfers pulled by decode servers (${(bytes / 1048576).toFixed(1)} MiB), ${failed} failed, for ${pdRequests} P/D decisions`,
      fix:
        transfers > 0 && failed === 0
          ? ""
          : "decode servers report no vllm:nixl_* transfers: check the kv-transfer config (NixlConnector) and that the prefill response carries kv_transfer_params",
    });
    const avg = (ss: ServerEvidence[]) => {
      const c = ss.reduce((a, s) => a + s.ttftCount, 0);
      return c === 0 ? null : ss.reduce((a, s) => a + s.ttftSum, 0) / c;
    };
    const pT = avg(prefill);
    const dT = avg(decode);
    let status: CheckStatus = "skip";
    let evidence = "not enough TTFT samples on prefill and decode servers";
    if (pdRequests > 0 && pT !== null && dT !== null) {
      const ratio = dT / pT;
      status = ratio < 0.9 ? "pass" : "fail";
      evidence = `mean TTFT prefill servers ${fmtMs(pT)}, decode servers ${fmtMs(dT)} (ratio ${ratio.toFixed(2)})`;
    }
    out.push({
      id: "ttft-split",
      title: "decode TTFT below prefill TTFT (a transfer is in the path)",
      status,
      evidence,
      fix:
        status === "fail"
          ? "decode servers recompute the prompt: the KV transfer is not used (check kv_transfer_params reach the decode server)"
          : "",
    });
    const mismatches: string[] = [];
    for (const p of prefill) {
      for (const d of decode) {
        if (!p.layout || !d.layout) continue;
        const diff = LAYOUT_FIELDS.filter(
          (f) => p.layout![f] !== undefined && d.layout![f] !== undefined && p.layout![f] !== d.layout![f],
        );
        if (diff.length > 0) {
          mismatches.push(
            `${p.id} vs ${d.id}: ${diff.map((f) => `${f} ${String(p.layout![f])}≠${String(d.layout![f])}`).join(", ")}`,
          );
        }
      }
    }
    const withLayout = [...prefill, ...decode].filter((s) => s.layout).length;
    out.push({
      id: "kv-layout",
      title: "prefill and decode KV layouts match",
      status: mismatches.length > 0 ? "fail" : withLayout === 0 ? "skip" : "pass",
      evidence:
        mismatches.length > 0
          ? mismatches.join("; ")
          : `${withLayout} servers advertise a layout; all prefill/decode pairs match`,
      fix:
        mismatches.length > 0
          ? "run prefill and decode with the same model, block size, KV dtype, attention backend and TP size"
          : "",
    });
    const zero = e.servers.filter(
      (s) => s.layout?.side_channel_host === "0.0.0.0" || s.layout?.side_channel_host === "::",
    );
    out.push({
      id: "side-channel-host",
      title: "NIXL side-channel host is routable",
      status: zero.length > 0 ? "fail" : withLayout === 0 ? "skip" : "pass",
      evidence:
        zero.length > 0
          ? `${zero.map((s) => s.id).join(", ")} advertise side_channel_host ${zero[0]!.layout!.side_channel_host}`
          : "every server advertises a routable side-channel host",
      fix:
        zero.length > 0
          ? "set VLLM_NIXL_SIDE_CHANNEL_HOST (--side-channel-host) to the pod IP, not 0.0.0.0"
          : "",
    });
  }
  out.push(...kvEventChecks(e));
  return out;
}

/** `http://host:port/...` → `host:port` (the index id of an endpoint). */
function hostPortOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return url;
  }
}

/** Ids of the precise KV-event checks, in order. */
export const KV_EVENT_CHECK_IDS = [
  "kv-events-flowing",
  "kv-events-tokens",
  "kv-events-model",
  "kv-events-block-size",
  "kv-events-gaps",
  "precise-hits",
] as const;

/**
 * Precise prefix-cache routing checks (all `skip` when it is not configured): the seeds' "KV
 * events never reached the scheduler, so precise prefix scoring returned 0".
 */
export function kvEventChecks(e: Evidence): CheckResult[] {
  const kv = e.kvEvents;
  const titles: Record<(typeof KV_EVENT_CHECK_IDS)[number], string> = {
    "kv-events-flowing": "KV events flow from every server that serves traffic",
    "kv-events-tokens": "precise scoring gets engine token ids (token-producer vllm backend)",
    "kv-events-model": "KV-event topics name the requests' model",
    "kv-events-block-size": "engine block size matches the precise index block size",
    "kv-events-gaps": "no KV events lost (sequence gaps)",
    "precise-hits": "precise prefix hits when the servers see prefix reuse",
  };
  if (!kv?.configured || kv.producers.length === 0) {
    return KV_EVENT_CHECK_IDS.map((id) => ({
      id,
      title: titles[id],
      status: "skip" as const,
      evidence: "precise prefix-cache routing is not configured (no precise-prefix-cache-producer)",
      fix: "",
    }));
  }
  const out: CheckResult[] = [];
  const feeds = new Map<string, KvFeedEvidence>();
  for (const p of kv.producers) for (const f of p.endpoints) feeds.set(f.endpointId, f);
  const sum = (f: (p: PreciseProducerEvidence) => number) => kv.producers.reduce((a, p) => a + f(p), 0);

  // 1. events flow from every server that served requests
  const silent: string[] = [];
  const flowing: string[] = [];
  const idle: string[] = [];
  for (const s of e.servers) {
    const f = feeds.get(hostPortOf(s.url));
    const events = f?.events ?? 0;
    if (events > 0) flowing.push(`${s.id} ${events} events (last seq ${f!.lastSeq})`);
    else if (s.requests > 0)
      silent.push(
        `${s.id} (${hostPortOf(s.url)}): ${s.requests} requests served, ${f ? "0 KV events received" : "no KV-event subscriber"}`,
      );
    else idle.push(s.id);
  }
  out.push({
    id: "kv-events-flowing",
    title: titles["kv-events-flowing"],
    status: silent.length > 0 ? "fail" : flowing.length > 0 ? "pass" : "warn",
    evidence:
      silent.length > 0
        ? `no KV events from ${silent.join("; ")}`
        : flowing.length > 0
          ? `${flowing.join(", ")}${idle.length > 0 ? `; no traffic yet: ${idle.join(", ")}` : ""}`
          : "no server has served traffic yet, and no KV events were received",
    fix:
      silent.length > 0
        ? `start the server with --kv-events-config '{"enable_kv_cache_events":true,"publisher":"zmq","endpoint":"tcp://*:5557","topic":"kv@<ip:port>@<model>"}' and label the endpoint llm-d.ai/kv-events-port with its port (check firewalls)`
        : flowing.length > 0
          ? ""
          : "send some traffic, then run the doctor again",
  });

  // 2. token ids
  const unusable = sum((p) => p.unusableTokenRequests);
  out.push({
    id: "kv-events-tokens",
    title: titles["kv-events-tokens"],
    status: unusable > 0 ? "fail" : "pass",
    evidence: `${unusable} requests scored without engine token ids, ${sum((p) => p.lookups)} scored with them`,
    fix:
      unusable > 0
        ? "configure token-producer with `vllm: {url: <a server with /v1/completions/render>}`; the estimate backend's ids never match"
        : "",
  });

  // 3. model / topic
  const unknown = sum((p) => p.unknownModelRequests);
  const badTopic = [...feeds.values()].filter((f) => (f.drops.bad_topic ?? 0) > 0);
  const models = [...new Set([...feeds.values()].flatMap((f) => f.models))];
  out.push({
    id: "kv-events-model",
    title: titles["kv-events-model"],
    status: unknown > 0 || badTopic.length > 0 ? "fail" : "pass",
    evidence:
      `${unknown} requests for a model no endpoint publishes events for; published models: ${models.length > 0 ? models.join(", ") : "none yet"}` +
      (badTopic.length > 0
        ? `; unparsable topics from ${badTopic.map((f) => `${f.endpointId} (${f.drops.bad_topic})`).join(", ")}`
        : ""),
    fix:
      unknown > 0 || badTopic.length > 0
        ? "set the servers' topic to kv@<ip:port>@<model> where <model> is the model name clients send (served-model-name, not the repo id)"
        : "",
  });

  // 4. block size
  const mism = [...feeds.values()].filter((f) => (f.drops.block_size_mismatch ?? 0) > 0);
  const sizes = [...new Set(kv.producers.map((p) => p.blockSize))].join("/");
  out.push({
    id: "kv-events-block-size",
    title: titles["kv-events-block-size"],
    status: mism.length > 0 ? "fail" : "pass",
    evidence:
      mism.length > 0
        ? `events dropped for block-size mismatch (index blockSize ${sizes}): ${mism.map((f) => `${f.endpointId} ${f.drops.block_size_mismatch}`).join(", ")}`
        : `index blockSize ${sizes}; no block_size_mismatch drops`,
    fix:
      mism.length > 0
        ? "set precise-prefix-cache-producer tokenProcessorConfig.blockSize to the servers' --block-size (or a divisor of it)"
        : "",
  });

  // 5. gaps
  const gappy = [...feeds.values()].filter((f) => f.gaps > 0 || f.resyncs > 0);
  out.push({
    id: "kv-events-gaps",
    title: titles["kv-events-gaps"],
    status: gappy.length > 0 ? "warn" : "pass",
    evidence:
      gappy.length > 0
        ? gappy
            .map((f) => `${f.endpointId}: ${f.gaps} gaps, ${f.replays} replays, ${f.resyncs} resyncs`)
            .join("; ")
        : `${feeds.size} feeds, no sequence gaps`,
    fix:
      gappy.length > 0
        ? "give the servers a replay_endpoint (label llm-d.ai/kv-events-replay-port) and raise hwm; check the EPP keeps up (lag metric)"
        : "",
  });

  // 6. precise hits while servers see prefix reuse
  const serverHits = e.servers.reduce((a, s) => a + (s.prefixCacheHits ?? 0), 0);
  const lookups = sum((p) => p.lookups);
  const hits = sum((p) => p.lookupHits);
  const ratio = e.router.prefixHitRatio;
  const ratioZero = ratio !== undefined && ratio.count > 0 && ratio.sum === 0;
  const perEp = [...feeds.values()]
    .filter((f) => (f.lookupHits ?? 0) > 0)
    .map((f) => `${f.endpointId} ${f.lookupHits}`)
    .join(", ");
  let status: CheckStatus;
  if (hits > 0) status = "pass";
  else if (serverHits > 0 && (lookups > 0 || ratioZero)) status = "fail";
  else status = "warn";
  out.push({
    id: "precise-hits",
    title: titles["precise-hits"],
    status,
    evidence:
      `${hits}/${lookups} requests matched cached blocks in the precise index${perEp ? ` (${perEp})` : ""}; ` +
      `servers served ${serverHits} prompt tokens from their prefix caches (Σ vllm:prefix_cache_hits)` +
      (ratio && ratio.count > 0
        ? `; llm_d_epp_prefix_indexer_hit_ratio mean ${(ratio.sum / ratio.count).toFixed(2)}`
        : ""),
    fix:
      status === "fail"
        ? "the servers reuse prefixes but the index never matches: check the checks above (events flowing, model in topic, block size, token ids)"
        : status === "warn"
          ? "send traffic that repeats a long prompt prefix, then run the doctor again"
          : "",
  });
  return out;
}
