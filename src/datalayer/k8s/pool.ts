/**
 * InferencePool → endpoints (pure). Rules (reference/epp.md §5.1; llm-d
 * `pkg/epp/datastore/datastore.go`, `pkg/epp/controller/pod_reconciler.go`):
 * - a Pod is an endpoint when it is in the pool's namespace, its labels contain every
 *   `spec.selector.matchLabels` entry, it has a `status.podIP`, its `Ready` condition is
 *   `True`, and it is not being deleted;
 * - each `spec.targetPorts[i].number` is a distinct endpoint `podIP:port`; with more than one
 *   port the endpoint id is `namespace/<pod>-rank-<i>`, with one port `namespace/<pod>`;
 * - endpoint labels are the Pod's labels (e.g. `llm-d.ai/role`).
 */
import type { EndpointMetadata } from "../../framework/types.js";

/** The fields of an `inference.networking.k8s.io/v1` InferencePool the EPP reads. */
export interface InferencePool {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; namespace?: string; resourceVersion?: string };
  spec?: {
    selector?: { matchLabels?: Record<string, string> };
    targetPorts?: { number: number }[];
    appProtocol?: string;
    endpointPickerRef?: {
      group?: string;
      kind?: string;
      name?: string;
      port?: { number: number };
      failureMode?: string;
    };
  };
}

/** The fields of a Pod the EPP reads (list results and watch events alike). */
export interface PodLike {
  metadata?: {
    name?: string;
    namespace?: string;
    labels?: Record<string, string>;
    deletionTimestamp?: unknown;
    resourceVersion?: string;
  };
  status?: { podIP?: string; conditions?: { type: string; status: string }[] };
}

/** True when the Pod's `Ready` condition is `True` and it is not being deleted. */
export function podReady(pod: PodLike): boolean {
  if (pod.metadata?.deletionTimestamp) return false;
  return (pod.status?.conditions ?? []).some((c) => c.type === "Ready" && c.status === "True");
}

/** True when `labels` contain every entry of `selector` (an empty selector matches nothing). */
export function selectorMatches(
  selector: Record<string, string> | undefined,
  labels: Record<string, string> | undefined,
): boolean {
  const entries = Object.entries(selector ?? {});
  if (entries.length === 0) return false;
  return entries.every(([k, v]) => labels?.[k] === v);
}

/**
 * Endpoints of a pool over a set of Pods (see file header).
 * @param pool the InferencePool, or undefined when it does not exist (→ no endpoints)
 */
export function poolEndpoints(pool: InferencePool | undefined, pods: Iterable<PodLike>): EndpointMetadata[] {
  if (!pool?.spec) return [];
  const ns = pool.metadata?.namespace ?? "default";
  const ports = (pool.spec.targetPorts ?? [])
    .map((p) => p.number)
    .filter((n) => Number.isInteger(n) && n > 0);
  if (ports.length === 0) return [];
  const out: EndpointMetadata[] = [];
  for (const pod of pods) {
    const name = pod.metadata?.name;
    const ip = pod.status?.podIP;
    if (!name || !ip) continue;
    if ((pod.metadata?.namespace ?? ns) !== ns) continue;
    if (!podReady(pod) || !selectorMatches(pool.spec.selector?.matchLabels, pod.metadata?.labels)) continue;
    ports.forEach((port, i) => {
      const epName = ports.length > 1 ? `${name}-rank-${i}` : name;
      out.push({
        id: `${ns}/${epName}`,
        name: epName,
        namespace: ns,
        address: ip,
        port,
        hostPort: ip.includes(":") ? `[${ip}]:${port}` : `${ip}:${port}`,
        labels: { ...(pod.metadata?.labels ?? {}) },
      });
    });
  }
  return out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}
