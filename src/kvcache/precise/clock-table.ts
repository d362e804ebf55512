/**
 * Records with a 64-bit key each, CLOCK (second-chance) replacement, and a compact hash index.
 *
 * Records: record s occupies `stride` words at `s·stride` of {@link ClockTable.d}:
 * `[hi, lo, flags, payload…]` (flags: 1 = used, 2 = referenced since the hand last passed), so
 * a record's key, CLOCK bit and payload share cache lines. A released record is reused first
 * (LIFO), so a new key usually takes the record just evicted at the hand: records are written
 * in CLOCK order, close to sequentially.
 *
 * Index (after F14 / Swiss tables, but holding record numbers instead of keys): groups of 10
 * slots, 64 bytes each — 10 16-bit fingerprints of the hash (0 = empty slot), an
 * overflow count (keys whose probe passed this group because it was full and that live further
 * on), then the 10 record numbers. A probe reads the key's group and moves on only while the
 * overflow count is non-zero; a record is read only on a fingerprint match (false matches: 1 in
 * 65,535 per occupied slot). The index grows ×2 above 6 keys per group, so it takes 11 to 21
 * bytes per key: for a table larger than the CPU caches, it stays cached far better than the
 * records, so that looking up an absent key, adding a key and evicting one read no record but
 * the one at the CLOCK hand.
 *
 * CLOCK approximates LRU at one write per touch. Single-threaded.
 */
const NONE = -1;
/** slots per group */
const GS = 10;
/**
 * words per group: 5 words of fingerprints (slot 2j in the low half of word j, slot 2j + 1 in
 * the high half), the overflow count, then the 10 records
 */
const GW = 16;
/** word of the overflow count within a group */
const OVF = 5;
/** word of the first record within a group */
const REC = 6;
/** an overflow count that has saturated stays (probes just go further) */
const OVF_MAX = 0x7fffffff;
/** index load limit: keys per group (60 %) */
const LIMIT = 6;

function hash(hi: number, lo: number): number {
  const h = Math.imul(lo ^ (hi >>> 15), 0x9e3779b1) ^ Math.imul(hi ^ (lo >>> 13), 0x85ebca6b);
  return h ^ (h >>> 16);
}

/**
 * A non-zero 16-bit fingerprint of hash `h`: the high bits of a second mix (the low bits of `h`
 * pick the group).
 */
function fingerprint(h: number): number {
  return Math.imul(h, 0x2c1b3c6d) >>> 16 || 1;
}

export class ClockTable {
  /** records allocated in {@link d} */
  cap: number;
  /** words per record */
  stride: number;
  /** record words (see module doc); reallocated by {@link growTo} and {@link restride} */
  d: Int32Array;
  /** used records (= indexed keys) */
  count = 0;
  private free: number[] = [];
  private used = 0;
  private hand = 0;
  /** groups − 1 (a power of two) */
  private gmask: number;
  /** the index: groups of {@link GW} words */
  private ix: Int32Array;

  /**
   * @param initial records allocated up front
   * @param stride words per record (≥ 3)
   */
  constructor(initial: number, stride: number) {
    this.cap = initial;
    this.stride = stride;
    this.d = new Int32Array(stride * initial);
    let groups = 2;
    while (groups * LIMIT < initial) groups *= 2;
    this.gmask = groups - 1;
    this.ix = new Int32Array(GW * groups);
  }

  // ------------------------------------------------------------ keys

  /** The record of key (hi, lo), or -1. */
  find(hi: number, lo: number): number {
    const ix = this.ix;
    const d = this.d;
    const w = this.stride;
    const m = this.gmask;
    const h = hash(hi, lo);
    const pat = Math.imul(fingerprint(h), 0x10001);
    const kh = hi | 0;
    const kl = lo | 0;
    // at most every group once (in a small table, every group may have overflowed)
    for (let g = h & m, n = 0; n <= m; g = (g + 1) & m, n++) {
      const b = GW * g;
      for (let j = 0; j < GS / 2; j++) {
        // two fingerprints per word: a half equal to the key's makes a zero half of t
        const t = ix[b + j]! ^ pat;
        if (((t - 0x10001) & ~t & 0x80008000) === 0) continue;
        if ((t & 0xffff) === 0) {
          const s = ix[b + REC + 2 * j]!;
          if (d[w * s + 1] === kl && d[w * s] === kh) return s;
        }
        if (t >>> 16 === 0) {
          const s = ix[b + REC + 2 * j + 1]!;
          if (d[w * s + 1] === kl && d[w * s] === kh) return s;
        }
      }
      if (ix[b + OVF] === 0) return NONE;
    }
    return NONE;
  }

  /**
   * Adds key (hi, lo), which must be absent, in a new referenced record whose payload the caller
   * writes.
   * @returns the record, or -1 when every record is in use (evict or {@link growTo} first)
   */
  add(hi: number, lo: number): number {
    let s: number;
    if (this.free.length > 0) s = this.free.pop()!;
    else if (this.used < this.cap) s = this.used++;
    else return NONE;
    const o = this.stride * s;
    this.d[o] = hi;
    this.d[o + 1] = lo;
    this.d[o + 2] = 3;
    this.count++;
    if (this.count > (this.gmask + 1) * LIMIT) this.reindex(2 * (this.gmask + 1));
    else this.index(hash(hi, lo), s);
    return s;
  }

