/**
 * A Prometheus counter and gauge for hot paths, rendered by a prom-client `Registry` like
 * {@link FastHistogram} (they implement the registry's metric contract: `name`, `help`, `type`,
 * `aggregator`, `get()`, `reset()`).
 *
 * Why not prom-client's `Counter` / `Gauge`: their labelled children are `inc.bind(labels)`,
 * so every `inc` validates and hashes (sorts and joins) the label object again — a measurable
 * share of the router's per-request cost (request_total, running_requests, scheduler attempts).
 * Here a series is looked up once per label set and `inc`/`dec`/`set` only add to a number.
 */
import type { Registry } from "prom-client";
import { type Labels, SeriesCache } from "./series-cache.js";

/** One labelled counter series. */
export interface CounterSeries {
  /** adds `n` (default 1); negative or non-finite values are ignored, as a counter only grows */
  inc(n?: number): void;
}

/** One labelled gauge series. */
export interface GaugeSeries {
  inc(n?: number): void;
  dec(n?: number): void;
  set(v: number): void;
}

class Series implements GaugeSeries {
  value = 0;
  constructor(readonly labels: Labels) {}
  inc(n = 1): void {
    this.value += n;
  }
  dec(n = 1): void {
    this.value -= n;
  }
  set(v: number): void {
    this.value = v;
  }
}

class CounterSeriesImpl extends Series {
  override inc(n = 1): void {
    if (n > 0 && Number.isFinite(n)) this.value += n;
  }
}

abstract class FastMetric<S extends Series> {
  readonly aggregator = "sum";
  abstract readonly type: "counter" | "gauge";
  private readonly series: SeriesCache<S>;

  constructor(
    readonly name: string,
    readonly help: string,
    labelNames: readonly string[],
    registers: Registry[],
  ) {
    this.series = new SeriesCache(labelNames, (l) => this.make(l));
    for (const r of registers) r.registerMetric(this as never);
  }

  protected abstract make(labels: Labels): S;

  /** The series of a label set (created on first use; label order = `labelNames`). */
  labels(labels: Labels): S {
    return this.series.get(labels);
  }

  /** Zeroes every series (series objects handed out stay valid). */
  reset(): void {
    for (const s of this.series.values()) s.value = 0;
  }

  /** The prom-client metric object (one value per series). */
  async get(): Promise<{
    name: string;
    help: string;
    type: string;
    aggregator: string;
    values: { value: number; labels: Record<string, string> }[];
  }> {
    const values: { value: number; labels: Record<string, string> }[] = [];
    for (const s of this.series.values()) values.push({ value: s.value, labels: { ...s.labels } });
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }
}

/** A counter with any number of label sets (see file header). */
export class FastCounter extends FastMetric<CounterSeriesImpl> {
  readonly type = "counter";
  /**
   * @param name metric name
   * @param help help text
   * @param labelNames label names, in the order they are written
   * @param registers registries to register with
   */
  constructor(name: string, help: string, labelNames: readonly string[] = [], registers: Registry[] = []) {
    super(name, help, labelNames, registers);
  }
  protected make(labels: Labels): CounterSeriesImpl {
    return new CounterSeriesImpl(labels);
  }
  /** `inc(labels, n)` without keeping the series. */
  inc(labels: Labels, n = 1): void {
    this.labels(labels).inc(n);
  }
}

/** A gauge with any number of label sets (see file header). */
export class FastGauge extends FastMetric<Series> {
  readonly type = "gauge";
  /**
   * @param name metric name
   * @param help help text
   * @param labelNames label names, in the order they are written
   * @param registers registries to register with
   */
  constructor(name: string, help: string, labelNames: readonly string[] = [], registers: Registry[] = []) {
    super(name, help, labelNames, registers);
  }
  protected make(labels: Labels): Series {
    return new Series(labels);
  }
}
