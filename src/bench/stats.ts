/**
 * Latency statistics: values are recorded in µs into an HDR histogram (3 significant
 * digits, so a reported percentile is within 0.1% of the exact sample value) and reported
 * in ms rounded to 2 decimals.
 */
import * as hdr from "hdr-histogram-js";

/** p50/p90/p99 in ms (2 decimals); `null` each when nothing was recorded. */
export interface Percentiles {
  p50: number | null;
  p90: number | null;
  p99: number | null;
}

/** Rounds to 2 decimals. */
export function round2(x: number): number {
  return Math.round(x * 100) / 100;
}

/** A latency histogram: record ms, read percentiles in ms. Call {@link close} when done. */
export class LatencyHistogram {
  private readonly h = hdr.build({
    bitBucketSize: 64,
    autoResize: true,
    lowestDiscernibleValue: 1,
    numberOfSignificantValueDigits: 3,
    useWebAssembly: false,
  });

  /**
   * Records one latency.
   * @param ms latency in ms (negative values are clamped to 0; stored in whole µs)
   */
  record(ms: number): void {
    this.h.recordValue(Math.max(0, Math.round(ms * 1000)));
  }

  /** Number of recorded samples. */
  get count(): number {
    return this.h.totalCount;
  }

  /**
   * Value at a percentile, in ms (not rounded); `null` when empty.
   * @param p percentile 0..100
   */
  percentileMs(p: number): number | null {
    if (this.h.totalCount === 0) return null;
    return this.h.getValueAtPercentile(p) / 1000;
  }

  /** p50/p90/p99 in ms rounded to 2 decimals. */
  percentiles(): Percentiles {
    const at = (p: number): number | null => {
      const v = this.percentileMs(p);
      return v === null ? null : round2(v);
    };
    return { p50: at(50), p90: at(90), p99: at(99) };
  }

  /** Frees the histogram. */
  close(): void {
    this.h.destroy();
  }
}
