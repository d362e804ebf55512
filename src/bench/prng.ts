/**
 * Seeded pseudo-random numbers for the bench: the same seed gives the same prompts, the
 * same request order and the same Poisson arrival times on every machine.
 *
 * Generator: mulberry32 (32-bit state, period 2^32), seeded through splitmix32 so that
 * nearby seeds give unrelated streams. Not cryptographic.
 */

/** A seeded source of uniform numbers in [0, 1). */
export interface Rng {
  /** Next uniform number in [0, 1). */
  next(): number;
  /** Uniform integer in [0, n). Throws `RangeError` when `n` is not a positive integer. */
  int(n: number): number;
}

function splitmix32(x: number): number {
  x = (x + 0x9e3779b9) | 0;
  let z = x;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

/**
 * Creates a seeded generator.
 * @param seed any integer (only the low 32 bits matter)
 * @param stream sub-stream number, so one seed can feed independent streams (prompts,
 *   order, arrivals) that do not shift when another stream draws more numbers
 */
export function createRng(seed: number, stream = 0): Rng {
  let state = splitmix32(splitmix32(seed | 0) ^ Math.imul(stream + 1, 0x27d4eb2d));
  const next = (): number => {
    state = (state + 0x6d2b79f5) | 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int(n: number): number {
      if (!Number.isInteger(n) || n <= 0) throw new RangeError(`int(n) needs a positive integer, got ${n}`);
      return Math.floor(next() * n);
    },
  };
}

/** Fisher–Yates shuffle in place with the given generator; returns the same array. */
export function shuffleInPlace<T>(items: T[], rng: Rng): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const tmp = items[i]!;
    items[i] = items[j]!;
    items[j] = tmp;
  }
  return items;
}

/**
 * Poisson-process arrival offsets: `count` send times in ms from the start, with
 * exponentially distributed gaps of mean `1000 / ratePerS` ms. The first request is sent at
 * its first gap (not at 0), as in a Poisson process started at t = 0.
 * Throws `RangeError` when `ratePerS` is not a positive finite number.
 */
export function poissonArrivalsMs(count: number, ratePerS: number, rng: Rng): number[] {
  if (!(ratePerS > 0) || !Number.isFinite(ratePerS)) {
    throw new RangeError(`rate must be a positive number of requests/s, got ${ratePerS}`);
  }
  const out: number[] = new Array(count);
  let t = 0;
  for (let i = 0; i < count; i++) {
    t += (-Math.log(1 - rng.next()) * 1000) / ratePerS;
    out[i] = t;
  }
  return out;
}
