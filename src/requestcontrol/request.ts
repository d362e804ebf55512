/**
 * Builds the EPP's {@link InferenceRequest} from a parsed request, transport-independent
 * (used by the HTTP router and the ext_proc server).
 *
 * Rules (llm-d-router `Director.HandleRequest`, reference/epp.md §1.3, §1.5):
 * - `incomingModel` = `body.model`; missing/empty → `EppError("BadRequest", "model not found in request body")`;
 * - `targetModel` = header `x-llm-d-model-name-rewrite` (alias `x-gateway-model-name-rewrite`),
 *   else the incoming model. The body is **not** rewritten here: a transport that forwards the
 *   body re-marshals it with the target model when they differ;
 * - objective = header `x-llm-d-inference-objective` (alias `x-gateway-inference-objective`);
 *   priority = the objective's priority from `lookupObjective`, else **0** (missing objective or
 *   unset priority); the objective name is kept under the request attribute {@link OBJECTIVE_ATTRIBUTE};
 * - fairness id = header `x-llm-d-inference-fairness-id` (alias `x-gateway-inference-fairness-id`),
 *   else `"default-flow"`.
 */
import { EppError } from "../framework/errors.js";
import {
  FAIRNESS_ID,
  FAIRNESS_ID_ALIAS,
  headerWithAlias,
  MODEL_NAME_REWRITE,
  MODEL_NAME_REWRITE_ALIAS,
  OBJECTIVE,
  OBJECTIVE_ALIAS,
} from "../framework/headers.js";
import type { InferenceRequest } from "../framework/types.js";

/** Fairness id of requests without one (reference/epp.md §1.3). */
export const DEFAULT_FAIRNESS_ID = "default-flow";
/** Request attribute holding the objective name from the objective header. */
export const OBJECTIVE_ATTRIBUTE = "inference-objective";

/** Input of {@link buildInferenceRequest}. */
export interface BuildRequestInput {
  requestId: string;
  /** request path, e.g. `/v1/chat/completions` */
  path: string;
  /** parsed JSON body (shared, not copied) */
  body: Record<string, unknown>;
  /** request headers; names are lower-cased here */
  headers: Record<string, string>;
  /** body size, bytes */
  requestSizeBytes: number;
}

/** Looks an InferenceObjective up by name; `priority` undefined = unset. */
export type ObjectiveLookup = (name: string) => { priority?: number } | undefined;

/**
 * Pure: builds the request (see file header).
 * @throws EppError BadRequest when the body has no model
 */
export function buildInferenceRequest(
  input: BuildRequestInput,
  lookupObjective?: ObjectiveLookup,
): InferenceRequest {
  const headers: Record<string, string> = {};
  const src = input.headers;
  for (const k in src) headers[k.toLowerCase()] = src[k]!;
  const model = input.body.model;
  if (typeof model !== "string" || model === "") {
    throw new EppError("BadRequest", "model not found in request body");
  }
  const targetModel = headerWithAlias(headers, MODEL_NAME_REWRITE, MODEL_NAME_REWRITE_ALIAS) ?? model;
  const objective = headerWithAlias(headers, OBJECTIVE, OBJECTIVE_ALIAS);
  const priority = objective !== undefined ? (lookupObjective?.(objective)?.priority ?? 0) : 0;
  const attributes = new Map<string, unknown>();
  if (objective !== undefined) attributes.set(OBJECTIVE_ATTRIBUTE, objective);
  return {
    requestId: input.requestId,
    incomingModel: model,
    targetModel,
    path: input.path,
    body: input.body,
    headers,
    objectives: { priority },
    fairnessId: headerWithAlias(headers, FAIRNESS_ID, FAIRNESS_ID_ALIAS) ?? DEFAULT_FAIRNESS_ID,
    requestSizeBytes: input.requestSizeBytes,
    attributes,
  };
}
