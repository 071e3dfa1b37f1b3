import type { JsonPatchOp } from '../src/index.js';

/**
 * A tiny RFC 6902 applier (add and replace, the only ops the webhook emits), strict like
 * kube-apiserver's: replace needs an existing member, add needs an existing parent.
 */
export function applyPatch<T>(doc: T, ops: readonly JsonPatchOp[]): T {
  const out = structuredClone(doc) as unknown;
  for (const op of ops) {
    const tokens = op.path.split('/').slice(1).map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~'));
    const last = tokens.pop()!;
    let parent = out as Record<string, unknown>;
    for (const t of tokens) {
      const next = parent[t];
      if (typeof next !== 'object' || next === null) throw new Error(`${op.op} ${op.path}: no parent at "${t}"`);
      parent = next as Record<string, unknown>;
    }
    if (op.op === 'replace' && !Object.hasOwn(parent, last)) throw new Error(`replace ${op.path}: no such member`);
    parent[last] = structuredClone(op.value);
  }
  return out as T;
}
