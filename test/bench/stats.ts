/** Summary of a sample (latencies, durations): nearest-rank percentiles, for every benchmark alike. */
export interface Stats { n: number; p50: number; p99: number; max: number; min: number; mean: number }

/** Undefined for an empty sample. */
export function stats(xs: ArrayLike<number>): Stats | undefined {
  if (!xs.length) return undefined;
  const s = Float64Array.from(xs).sort();
  const at = (q: number) => s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
  let sum = 0;
  for (const x of s) sum += x;
  return { n: s.length, p50: at(0.5), p99: at(0.99), max: s[s.length - 1]!, min: s[0]!, mean: sum / s.length };
}
