/**
 * Test helpers of the plugin families: endpoints, requests and scheduling results built
 * directly (no registry or loader needed). Not used by production code.
 */
import {
  type Endpoint,
  type EndpointMetrics,
  emptyMetrics,
  type InferenceRequest,
  type SchedulingResult,
} from "../framework/types.js";

/** An endpoint `id` at 10.0.0.x:8000 with the given metrics. */
export function makeEndpoint(id: string, metrics: Partial<EndpointMetrics> = {}): Endpoint {
  return {
    metadata: {
      id,
      name: id,
      namespace: "default",
      address: "10.0.0.1",
      port: 8000,
      hostPort: `${id}:8000`,
      labels: {},
    },
    metrics: { ...emptyMetrics(), ...metrics },
    models: new Set(),
    attributes: new Map(),
  };
}

/** A request with the given body (model `m`). */
export function makeRequest(
  body: Record<string, unknown>,
  over: Partial<InferenceRequest> = {},
): InferenceRequest {
  return {
    requestId: "r1",
    incomingModel: "m",
    targetModel: "m",
    path: body.messages ? "/v1/chat/completions" : "/v1/completions",
    body,
    headers: {},
    objectives: { priority: 0 },
    fairnessId: "default-flow",
    requestSizeBytes: JSON.stringify(body).length,
    attributes: new Map(),
    ...over,
  };
}

/** A scheduling result whose profiles picked the given endpoints. */
export function result(primary: string, picks: Record<string, Endpoint[]>): SchedulingResult {
  const profileResults: SchedulingResult["profileResults"] = {};
  for (const [name, eps] of Object.entries(picks)) {
    profileResults[name] = {
      targetEndpoints: eps,
      scoredCandidates: eps.map((endpoint) => ({ endpoint, score: 1 })),
    };
  }
  return { profileResults, primaryProfileName: primary };
}

/** A deterministic RNG in [0,1) (mulberry32), for pickers' tie-breaks. */
export function seededRng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A plugin handle that knows no plugins. */
export const emptyHandle = { plugin: () => undefined, addPlugin: () => {}, allPlugins: () => [] };
