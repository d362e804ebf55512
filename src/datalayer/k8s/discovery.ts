/**
 * Kubernetes discovery of `llmd epp` (reference/epp.md §5.1, §5.3): watches the InferencePool
 * `--pool-name` in `--pool-namespace` (`inference.networking.k8s.io/v1`), the Pods of that
 * namespace, and the `llm-d.ai/v1alpha2` InferenceObjectives and InferenceModelRewrites; keeps
 * the {@link EndpointStore} equal to {@link poolEndpoints} of the current pool and Pods (every
 * change reconciles the store with `replaceAll`, so Ready/NotReady, label changes, deletions
 * and pool edits of `selector`/`targetPorts` land within one event), and the objectives /
 * rewrites in a {@link PolicyStore}. Each collection runs its own {@link Reflector}
 * (list+watch, bookmarks, 410 → relist, backoff).
 */
import { EventEmitter } from "node:events";
import { CoreV1Api, CustomObjectsApi, type KubeConfig } from "@kubernetes/client-node";
import { logger } from "../../log.js";
import type { EndpointStore } from "../store.js";
import { type InferenceModelRewrite, type InferenceObjective, PolicyStore } from "./policies.js";
import { type InferencePool, type PodLike, poolEndpoints } from "./pool.js";
import { type KubeObject, type ListResult, Reflector } from "./reflector.js";

/** InferencePool API group (v1). */
export const POOL_GROUP = "inference.networking.k8s.io";
export const POOL_VERSION = "v1";
export const POOL_PLURAL = "inferencepools";
/** llm-d CRD group and version of InferenceObjective / InferenceModelRewrite. */
export const LLMD_GROUP = "llm-d.ai";
export const LLMD_VERSION = "v1alpha2";
export const OBJECTIVE_PLURAL = "inferenceobjectives";
export const REWRITE_PLURAL = "inferencemodelrewrites";

/** Options of {@link KubernetesDiscovery}. */
export interface KubernetesDiscoveryOptions {
  kubeConfig: KubeConfig;
  /** InferencePool name (`--pool-name`) */
  poolName: string;
  /** its namespace (`--pool-namespace`) */
  namespace: string;
  /** pool API group (`--pool-group`, default `inference.networking.k8s.io`) */
  poolGroup?: string;
  store: EndpointStore;
  /** watch InferenceObjective / InferenceModelRewrite (default true) */
  watchPolicies?: boolean;
  /** first retry delay, ms (default 200) */
  initialBackoffMs?: number;
  /** largest retry delay, ms (default 30 000) */
  maxBackoffMs?: number;
  /** random source for the rewrite draw */
  random?: () => number;
}

const log = logger.child({ component: "k8s-discovery" });

function byName<T extends KubeObject>(map: Map<string, T>, items: T[]): void {
  map.clear();
  for (const o of items) if (o.metadata?.name) map.set(o.metadata.name, o);
}

/**
 * InferencePool + Pods + llm-d CRDs → endpoint store and policies (see file header).
 * Events: `policies` () after any objective / model-rewrite change; `pool` () after the pool
 * object changed (after the store was reconciled); `bookmark` (path, resourceVersion).
 */
export class KubernetesDiscovery extends EventEmitter {
  /** objectives and model rewrites of the pool */
  readonly policies: PolicyStore;
  private pool?: InferencePool;
  private readonly pods = new Map<string, PodLike & KubeObject>();
  private readonly reflectors: Reflector<KubeObject>[] = [];
  private readonly poolReflector: Reflector<KubeObject>;
  private readonly podReflector: Reflector<KubeObject>;

