/**
 * Approximate prefix index: block hash → endpoints holding it, with one LRU of hashes per
 * endpoint (capacity in blocks). All operations are O(1) per hash: the per-endpoint LRU is a
 * `Set` in insertion order (touch = delete + add, evict = first key).
 *
 * Mirrors llm-d-router `approximateprefix/indexer.go` (`hashicorp/golang-lru` per pod,
 * reference/epp.md §3.5). Lookups do not refresh recency; inserts do.
 *
 * Memory: a hash held by one endpoint stores the endpoint id directly; only hashes shared by
 * several endpoints allocate a `Set` of ids.
 */

type Owners = string | Set<string>;

interface EndpointLru {
  capacity: number;
  /** hashes, least recently inserted first */
  readonly hashes: Set<bigint>;
}

export class PrefixLruIndex {
  private readonly byHash = new Map<bigint, Owners>();
  private readonly byEndpoint = new Map<string, EndpointLru>();

  /** @param defaultCapacity blocks per endpoint when {@link add} gets no capacity (≥ 1) */
  constructor(readonly defaultCapacity: number) {
    if (!(defaultCapacity >= 1)) throw new RangeError(`capacity must be ≥ 1, got ${defaultCapacity}`);
  }

  /**
   * Inserts (or refreshes) `hashes` for an endpoint, evicting its least recently inserted
   * hashes beyond `capacity`. A new capacity applies from this call on (shrinking evicts).
   * @param capacity blocks; default {@link defaultCapacity}
   */
  add(endpointId: string, hashes: readonly bigint[], capacity: number = this.defaultCapacity): void {
    let lru = this.byEndpoint.get(endpointId);
    if (!lru) {
      lru = { capacity, hashes: new Set() };
      this.byEndpoint.set(endpointId, lru);
    }
    lru.capacity = Math.max(1, capacity);
    const set = lru.hashes;
    for (let i = 0; i < hashes.length; i++) {
      const h = hashes[i];
      if (set.has(h)) {
        set.delete(h);
        set.add(h);
        continue;
      }
      set.add(h);
      this.addOwner(h, endpointId);
    }
    while (set.size > lru.capacity) {
      const oldest = set.values().next().value as bigint;
      set.delete(oldest);
      this.removeOwner(oldest, endpointId);
    }
  }

  /**
   * Consecutive matched blocks from block 0 for each endpoint.
   * @returns `out[j]` = number of leading `hashes` that `endpointIds[j]` holds
   */
  match(hashes: readonly bigint[], endpointIds: readonly string[]): number[] {
    const m = endpointIds.length;
    const out = new Array<number>(m).fill(0);
    const done = new Array<boolean>(m).fill(false);
    let alive = m;
    for (let i = 0; i < hashes.length && alive > 0; i++) {
      const o = this.byHash.get(hashes[i]);
      if (o === undefined) break;
      for (let j = 0; j < m; j++) {
        if (done[j]) continue;
        const id = endpointIds[j];
        if (typeof o === "string" ? o === id : o.has(id)) out[j] = i + 1;
        else {
          done[j] = true;
          alive--;
        }
      }
    }
    return out;
  }

  /** Whether the endpoint holds `hash`. */
  has(endpointId: string, hash: bigint): boolean {
    return this.byEndpoint.get(endpointId)?.hashes.has(hash) ?? false;
  }

  /** Drops every hash of an endpoint. */
  removeEndpoint(endpointId: string): void {
    const lru = this.byEndpoint.get(endpointId);
    if (!lru) return;
    for (const h of lru.hashes) this.removeOwner(h, endpointId);
    this.byEndpoint.delete(endpointId);
  }

  /** Distinct hashes in the index (the `prefix_indexer_size` gauge). */
  size(): number {
    return this.byHash.size;
  }

  /** Hashes held by one endpoint. */
  endpointSize(endpointId: string): number {
    return this.byEndpoint.get(endpointId)?.hashes.size ?? 0;
  }

  /** Endpoint ids with an LRU. */
  endpoints(): string[] {
    return [...this.byEndpoint.keys()];
  }

  private addOwner(h: bigint, id: string): void {
    const o = this.byHash.get(h);
    if (o === undefined) this.byHash.set(h, id);
    else if (typeof o === "string") {
      if (o !== id) this.byHash.set(h, new Set([o, id]));
    } else o.add(id);
  }

  private removeOwner(h: bigint, id: string): void {
    const o = this.byHash.get(h);
    if (o === undefined) return;
    if (typeof o === "string") {
      if (o === id) this.byHash.delete(h);
      return;
    }
    o.delete(id);
    if (o.size === 1) this.byHash.set(h, o.values().next().value as string);
    else if (o.size === 0) this.byHash.delete(h);
  }
}
