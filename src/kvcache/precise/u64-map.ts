/**
 * Open-addressing hash map from a 64-bit key (two uint32 halves) to a non-negative int32 and an
 * optional fixed-size payload of int32 words stored in the slot itself; linear probing with
 * backward-shift deletion (no tombstones). Grows ×2 at load 1/2.
 *
 * Why not `Map<bigint, number>`: measured ~500 ns per get/set on 1M random keys here, plus
 * BigInt allocation per key; this map does a get in a few tens of ns with no allocation. The
 * payload spares a second random memory access when the data of a key is small.
 */
const EMPTY = -1;

export class U64Map {
  private cap: number;
  private mask: number;
  /** words per slot: `[hi, lo, value, payload…]`; value −1 = empty */
  private w: number;
  private d: Int32Array;
  /** number of keys */
  size = 0;

  /**
   * @param initialCapacity rounded up to a power of two ≥ 16
   * @param payload int32 words stored with each key (see {@link find})
   */
  constructor(initialCapacity = 1024, payload = 0) {
    let c = 16;
    while (c < initialCapacity) c *= 2;
    this.cap = c;
    this.mask = c - 1;
    this.w = 3 + payload;
    this.d = U64Map.alloc(c, this.w);
  }

  private static alloc(c: number, w: number): Int32Array {
    const d = new Int32Array(w * c);
    for (let i = 2; i < d.length; i += w) d[i] = EMPTY;
    return d;
  }

  /**
   * The slot words: the slot of a key found by {@link find} or written by {@link set} starts at
   * the returned offset (`[hi, lo, value, payload…]`). Offsets and this array are valid until
   * the next {@link set}, {@link delete}, {@link clear} or {@link widen}.
   */
  get words(): Int32Array {
    return this.d;
  }

  /** Payload words per key. */
  get payload(): number {
    return this.w - 3;
  }

  private slot(hi: number, lo: number): number {
    let h = Math.imul(lo ^ (hi >>> 15), 0x9e3779b1) ^ Math.imul(hi ^ (lo >>> 13), 0x85ebca6b);
    h ^= h >>> 16;
    return h & this.mask;
  }

  /** The value of key (hi, lo), or -1. */
  get(hi: number, lo: number): number {
    const o = this.find(hi, lo);
    return o === EMPTY ? EMPTY : this.d[o + 2]!;
  }

  /** Offset in {@link words} of the slot of key (hi, lo), or -1. */
  find(hi: number, lo: number): number {
    const m = this.mask;
    const w = this.w;
    const d = this.d;
    const h = hi | 0;
    const l = lo | 0;
    let i = this.slot(hi, lo);
    for (;;) {
      const o = w * i;
      if (d[o + 2] === EMPTY) return EMPTY;
      if (d[o + 1] === l && d[o] === h) return o;
      i = (i + 1) & m;
    }
  }

  /** {@link probe2} for one key. */
  probe(hi: number, lo: number): number {
    const m = this.mask;
    const w = this.w;
    const i = this.slot(hi, lo);
    return this.d[w * i + 2]! ^ this.d[w * ((i + 1) & m) + 2]!;
  }

  /**
   * Reads the home slots of keys (h1, l1) and (h2, l2), and the slots after them (a probe or a
   * backward shift usually reaches them), and returns a meaningless value: a prefetch. The reads
   * are issued back to back (and with those of other maps, by the caller), so that their cache
   * misses overlap and the {@link find}/{@link set}/{@link delete} calls that follow find the
   * lines cached.
   */
  probe2(h1: number, l1: number, h2: number, l2: number): number {
    const m = this.mask;
    const w = this.w;
    const d = this.d;
    const a = this.slot(h1, l1);
    const b = this.slot(h2, l2);
    return d[w * a + 2]! ^ d[w * b + 2]! ^ d[w * ((a + 1) & m) + 2]! ^ d[w * ((b + 1) & m) + 2]!;
  }

  /**
   * Sets key (hi, lo) to `v` (≥ 0). The payload of a new key is zero; an existing key keeps its.
   * @returns the offset of the key's slot in {@link words}
   */
  set(hi: number, lo: number, v: number): number {
    if ((this.size + 1) * 2 > this.cap) this.grow();
    const m = this.mask;
    const w = this.w;
    const d = this.d;
    const h = hi | 0;
    const l = lo | 0;
    let i = this.slot(hi, lo);
    for (;;) {
      const o = w * i;
      const cur = d[o + 2]!;
      if (cur === EMPTY) {
        d[o] = h;
        d[o + 1] = l;
        d[o + 2] = v;
        for (let k = o + 3; k < o + w; k++) d[k] = 0;
        this.size++;
        return o;
      }
      if (d[o + 1] === l && d[o] === h) {
        d[o + 2] = v;
        return o;
      }
      i = (i + 1) & m;
    }
  }

  /** Removes key (hi, lo); returns whether it was present. */
  delete(hi: number, lo: number): boolean {
    const m = this.mask;
    const w = this.w;
    const d = this.d;
    const h = hi | 0;
    const l = lo | 0;
    let i = this.slot(hi, lo);
    for (;;) {
      const o = w * i;
      if (d[o + 2] === EMPTY) return false;
      if (d[o + 1] === l && d[o] === h) break;
      i = (i + 1) & m;
    }
    // backward-shift deletion
    let j = i;
    for (;;) {
      j = (j + 1) & m;
      const oj = w * j;
      if (d[oj + 2] === EMPTY) break;
      const k = this.slot(d[oj]!, d[oj + 1]!);
      // move j into the hole i unless its home k lies cyclically in (i, j]
      if (i <= j ? i < k && k <= j : i < k || k <= j) continue;
      const oi = w * i;
      for (let x = 0; x < w; x++) d[oi + x] = d[oj + x]!;
      i = j;
    }
    d[w * i + 2] = EMPTY;
    this.size--;
    return true;
  }

  /** Removes every key. */
  clear(): void {
    this.d = U64Map.alloc(this.cap, this.w);
    this.size = 0;
  }

  /** Enlarges the payload of every key to `payload` words (existing words kept, new ones zero). */
  widen(payload: number): void {
    if (3 + payload > this.w) this.rehash(this.cap, 3 + payload);
  }

  private grow(): void {
    this.rehash(this.cap * 2, this.w);
  }

  private rehash(cap: number, w: number): void {
    const old = this.d;
    const ow = this.w;
    this.cap = cap;
    this.mask = cap - 1;
    this.w = w;
    this.d = U64Map.alloc(cap, w);
    this.size = 0;
    for (let o = 0; o < old.length; o += ow) {
      if (old[o + 2]! === EMPTY) continue;
      const n = this.set(old[o]!, old[o + 1]!, old[o + 2]!);
      for (let k = 3; k < ow; k++) this.d[n + k] = old[o + k]!;
    }
  }
}