  constructor(private readonly opts: KubernetesDiscoveryOptions) {
    super();
    this.policies = new PolicyStore(opts.poolName, opts.random);
    const kc = opts.kubeConfig;
    const core = kc.makeApiClient(CoreV1Api);
    const custom = kc.makeApiClient(CustomObjectsApi);
    const ns = opts.namespace;
    const group = opts.poolGroup ?? POOL_GROUP;
    const backoff = { initialBackoffMs: opts.initialBackoffMs, maxBackoffMs: opts.maxBackoffMs };
    const listCustom =
      (g: string, v: string, plural: string) => async (): Promise<ListResult<KubeObject>> => {
        const r = (await custom.listNamespacedCustomObject({
          group: g,
          version: v,
          namespace: ns,
          plural,
        })) as {
          items?: KubeObject[];
          metadata?: { resourceVersion?: string };
        };
        return { items: r.items ?? [], resourceVersion: r.metadata?.resourceVersion ?? "" };
      };
    const onError = (what: string) => (err: Error, phase: string) =>
      log.warn({ resource: what, phase, err: err.message }, "kubernetes list/watch failed; retrying");

    this.poolReflector = new Reflector(
      {
        kubeConfig: kc,
        path: `/apis/${group}/${POOL_VERSION}/namespaces/${ns}/${POOL_PLURAL}`,
        list: listCustom(group, POOL_VERSION, POOL_PLURAL),
        ...backoff,
      },
      {
        onSync: (items) => {
          this.pool = items.find((p) => p.metadata?.name === opts.poolName) as InferencePool | undefined;
          this.reconcile();
          this.emit("pool");
        },
        onEvent: (type, obj) => {
          if (obj.metadata?.name !== opts.poolName) return;
          this.pool = type === "DELETED" ? undefined : (obj as InferencePool);
          this.reconcile();
          this.emit("pool");
        },
        onError: onError(POOL_PLURAL),
      },
    );
    this.podReflector = new Reflector(
      {
        kubeConfig: kc,
        path: `/api/v1/namespaces/${ns}/pods`,
        list: async () => {
          const r = await core.listNamespacedPod({ namespace: ns });
          return {
            items: r.items as unknown as KubeObject[],
            resourceVersion: r.metadata?.resourceVersion ?? "",
          };
        },
        ...backoff,
      },
      {
        onSync: (items) => {
          byName(this.pods, items as (PodLike & KubeObject)[]);
          this.reconcile();
        },
        onEvent: (type, obj) => {
          const name = obj.metadata?.name;
          if (!name) return;
          if (type === "DELETED") this.pods.delete(name);
          else this.pods.set(name, obj as PodLike & KubeObject);
          this.reconcile();
        },
        onError: onError("pods"),
        onBookmark: (rv) => this.emit("bookmark", `/api/v1/namespaces/${ns}/pods`, rv),
      },
    );
    this.reflectors.push(this.poolReflector, this.podReflector);
    if (opts.watchPolicies ?? true) {
      this.reflectors.push(
        new Reflector(
          {
            kubeConfig: kc,
            path: `/apis/${LLMD_GROUP}/${LLMD_VERSION}/namespaces/${ns}/${OBJECTIVE_PLURAL}`,
            list: listCustom(LLMD_GROUP, LLMD_VERSION, OBJECTIVE_PLURAL),
            ...backoff,
          },
          {
            onSync: (items) => {
              this.policies.replaceObjectives(items as InferenceObjective[]);
              this.emit("policies");
            },
            onEvent: (type, obj) => {
              if (type === "DELETED") this.policies.deleteObjective(obj as InferenceObjective);
              else this.policies.upsertObjective(obj as InferenceObjective);
              this.emit("policies");
            },
            onError: onError(OBJECTIVE_PLURAL),
          },
        ),
        new Reflector(
          {
            kubeConfig: kc,
            path: `/apis/${LLMD_GROUP}/${LLMD_VERSION}/namespaces/${ns}/${REWRITE_PLURAL}`,
            list: listCustom(LLMD_GROUP, LLMD_VERSION, REWRITE_PLURAL),
            ...backoff,
          },
          {
            onSync: (items) => {
              this.policies.replaceRewrites(items as InferenceModelRewrite[]);
              this.emit("policies");
            },
            onEvent: (type, obj) => {
              if (type === "DELETED") this.policies.deleteRewrite(obj as InferenceModelRewrite);
              else this.policies.upsertRewrite(obj as InferenceModelRewrite);
              this.emit("policies");
            },
            onError: onError(REWRITE_PLURAL),
          },
        ),
      );
    }
  }

  /** The InferencePool as last seen (undefined = absent or not yet listed). */
  currentPool(): InferencePool | undefined {
    return this.pool;
  }

  /** Readiness (gRPC health `readiness`): the pool and its Pods were listed and the pool exists. */
  synced(): boolean {
    return this.poolReflector.synced && this.podReflector.synced && this.pool !== undefined;
  }

  /** Reflector counters by resource path (diagnostics, tests). */
  stats(): Record<string, Reflector<KubeObject>["stats"]> {
    const out: Record<string, Reflector<KubeObject>["stats"]> = {};
    for (const r of this.reflectors) out[r.path] = r.stats;
    return out;
  }

  /** Starts every list+watch loop. */
  start(): void {
    for (const r of this.reflectors) r.start();
  }

  /** Stops every loop and closes the watches. */
  async stop(): Promise<void> {
    await Promise.all(this.reflectors.map((r) => r.stop()));
  }

  private reconcile(): void {
    // Until both the pool and the pods were listed, keep the store as it is.
    if (!this.poolReflector.synced || !this.podReflector.synced) return;
    this.opts.store.replaceAll(poolEndpoints(this.pool, this.pods.values()));
  }
}
