/**
 * Nesting depth of JSON values, measured without recursion (a value may nest 100,000 levels: JSON.parse
 * does not recurse in V8, but JSON.stringify and any recursive walk overflow the stack).
 */

/**
 * Whether an object or array inside `value` sits deeper than `limit`, counting `value` itself as
 * level `level`. Depth first with an explicit stack, each value once, stopping at the first value
 * past the limit. For JSON-parsed values (trees); scalars are never "too deep".
 */
export function nestedDeeperThan(value: unknown, limit: number, level = 1): boolean {
  if (typeof value !== 'object' || value === null) return false;
  const values: object[] = [value];
  const depths: number[] = [level];
  let n = 1;
  while (n > 0) {
    const v = values[--n]!;
    const d = depths[n]!;
    if (d > limit) return true;
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) {
        const x: unknown = v[i];
        if (typeof x === 'object' && x !== null) {
          values[n] = x;
          depths[n++] = d + 1;
        }
      }
    } else {
      for (const k in v) {
        const x = (v as Record<string, unknown>)[k];
        if (typeof x === 'object' && x !== null) {
          values[n] = x;
          depths[n++] = d + 1;
        }
      }
    }
  }
  return false;
}
