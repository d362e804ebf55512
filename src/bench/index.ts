/**
 * `llmd bench` library: workloads, load runner, statistics, report. HTTP only — it never
 * imports the router, the model server or plugins, so it measures any OpenAI-compatible
 * endpoint the same way.
 */
export {
  type BenchApi,
  type BenchRequestInput,
  type BenchRequestResult,
  buildBody,
  sendRequest,
} from "./client.js";
export {
  type FleetHitRate,
  fleetHitRate,
  type MetricsTargets,
  type PrefixCounters,
  prefixCountersFromText,
  resolveMetricsTargets,
} from "./metrics.js";
export { type OracleResult, oracleHitRate } from "./oracle.js";
export { type BenchConfig, type BenchReport, type ErrorKindSummary, formatReport } from "./report.js";
export {
  type BenchHooks,
  type BenchOptions,
  buildWorkload,
  DEFAULT_BENCH_URL,
  DEFAULT_TIMEOUT_MS,
  firstModelId,
  runBench,
} from "./run.js";
export { LatencyHistogram, type Percentiles } from "./stats.js";
export {
  SHARED_PREFIX_DEFAULTS,
  type SharedPrefixParams,
  sharedPrefixWorkload,
  simTokens,
  type Workload,
  type WorkloadCommonOptions,
  type WorkloadFactory,
  type WorkloadName,
  type WorkloadParamsByName,
  type WorkloadRequest,
  WORKLOADS,
} from "./workload.js";