  /** Removes record s (used) and its key. */
  remove(s: number): void {
    const o = this.stride * s;
    this.unindex(hash(this.d[o]!, this.d[o + 1]!), s);
    this.d[o + 2] = 0;
    this.free.push(s);
    this.count--;
  }

  /** Marks record s referenced (it survives the hand's next pass). */
  touch(s: number): void {
    this.d[this.stride * s + 2] = 3;
  }

  /** High word of the key of record s (uint32). */
  hi(s: number): number {
    return this.d[this.stride * s]! >>> 0;
  }

  /** Low word of the key of record s (uint32). */
  lo(s: number): number {
    return this.d[this.stride * s + 1]! >>> 0;
  }

  /**
   * Reads the index group of key (hi, lo) and returns a meaningless value: a prefetch (see
   * {@link probe2}).
   */
  probe(hi: number, lo: number): number {
    const b = GW * (hash(hi, lo) & this.gmask);
    return this.ix[b]! ^ this.ix[b + GW - 1]!;
  }

  /**
   * Reads the index groups of keys (h1, l1) and (h2, l2) and returns a meaningless value: a
   * prefetch. Issued back to back (and with those of other tables, by the caller), their cache
   * misses overlap, and the {@link find}/{@link add}/{@link remove} calls that follow find the
   * lines cached. A group's first and last words are read: an array is not necessarily 64-byte
   * aligned, so a group may span two cache lines.
   */
  probe2(h1: number, l1: number, h2: number, l2: number): number {
    const m = this.gmask;
    const ix = this.ix;
    const a = GW * (hash(h1, l1) & m);
    const b = GW * (hash(h2, l2) & m);
    return ix[a]! ^ ix[b]! ^ ix[a + GW - 1]! ^ ix[b + GW - 1]!;
  }

  // ------------------------------------------------------------ CLOCK

  /** The record to evict: the first used one after the hand not referenced since the last pass. */
  victim(): number {
    const d = this.d;
    const n = this.used;
    const w = this.stride;
    for (;;) {
      if (this.hand >= n) this.hand = 0;
      const o = w * this.hand + 2;
      const f = d[o]!;
      if (f === 1) return this.hand++;
      if (f === 3) d[o] = 1;
      this.hand++;
    }
  }

  /**
   * The record {@link victim} would most likely return, found without changing anything (a
   * short scan for an unreferenced record); -1 when not found quickly. A hint only.
   */
  peekVictim(): number {
    const d = this.d;
    const n = this.used;
    const w = this.stride;
    let h = this.hand;
    for (let k = 0; k < 4; k++, h++) {
      if (h >= n) h = 0;
      if (d[w * h + 2] === 1) return h;
    }
    return NONE;
  }

  // ------------------------------------------------------------ sizes

  /** Allocates records up to `c` in all. */
  growTo(c: number): void {
    const nd = new Int32Array(this.stride * c);
    nd.set(this.d);
    this.d = nd;
    this.cap = c;
  }

  /** Widens every record to `stride` words (payload copied, the rest zero). */
  restride(stride: number): void {
    const old = this.d;
    const w = this.stride;
    const nd = new Int32Array(stride * this.cap);
    for (let s = 0; s < this.used; s++) nd.set(old.subarray(w * s, w * s + w), stride * s);
    this.d = nd;
    this.stride = stride;
  }

  // ------------------------------------------------------------ index

  private index(h: number, s: number): void {
    const ix = this.ix;
    const m = this.gmask;
    // the load limit leaves free slots: the loop ends
    for (let g = h & m; ; g = (g + 1) & m) {
      const b = GW * g;
      for (let j = 0; j < GS / 2; j++) {
        const f = ix[b + j]!;
        if ((f & 0xffff) === 0) {
          ix[b + j] = (f & 0xffff0000) | fingerprint(h);
          ix[b + REC + 2 * j] = s;
          return;
        }
        if (f >>> 16 === 0) {
          ix[b + j] = (f & 0xffff) | (fingerprint(h) << 16);
          ix[b + REC + 2 * j + 1] = s;
          return;
        }
      }
      if (ix[b + OVF]! < OVF_MAX) ix[b + OVF]!++;
    }
  }

  private unindex(h: number, s: number): void {
    const ix = this.ix;
    const m = this.gmask;
    const fp = fingerprint(h);
    const home = h & m;
    for (let g = home, n = 0; n <= m; g = (g + 1) & m, n++) {
      const b = GW * g;
      for (let k = 0; k < GS; k++) {
        if (ix[b + REC + k] !== s) continue;
        const f = ix[b + (k >> 1)]!;
        if ((k & 1) === 0 ? (f & 0xffff) !== fp : f >>> 16 !== fp) continue;
        ix[b + (k >> 1)] = (k & 1) === 0 ? f & 0xffff0000 : f & 0xffff;
        // un-count the key on the groups it passed
        for (let p = home; p !== g; p = (p + 1) & m) if (ix[GW * p + OVF]! < OVF_MAX) ix[GW * p + OVF]!--;
        return;
      }
      if (ix[b + OVF] === 0) return;
    }
  }

  /** Rebuilds the index with `groups` groups from the used records. */
  private reindex(groups: number): void {
    this.gmask = groups - 1;
    this.ix = new Int32Array(GW * groups);
    const d = this.d;
    const w = this.stride;
    for (let s = 0; s < this.used; s++) if (d[w * s + 2] !== 0) this.index(hash(d[w * s]!, d[w * s + 1]!), s);
  }
}
