/** Types for `parse-prometheus-text-format` (the package ships none). */
declare module "parse-prometheus-text-format" {
  /** One sample of a family. Histograms/summaries carry `buckets`/`quantiles`, `count`, `sum`. */
  export interface PromSample {
    value?: string;
    labels?: Record<string, string>;
    buckets?: Record<string, string>;
    quantiles?: Record<string, string>;
    count?: string;
    sum?: string;
  }
  /** One metric family. `type` is upper-case: COUNTER, GAUGE, HISTOGRAM, SUMMARY, UNTYPED. */
  export interface PromFamily {
    name: string;
    help: string;
    type: string;
    metrics: PromSample[];
  }
  export default function parsePrometheusTextFormat(text: string): PromFamily[];
}
