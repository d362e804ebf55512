/**
 * A fake Kubernetes API server for discovery tests (node:http on 127.0.0.1:0): namespaced
 * collections of pods, inferencepools, inferenceobjectives and inferencemodelrewrites with
 * list (`GET <collection>`) and watch (`GET <collection>?watch=true&resourceVersion=N`,
 * chunked JSON lines, `allowWatchBookmarks`). One global resourceVersion counter as etcd.
 *
 * Test controls: {@link FakeApiServer.compact} (watches from an older version get 410 Gone,
 * as an HTTP status or as an `ERROR` event), {@link FakeApiServer.freeze} (events are kept in
 * history but not pushed to open watches), {@link FakeApiServer.dropWatches} (destroys open
 * watch connections), {@link FakeApiServer.bookmark}, {@link FakeApiServer.failWatches}
 * (next n watch requests answer 500), and request logs.
 */
import { EventEmitter, once } from "node:events";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/** Collection kinds served. */
export type Kind = "pods" | "inferencepools" | "inferenceobjectives" | "inferencemodelrewrites";

interface Obj {
  metadata: { name: string; namespace?: string; resourceVersion?: string; [k: string]: unknown };
  [k: string]: unknown;
}
interface Event {
  rv: number;
  type: "ADDED" | "MODIFIED" | "DELETED";
  object: Obj;
}
interface OpenWatch {
  kind: Kind;
  res: ServerResponse;
}

const LIST_KIND: Record<Kind, { apiVersion: string; kind: string }> = {
  pods: { apiVersion: "v1", kind: "PodList" },
  inferencepools: { apiVersion: "inference.networking.k8s.io/v1", kind: "InferencePoolList" },
  inferenceobjectives: { apiVersion: "llm-d.ai/v1alpha2", kind: "InferenceObjectiveList" },
  inferencemodelrewrites: { apiVersion: "llm-d.ai/v1alpha2", kind: "InferenceModelRewriteList" },
};

const PATH =
  /^\/(?:api\/v1|apis\/inference\.networking\.k8s\.io\/v1|apis\/llm-d\.ai\/v1alpha2)\/namespaces\/([^/]+)\/(pods|inferencepools|inferenceobjectives|inferencemodelrewrites)$/;

/** The fake API server. Events: `watch` (kind, resourceVersion), `list` (kind). */
export class FakeApiServer extends EventEmitter {
  private server?: Server;
  private rv = 1;
  private compactedRv = 0;
  private frozen = false;
  private failNext = 0;
  readonly objects = new Map<Kind, Map<string, Obj>>();
  private readonly history = new Map<Kind, Event[]>();
  private readonly watches = new Set<OpenWatch>();
  /** how 410 is reported: HTTP status, or a 200 stream with an `ERROR` event (as the apiserver does) */
  goneMode: "status" | "event" = "event";
  /** every list request, by kind */
  readonly lists: Kind[] = [];
  /** every watch request: kind and requested resourceVersion */
  readonly watchRequests: { kind: Kind; resourceVersion: string; bookmarks: boolean }[] = [];
  url = "";

  constructor(readonly namespace = "default") {
    super();
    for (const k of Object.keys(LIST_KIND) as Kind[]) {
      this.objects.set(k, new Map());
      this.history.set(k, []);
    }
  }

  async start(): Promise<void> {
    this.server = createServer((req, res) => this.handle(req, res));
    this.server.listen(0, "127.0.0.1");
    await once(this.server, "listening");
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    this.dropWatches();
    this.server?.closeAllConnections();
    await new Promise<void>((r) => this.server?.close(() => r()));
  }

  /** Creates or replaces an object (ADDED / MODIFIED). */
  apply(kind: Kind, obj: Obj): void {
    const m = this.objects.get(kind)!;
    const type = m.has(obj.metadata.name) ? "MODIFIED" : "ADDED";
    const rv = ++this.rv;
    const stored = structuredClone(obj);
    stored.metadata.namespace ??= this.namespace;
    stored.metadata.resourceVersion = String(rv);
    m.set(obj.metadata.name, stored);
    this.record(kind, { rv, type, object: stored });
  }

  /** Deletes an object (DELETED). */
  delete(kind: Kind, name: string): void {
    const m = this.objects.get(kind)!;
    const cur = m.get(name);
    if (!cur) return;
    m.delete(name);
    const rv = ++this.rv;
    const gone = structuredClone(cur);
    gone.metadata.resourceVersion = String(rv);
    this.record(kind, { rv, type: "DELETED", object: gone });
  }

  /** Watches started from a version older than now get 410 Gone. */
  compact(): void {
    this.compactedRv = this.rv;
  }

  /** Stop (true) / resume (false) pushing events to open watches. */
  freeze(on: boolean): void {
    this.frozen = on;
  }

