/**
 * The label-set → series cache shared by the hot-path metrics ({@link FastCounter},
 * {@link FastGauge}, {@link FastHistogram}): a series is created on first use of a label set
 * and then found by a key built from the label values in `labelNames` order, so a hot path can
 * look a series up once and keep it.
 */

/** Label values by name. */
export type Labels = Readonly<Record<string, string>>;

/** Label sets beyond this many are still served a fresh series but no longer cached by key. */
export const MAX_SERIES = 10_000;

/** Series of one metric by label set. */
export class SeriesCache<S> {
  private readonly series = new Map<string, S>();

  /**
   * @param labelNames label names, in the order their values form the key (missing values: "")
   * @param make creates the series of a label set (gets its own copy of the labels)
   */
  constructor(
    private readonly labelNames: readonly string[],
    private readonly make: (labels: Labels) => S,
  ) {}

  /** The series of a label set (created on first use). */
  get(labels: Labels): S {
    let key = "";
    for (const n of this.labelNames) key += `${labels[n] ?? ""}\u0000`;
    let s = this.series.get(key);
    if (s === undefined) {
      const own: Record<string, string> = {};
      for (const n of this.labelNames) own[n] = labels[n] ?? "";
      s = this.make(own);
      if (this.series.size < MAX_SERIES) this.series.set(key, s);
    }
    return s;
  }

  /** The cached series, in creation order. */
  values(): IterableIterator<S> {
    return this.series.values();
  }
}
