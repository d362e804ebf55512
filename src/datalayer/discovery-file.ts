/**
 * Static endpoint discovery from a file — the `file-discovery` format of llm-d
 * (reference/epp.md §1.8: `endpoints: [{name, namespace?, address (IPv4), port (string), labels?}]`).
 * A port may also be given as a number. Optional reload on change (`watch`).
 */
import { readFileSync, watch as fsWatch, type FSWatcher } from "node:fs";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import type { EndpointMetadata } from "../framework/types.js";

const EndpointEntry = z
  .object({
    name: z.string().min(1),
    namespace: z.string().min(1).optional(),
    address: z.string().min(1),
    port: z.union([z.string().regex(/^\d+$/), z.number().int()]),
    labels: z.record(z.string(), z.string()).optional(),
  })
  .strict();
const DiscoveryFile = z.object({ endpoints: z.array(EndpointEntry) }).strict();

/** An endpoint entry as written in a discovery file. */
export type DiscoveryEntry = z.input<typeof EndpointEntry>;

/**
 * Parses discovery-file text (YAML or JSON) into endpoint metadata.
 * @throws Error naming the offending field
 */
export function parseDiscoveryFile(text: string): EndpointMetadata[] {
  const r = DiscoveryFile.safeParse(parseYaml(text));
  if (!r.success) {
    const i = r.error.issues[0]!;
    throw new Error(`discovery file: ${i.path.join(".") || "(root)"}: ${i.message}`);
  }
  const seen = new Set<string>();
  return r.data.endpoints.map((e) => {
    const port = Number(e.port);
    if (port < 1 || port > 65535)
      throw new Error(`discovery file: endpoint ${e.name}: port ${port} out of range`);
    const namespace = e.namespace ?? "default";
    const id = `${namespace}/${e.name}`;
    if (seen.has(id)) throw new Error(`discovery file: duplicate endpoint ${id}`);
    seen.add(id);
    return {
      id,
      name: e.name,
      namespace,
      address: e.address,
      port,
      hostPort: `${e.address}:${port}`,
      labels: e.labels ?? {},
    };
  });
}

/** Serialises endpoints into the discovery-file format (used by `llmd up`). */
export function discoveryFileText(entries: DiscoveryEntry[]): string {
  return JSON.stringify({ endpoints: entries.map((e) => ({ ...e, port: String(e.port) })) }, null, 2);
}

/**
 * Reads a discovery file and calls `onEndpoints` with its endpoints, then again whenever the
 * file changes (when `watch` is true). A file that fails to parse on reload is logged by the
 * caller through `onError` and the previous endpoints stay.
 * @returns a stop function
 * @throws Error when the first read fails
 */
export function watchDiscoveryFile(
  path: string,
  onEndpoints: (endpoints: EndpointMetadata[]) => void,
  opts: { watch?: boolean; onError?: (err: Error) => void } = {},
): () => void {
  onEndpoints(parseDiscoveryFile(readFileSync(path, "utf8")));
  if (!opts.watch) return () => {};
  let w: FSWatcher | undefined = fsWatch(path, () => {
    try {
      onEndpoints(parseDiscoveryFile(readFileSync(path, "utf8")));
    } catch (e) {
      opts.onError?.(e as Error);
    }
  });
  return () => {
    w?.close();
    w = undefined;
  };
}
