/**
 * `core-metrics-extractor` — maps an endpoint's scraped Prometheus families to the core
 * endpoint metrics (waiting/running requests, KV-cache usage 0..1, LoRA, block size and count)
 * by engine type (llm-d-router `datalayer/extractor/metrics`, reference/epp.md §5.2). In
 * llmd-ts the extraction is `extractVllmMetrics` (`src/datalayer/prometheus.ts`), run by the
 * runtime's scraper for the sources this plugin is listed under.
 *
 * Parameters (decoded strictly):
 * - `engineLabelKey` (string, default `llm-d.ai/engine-type`; fallback label
 *   `inference.networking.k8s.io/engine-type`): endpoint label naming its engine
 * - `defaultEngine` (string, default `vllm`): engine of endpoints without the label
 * - `engineConfigs[]` (`{name, queuedRequestsSpec?, runningRequestsSpec?, kvUsageSpec?,
 *   loraSpec?, cacheInfoSpec?, customMetrics?}`): per-engine metric specs
 *
 * Only the built-in `vllm` mapping is implemented: a `defaultEngine` other than `vllm` or any
 * `engineConfigs` entry is a ParamsError (loud at start-up rather than zero metrics at run
 * time); endpoints labelled with another engine are scraped with the vLLM mapping.
 *
 * Source: reference/epp.md §5.2 (table of built-in metric names per engine).
 */
import { z } from "zod";
import { decodeParams, ParamsError } from "../../framework/config/params.js";
import { ENGINE_TYPE_LABEL } from "../../framework/labels.js";
import type { Plugin, PluginFactory } from "../../framework/plugin.js";

export const CORE_METRICS_EXTRACTOR_TYPE = "core-metrics-extractor";

const spec = z.string().min(1);
const engineConfig = z
  .object({
    name: z.string().min(1),
    queuedRequestsSpec: spec.optional(),
    runningRequestsSpec: spec.optional(),
    kvUsageSpec: spec.optional(),
    loraSpec: spec.optional(),
    cacheInfoSpec: spec.optional(),
    customMetrics: z.array(z.unknown()).optional(),
  })
  .strict();
const schema = z
  .object({
    engineLabelKey: z.string().min(1).default(ENGINE_TYPE_LABEL),
    defaultEngine: z.string().min(1).default("vllm"),
    engineConfigs: z.array(engineConfig).default([]),
  })
  .strict();

/** Decoded parameters. */
export type CoreMetricsExtractorParams = z.infer<typeof schema>;

/**
 * Decodes the parameters (see file header).
 * @throws ParamsError naming the field (unknown field, unsupported engine or engine config)
 */
export function decodeCoreMetricsParams(raw: unknown): CoreMetricsExtractorParams {
  const p = decodeParams(schema, raw);
  if (p.defaultEngine !== "vllm") {
    throw new ParamsError("defaultEngine", `engine "${p.defaultEngine}" is not supported (only vllm)`);
  }
  if (p.engineConfigs.length > 0) {
    throw new ParamsError(
      "engineConfigs[0]",
      "custom engine metric specs are not supported (the built-in vllm mapping is used)",
    );
  }
  return p;
}

/** The extractor plugin (its parameters; extraction is done by the scraper). */
export class CoreMetricsExtractorPlugin implements Plugin {
  readonly type = CORE_METRICS_EXTRACTOR_TYPE;
  constructor(
    readonly name: string,
    readonly params: CoreMetricsExtractorParams,
  ) {}

  /** The resolved parameters (`llmd config check` shows them). */
  get parameters(): Record<string, unknown> {
    return { ...this.params };
  }
}

/** Factory. @throws ParamsError naming the offending field */
export const coreMetricsExtractorFactory: PluginFactory = (name, params) =>
  new CoreMetricsExtractorPlugin(name, decodeCoreMetricsParams(params));
