/**
 * The simulated KV-transfer link of a P/D pair: `transfer = fixed latency + bytes / bandwidth`
 * (reference/engine.md §8 "Suggested simulator model"), with presets for the fabrics of §7.
 *
 * Preset values (effective bandwidth = line rate × derating; the sim's reference suggests a
 * 60–80 % derating, nixlbench measured ≈ 85 % on 400 G RDMA; fixed per-transfer latency from
 * the sim's profile guidance: NVLink 0.1–0.5 ms, RDMA 0.5–2 ms, TCP 2–10 ms, §7):
 *
 * | preset | line rate | derating | effective | fixed latency |
 * |---|---|---|---|---|
 * | `rdma-25g` | 25 Gb/s | 80 % | 2.5 GB/s | 1 ms |
 * | `rdma-100g` (default) | 100 Gb/s | 80 % | 10 GB/s | 1 ms |
 * | `rdma-400g` | 400 Gb/s | 80 % | 40 GB/s | 0.5 ms |
 * | `tcp-10g` | 10 Gb/s | 60 % | 0.75 GB/s | 5 ms |
 * | `tcp-25g` | 25 Gb/s | 60 % | 1.875 GB/s | 5 ms |
 * | `nvlink` | 450 GB/s per direction (NVLink 4) | 70 % | 315 GB/s | 0.2 ms |
 *
 * With Llama-3.1-8B geometry (128 KiB/token) a 4096-token prompt (512 MiB) takes ≈ 54.7 ms on
 * `rdma-100g`, ≈ 13.9 ms on `rdma-400g` and ≈ 721 ms on `tcp-10g`.
 */

/** A link: effective bandwidth and fixed latency per transfer. */
export interface KvLink {
  /** effective bandwidth, bytes per second (> 0) */
  bandwidthBytesPerS: number;
  /** fixed cost of one transfer, ms (≥ 0) */
  latencyMs: number;
}

/** Preset names accepted by `--kv-link`. */
export type KvLinkPreset = "rdma-25g" | "rdma-100g" | "rdma-400g" | "tcp-10g" | "tcp-25g" | "nvlink";

const GBIT = 1e9 / 8;

/** The presets (see module doc for the derivation). */
export const KV_LINK_PRESETS: Readonly<Record<KvLinkPreset, KvLink>> = Object.freeze({
  "rdma-25g": { bandwidthBytesPerS: 25 * GBIT * 0.8, latencyMs: 1 },
  "rdma-100g": { bandwidthBytesPerS: 100 * GBIT * 0.8, latencyMs: 1 },
  "rdma-400g": { bandwidthBytesPerS: 400 * GBIT * 0.8, latencyMs: 0.5 },
  "tcp-10g": { bandwidthBytesPerS: 10 * GBIT * 0.6, latencyMs: 5 },
  "tcp-25g": { bandwidthBytesPerS: 25 * GBIT * 0.6, latencyMs: 5 },
  nvlink: { bandwidthBytesPerS: 450e9 * 0.7, latencyMs: 0.2 },
});

/** The default link of `llmd serve`. */
export const DEFAULT_KV_LINK: KvLinkPreset = "rdma-100g";

/**
 * The preset named `name`.
 * @throws Error naming the accepted presets
 */
export function kvLinkPreset(name: string): KvLink {
  const p = (KV_LINK_PRESETS as Record<string, KvLink>)[name];
  if (!p)
    throw new Error(
      `unknown KV link ${JSON.stringify(name)}: expected one of ${Object.keys(KV_LINK_PRESETS).join(", ")}`,
    );
  return { ...p };
}

const PREFIX: Record<string, number> = {
  "": 1,
  k: 1e3,
  m: 1e6,
  g: 1e9,
  t: 1e12,
  ki: 1024,
  mi: 1024 ** 2,
  gi: 1024 ** 3,
  ti: 1024 ** 4,
};

/**
 * Parses a bandwidth: a plain number is bytes per second; with a unit, `b`/`bit` means bits and
 * `B` bytes, per second (`bps`, `b/s`, `Bps`, `B/s`), with decimal (`K M G T`) or binary
 * (`Ki Mi Gi Ti`) prefixes: `25Gbps` = 3.125e9 B/s, `10GB/s` = 1e10 B/s, `1.5GiB/s`.
 * @returns bytes per second (> 0)
 * @throws Error on an unparsable or non-positive value
 */
export function parseBandwidth(v: string): number {
  const s = v.trim();
  if (/^\d+(\.\d+)?(e\d+)?$/i.test(s)) {
    const n = Number(s);
    if (n > 0) return n;
    throw new Error(`bandwidth must be > 0, got ${v}`);
  }
  const m = /^(\d+(?:\.\d+)?)\s*([kKmMgGtT]i?)?(bit|bps|b\/s|Bps|B\/s|b|B)$/.exec(s);
  if (!m) throw new Error(`cannot parse bandwidth ${JSON.stringify(v)} (examples: 25Gbps, 10GB/s, 3.2e9)`);
  const n = Number(m[1]);
  const mult = PREFIX[(m[2] ?? "").toLowerCase()]!;
  const unit = m[3]!;
  const bits = unit === "bit" || unit === "bps" || unit === "b/s" || unit === "b";
  const bytes = (n * mult) / (bits ? 8 : 1);
  if (!(bytes > 0)) throw new Error(`bandwidth must be > 0, got ${v}`);
  return bytes;
}

/**
 * Simulated duration of moving `bytes` over `link`, ms of simulated time: 0 for 0 bytes (nothing
 * to move), else `latencyMs + bytes / bandwidth`.
 */
export function transferMs(link: KvLink, bytes: number): number {
  if (bytes <= 0) return 0;
  return link.latencyMs + (bytes / link.bandwidthBytesPerS) * 1000;
}
