/**
 * Go-style durations (`250us`, `12ms`, `1.5s`, `1m30s`), as llm-d and llm-d-inference-sim take
 * them in flags and configs (reference/engine.md §6.2; epp.md §6 `defaultRequestTTL`).
 */

const UNIT_MS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  μs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/**
 * Parses `250us`, `12ms`, `1.5s`, `1m30s`, `0` or a plain number (taken as ms) into ms.
 * @returns milliseconds (≥ 0)
 * @throws Error on anything else or a negative value
 */
export function parseDurationMs(input: string | number): number {
  if (typeof input === "number") {
    if (!Number.isFinite(input) || input < 0) throw new Error(`invalid duration: ${input}`);
    return input;
  }
  const s = input.trim();
  if (s === "") throw new Error("invalid duration: empty");
  if (/^\d+(\.\d+)?$/.test(s)) return Number(s);
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|μs|ms|s|m|h)/gy;
  let total = 0;
  let pos = 0;
  for (let m = re.exec(s); m !== null; m = re.exec(s)) {
    total += Number(m[1]) * UNIT_MS[m[2]!]!;
    pos = re.lastIndex;
  }
  if (pos !== s.length || pos === 0) throw new Error(`invalid duration: ${input} (use e.g. 250us, 12ms, 1s)`);
  return total;
}
