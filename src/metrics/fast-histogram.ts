/**
 * A Prometheus histogram for hot paths, rendered by a prom-client `Registry` (it implements
 * the registry's metric contract: `name`, `help`, `type`, `aggregator`, `get()`, `reset()`).
 *
 * Why not prom-client's `Histogram`: every `observe(labels, v)` — labelled children included —
 * validates and hashes the label object, which measured as the largest single cost of the
 * router's per-request path (≈ 10 histogram observations per request). Here a series is looked
 * up once per label set and `observe` is O(buckets) with no allocation. `le` comes last in
 * the bucket labels, as Go's client_golang (llm-d) and Python's prometheus_client (vLLM) write it.
 */
import type { Registry } from "prom-client";
import { type Labels, SeriesCache } from "./series-cache.js";

/** One labelled series. */
export interface FastSeries {
  observe(value: number): void;
}

class Series implements FastSeries {
  readonly counts: Float64Array;
  sum = 0;
  count = 0;
  constructor(
    readonly labels: Labels,
    private readonly bounds: readonly number[],
  ) {
    this.counts = new Float64Array(bounds.length);
  }
  observe(v: number): void {
    if (!Number.isFinite(v)) return;
    this.sum += v;
    this.count++;
    const b = this.bounds;
    for (let i = 0; i < b.length; i++) {
      if (v <= b[i]!) {
        this.counts[i]!++;
        return;
      }
    }
  }
}

/** A histogram with any number of label sets (see file header). */
export class FastHistogram {
  readonly type = "histogram";
  readonly aggregator = "sum";
  private readonly series: SeriesCache<Series>;

  /**
   * @param name metric name
   * @param help help text
   * @param bounds bucket upper bounds, ascending (+Inf is implicit)
   * @param labelNames label names, in the order their values form the series key
   * @param registers registries to register with
   */
  constructor(
    readonly name: string,
    readonly help: string,
    private readonly bounds: readonly number[],
    labelNames: readonly string[] = [],
    registers: Registry[] = [],
  ) {
    this.series = new SeriesCache(labelNames, (l) => new Series(l, bounds));
    for (const r of registers) r.registerMetric(this as never);
  }

  /** The series of a label set (created on first use). */
  labels(labels: Labels): FastSeries {
    return this.series.get(labels);
  }

  /** `observe(value)` for an unlabelled histogram, `observe(labels, value)` otherwise. */
  observe(a: number | Labels, b?: number): void {
    if (typeof a === "number") this.labels({}).observe(a);
    else this.labels(a).observe(b ?? Number.NaN);
  }

  /** Zeroes every series (series objects handed out stay valid). */
  reset(): void {
    for (const s of this.series.values()) {
      s.counts.fill(0);
      s.sum = 0;
      s.count = 0;
    }
  }

  /** The prom-client metric object (cumulative buckets, `+Inf`, `_sum`, `_count` per series). */
  async get(): Promise<{
    name: string;
    help: string;
    type: string;
    aggregator: string;
    values: { value: number; labels: Record<string, string | number>; metricName: string }[];
  }> {
    const values: { value: number; labels: Record<string, string | number>; metricName: string }[] = [];
    const bucket = `${this.name}_bucket`;
    for (const s of this.series.values()) {
      let acc = 0;
      for (let i = 0; i < this.bounds.length; i++) {
        acc += s.counts[i]!;
        values.push({ value: acc, labels: { ...s.labels, le: this.bounds[i]! }, metricName: bucket });
      }
      values.push({ value: s.count, labels: { ...s.labels, le: "+Inf" }, metricName: bucket });
      values.push({ value: s.sum, labels: { ...s.labels }, metricName: `${this.name}_sum` });
      values.push({ value: s.count, labels: { ...s.labels }, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }
}
