/**
 * Open-addressing hash map from a 64-bit key (two uint32 halves) to a non-negative int32,
 * linear probing with backward-shift deletion (no tombstones). Grows ×2 at load 1/2.
 *
 * Why not `Map<bigint, number>`: measured ~500 ns per get/set on 1M random keys here, plus
 * BigInt allocation per key; this map does a get in a few tens of ns with no allocation.
 */
const EMPTY = -1;

export class U64Map {
  private cap: number;
  private mask: number;
  private hi: Uint32Array;
  private lo: Uint32Array;
  private val: Int32Array;
  /** number of keys */
  size = 0;

  /** @param initialCapacity rounded up to a power of two ≥ 16 */
  constructor(initialCapacity = 1024) {
    let c = 16;
    while (c < initialCapacity) c *= 2;
    this.cap = c;
    this.mask = c - 1;
    this.hi = new Uint32Array(c);
    this.lo = new Uint32Array(c);
    this.val = new Int32Array(c).fill(EMPTY);
  }

  private slot(hi: number, lo: number): number {
    let h = Math.imul(lo ^ (hi >>> 15), 0x9e3779b1) ^ Math.imul(hi ^ (lo >>> 13), 0x85ebca6b);
    h ^= h >>> 16;
    return h & this.mask;
  }

  /** The value of key (hi, lo), or -1. */
  get(hi: number, lo: number): number {
    const m = this.mask;
    let i = this.slot(hi, lo);
    for (;;) {
      const v = this.val[i]!;
      if (v === EMPTY) return EMPTY;
      if (this.lo[i] === lo && this.hi[i] === hi) return v;
      i = (i + 1) & m;
    }
  }

  /** Sets key (hi, lo) to `v` (≥ 0). */
  set(hi: number, lo: number, v: number): void {
    if ((this.size + 1) * 2 > this.cap) this.grow();
    const m = this.mask;
    let i = this.slot(hi, lo);
    for (;;) {
      const cur = this.val[i]!;
      if (cur === EMPTY) {
        this.hi[i] = hi;
        this.lo[i] = lo;
        this.val[i] = v;
        this.size++;
        return;
      }
      if (this.lo[i] === lo && this.hi[i] === hi) {
        this.val[i] = v;
        return;
      }
      i = (i + 1) & m;
    }
  }

  /** Removes key (hi, lo); returns whether it was present. */
  delete(hi: number, lo: number): boolean {
    const m = this.mask;
    let i = this.slot(hi, lo);
    for (;;) {
      const v = this.val[i]!;
      if (v === EMPTY) return false;
      if (this.lo[i] === lo && this.hi[i] === hi) break;
      i = (i + 1) & m;
    }
    // backward-shift deletion
    let j = i;
    for (;;) {
      j = (j + 1) & m;
      if (this.val[j] === EMPTY) break;
      const k = this.slot(this.hi[j]!, this.lo[j]!);
      // move j into the hole i unless its home k lies cyclically in (i, j]
      if (i <= j ? i < k && k <= j : i < k || k <= j) continue;
      this.hi[i] = this.hi[j]!;
      this.lo[i] = this.lo[j]!;
      this.val[i] = this.val[j]!;
      i = j;
    }
    this.val[i] = EMPTY;
    this.size--;
    return true;
  }

  /** Removes every key. */
  clear(): void {
    this.val.fill(EMPTY);
    this.size = 0;
  }

  private grow(): void {
    const { hi, lo, val } = this;
    const c = this.cap * 2;
    this.cap = c;
    this.mask = c - 1;
    this.hi = new Uint32Array(c);
    this.lo = new Uint32Array(c);
    this.val = new Int32Array(c).fill(EMPTY);
    this.size = 0;
    for (let i = 0; i < val.length; i++) if (val[i]! !== EMPTY) this.set(hi[i]!, lo[i]!, val[i]!);
  }
}
