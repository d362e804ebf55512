/**
 * `endpoint-notification-source` — a data-layer source that follows the endpoint pool and
 * notifies its extractors when endpoints are added or removed (llm-d-router
 * `datalayer/source/notification`, reference/epp.md §5.2). Its usual extractor is
 * `precise-prefix-cache-producer`, which starts a KV-event subscriber per endpoint and purges
 * the endpoint from its index when it leaves.
 *
 * Parameters: none (`parameters` must be absent or `{}`).
 *
 * Wiring (done by the EPP runtime from `dataLayer.sources`): `addExtractor(plugin)` for every
 * extractor listed under this source, then `attachEndpointSource(store)` with the
 * `EndpointStore`; endpoints already in the pool are announced as added, in pool order.
 * `detach()`/`close()` stop following the pool.
 *
 * Source: reference/epp.md §5.2 ("notification sources … `endpoint-notification-source`
 * (endpoint add/delete events to `EndpointExtractor`s, e.g. precise prefix producer)").
 */
import { z } from "zod";
import { decodeParams } from "../../framework/config/params.js";
import type { Plugin, PluginFactory } from "../../framework/plugin.js";
import type {
  Endpoint,
  EndpointEventSource,
  EndpointExtractor,
  EndpointNotificationSource,
} from "../../framework/types.js";
import { logger } from "../../log.js";

export const ENDPOINT_NOTIFICATION_SOURCE_TYPE = "endpoint-notification-source";

const schema = z.object({}).strict();
const log = logger.child({ component: ENDPOINT_NOTIFICATION_SOURCE_TYPE });

/** Follows an {@link EndpointEventSource} and fans its events out to extractors. */
export class EndpointNotificationSourcePlugin implements Plugin, EndpointNotificationSource {
  readonly type = ENDPOINT_NOTIFICATION_SOURCE_TYPE;
  private readonly extractors: EndpointExtractor[] = [];
  private source: EndpointEventSource | null = null;
  private readonly onAdded = (ep: Endpoint) => this.notify(ep, true);
  private readonly onRemoved = (ep: Endpoint) => this.notify(ep, false);

  constructor(readonly name: string = ENDPOINT_NOTIFICATION_SOURCE_TYPE) {}

  /** Extractors in registration order. */
  get extractorNames(): string[] {
    return this.extractors.map((x) => x.name);
  }

  /** Whether a pool is attached. */
  get attached(): boolean {
    return this.source !== null;
  }

  /** Adds an extractor; when already attached, it is told about the current endpoints. */
  addExtractor(extractor: EndpointExtractor): void {
    if (this.extractors.includes(extractor)) return;
    this.extractors.push(extractor);
    if (this.source) for (const ep of this.source.all()) this.call(extractor, ep, true);
  }

  /** Starts following `source` (a previous source is detached first). */
  attachEndpointSource(source: EndpointEventSource): void {
    this.detach();
    this.source = source;
    source.on("added", this.onAdded);
    source.on("removed", this.onRemoved);
    for (const ep of source.all()) this.notify(ep, true);
  }

  /** Stops following the pool. */
  detach(): void {
    if (!this.source) return;
    this.source.off("added", this.onAdded);
    this.source.off("removed", this.onRemoved);
    this.source = null;
  }

  /** Same as {@link detach}. */
  async close(): Promise<void> {
    this.detach();
  }

  private notify(ep: Endpoint, added: boolean): void {
    for (const x of this.extractors) this.call(x, ep, added);
  }

  private call(x: EndpointExtractor, ep: Endpoint, added: boolean): void {
    try {
      if (added) x.endpointAdded(ep);
      else x.endpointRemoved(ep);
    } catch (err) {
      log.error({ err, extractor: x.name, endpoint: ep.metadata.hostPort }, "endpoint extractor failed");
    }
  }
}

/** Factory. @throws ParamsError when parameters are given */
export const endpointNotificationSourceFactory: PluginFactory = (name, params) => {
  decodeParams(schema, params);
  return new EndpointNotificationSourcePlugin(name);
};