  /** The next `n` watch requests answer HTTP 500. */
  failWatches(n: number): void {
    this.failNext = n;
  }

  /** Destroys every open watch connection (or those of one kind). */
  dropWatches(kind?: Kind): void {
    for (const w of [...this.watches]) {
      if (kind && w.kind !== kind) continue;
      this.watches.delete(w);
      w.res.destroy();
    }
  }

  /** Sends a BOOKMARK at a new resourceVersion to the open watches of `kind`; returns it. */
  bookmark(kind: Kind): string {
    const rv = String(++this.rv);
    for (const w of this.watches) {
      if (w.kind !== kind) continue;
      w.res.write(
        `${JSON.stringify({ type: "BOOKMARK", object: { kind: "Bookmark", metadata: { resourceVersion: rv } } })}\n`,
      );
    }
    return rv;
  }

  /** open watch connections of a kind */
  openWatches(kind: Kind): number {
    return [...this.watches].filter((w) => w.kind === kind).length;
  }

  private record(kind: Kind, ev: Event): void {
    this.history.get(kind)!.push(ev);
    if (this.frozen) return;
    for (const w of this.watches)
      if (w.kind === kind) w.res.write(`${JSON.stringify({ type: ev.type, object: ev.object })}\n`);
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? "/", "http://x");
    const m = PATH.exec(url.pathname);
    if (req.method !== "GET" || !m || m[1] !== this.namespace) {
      res.writeHead(404, { "content-type": "application/json" });
      res.end(
        JSON.stringify({
          kind: "Status",
          apiVersion: "v1",
          status: "Failure",
          code: 404,
          reason: "NotFound",
        }),
      );
      return;
    }
    const kind = m[2] as Kind;
    const watch = url.searchParams.get("watch");
    if (watch === "true" || watch === "1") {
      this.watch(kind, url, res);
      return;
    }
    this.lists.push(kind);
    this.emit("list", kind);
    res.writeHead(200, { "content-type": "application/json" });
    res.end(
      JSON.stringify({
        ...LIST_KIND[kind],
        metadata: { resourceVersion: String(this.rv) },
        items: [...this.objects.get(kind)!.values()],
      }),
    );
  }

  private watch(kind: Kind, url: URL, res: ServerResponse): void {
    const from = url.searchParams.get("resourceVersion") ?? "";
    this.watchRequests.push({
      kind,
      resourceVersion: from,
      bookmarks: url.searchParams.get("allowWatchBookmarks") === "true",
    });
    this.emit("watch", kind, from);
    if (this.failNext > 0) {
      this.failNext--;
      res.writeHead(500, { "content-type": "application/json" });
      res.end(JSON.stringify({ kind: "Status", apiVersion: "v1", status: "Failure", code: 500 }));
      return;
    }
    const fromRv = Number(from || "0");
    const gone = {
      kind: "Status",
      apiVersion: "v1",
      status: "Failure",
      reason: "Expired",
      code: 410,
      message: "too old resource version",
    };
    if (fromRv < this.compactedRv) {
      if (this.goneMode === "status") {
        res.writeHead(410, { "content-type": "application/json" });
        res.end(JSON.stringify(gone));
      } else {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(`${JSON.stringify({ type: "ERROR", object: gone })}\n`);
      }
      return;
    }
    res.writeHead(200, { "content-type": "application/json", "transfer-encoding": "chunked" });
    res.flushHeaders();
    for (const ev of this.history.get(kind)!) {
      if (ev.rv > fromRv) res.write(`${JSON.stringify({ type: ev.type, object: ev.object })}\n`);
    }
    const w: OpenWatch = { kind, res };
    this.watches.add(w);
    res.on("close", () => this.watches.delete(w));
  }
}

/** A pod object as the apiserver returns it. */
export function pod(
  name: string,
  ip: string,
  labels: Record<string, string>,
  ready: boolean,
): {
  metadata: { name: string; labels: Record<string, string> };
  status: Record<string, unknown>;
  apiVersion: string;
  kind: string;
} {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, labels },
    status: {
      phase: "Running",
      podIP: ip,
      conditions: [
        { type: "PodScheduled", status: "True" },
        { type: "Ready", status: ready ? "True" : "False" },
      ],
    },
  };
}

/** An InferencePool object. */
export function inferencePool(name: string, matchLabels: Record<string, string>, ports: number[]) {
  return {
    apiVersion: "inference.networking.k8s.io/v1",
    kind: "InferencePool",
    metadata: { name },
    spec: {
      selector: { matchLabels },
      targetPorts: ports.map((number) => ({ number })),
      endpointPickerRef: { name: `${name}-epp`, port: { number: 9002 } },
    },
  };
}
