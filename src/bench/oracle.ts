/**
 * The workload's **oracle prefix-cache hit rate**: the best hit rate any router could reach
 * with an unlimited prefix cache shared by every server (no evictions, perfect routing).
 *
 * For each request in send order, take the longest prefix it shares with any earlier
 * request, counted in whole blocks of `blockSize` tokens, and never more than
 * `promptTokens − 1` tokens (vLLM always recomputes the last prompt token: it looks up at
 * most `floor((n − 1) / blockSize)` full blocks). Sum over requests ÷ total prompt tokens.
 *
 * Requests are compared by chained full blocks, like vLLM's block hashes: block k of a
 * prompt matches only when blocks 0..k all match an earlier prompt's blocks 0..k. Keys are
 * exact (no hashing), so there are no collisions. Prompts are read one at a time, so pass a
 * lazy iterable for large workloads.
 */

/** Result of {@link oracleHitRate}. */
export interface OracleResult {
  /** Σ cacheable tokens ÷ Σ prompt tokens, fraction 0..1 (0 when there are no tokens). */
  hitRate: number;
  /** Σ over requests of the cacheable prefix, in tokens. */
  hitTokens: number;
  /** Σ over requests of the prompt length, in tokens. */
  promptTokens: number;
}

/**
 * Computes the oracle hit rate of prompts given as token sequences, in send order.
 * @param prompts token sequences (tokens compared as strings) in send order
 * @param blockSize tokens per KV block (vLLM default 16)
 * @throws RangeError when `blockSize` is not a positive integer
 */
export function oracleHitRate(prompts: Iterable<readonly string[]>, blockSize: number): OracleResult {
  if (!Number.isInteger(blockSize) || blockSize < 1) {
    throw new RangeError(`block size must be a positive integer, got ${blockSize}`);
  }
  // A block's content is interned to a small integer; a block's id is keyed by its parent
  // block's id and its content id, so an id names a whole prefix exactly (no hashing, no
  // collisions).
  const contentIds = new Map<string, number>();
  const ids = new Map<string, number>();
  let hitTokens = 0;
  let promptTokens = 0;
  for (const tokens of prompts) {
    const n = tokens.length;
    promptTokens += n;
    const fullBlocks = Math.floor(n / blockSize);
    const maxHitBlocks = n > 0 ? Math.floor((n - 1) / blockSize) : 0;
    let parent = -1;
    let matched = 0;
    let stillMatching = true;
    for (let b = 0; b < fullBlocks; b++) {
      const content = tokens.slice(b * blockSize, (b + 1) * blockSize).join("\u0000");
      let cid = contentIds.get(content);
      if (cid === undefined) {
        cid = contentIds.size;
        contentIds.set(content, cid);
      }
      const key = `${parent}:${cid}`;
      let id = ids.get(key);
      if (id === undefined) {
        stillMatching = false;
        id = ids.size;
        ids.set(key, id);
      } else if (stillMatching) {
        matched++;
      }
      parent = id;
    }
    hitTokens += Math.min(matched, maxHitBlocks) * blockSize;
  }
  return { hitRate: promptTokens > 0 ? hitTokens / promptTokens : 0, hitTokens, promptTokens };
}
