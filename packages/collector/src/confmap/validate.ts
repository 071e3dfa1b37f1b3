import type { z } from 'zod';
import { type ConfigProblem, formatPath, joinPath, problemOf } from './problems.js';

/**
 * Validates one part of a config against its schema and returns every problem, not the first.
 *
 * A value that was one whole `${env:NAME}` reference is a string after substitution (env.ts). Where
 * the schema refuses that string because it wants a boolean, a number or nothing (`insecure:
 * ${env:JAEGER_OTLP_INSECURE:-true}`, `port: ${env:PORT}`), the string is read as YAML 1.2 reads a
 * plain scalar (`true`, `5`, `1.5`, `''` or `null` for nothing) and validated again. Nothing else is
 * read from it: an environment value never becomes a map or a list.
 */
export function validate<T>(schema: z.ZodType<T>, value: unknown, prefix: string, wholeReferences: ReadonlySet<string>): { data?: T; problems: ConfigProblem[] } {
  let input = value;
  // Each round types at least one more reference; a handful of rounds covers nested unions.
  for (let round = 0; ; round++) {
    const r = schema.safeParse(input);
    if (r.success) return { data: r.data, problems: [] };
    let typed = false;
    if (round < 8) {
      for (const issue of r.error.issues) {
        if (!wholeReferences.has(joinPath(prefix, formatPath(issue.path)))) continue;
        const text = valueAt(input, issue.path);
        const scalar = typeof text === 'string' ? yamlScalar(text) : undefined;
        if (scalar === undefined || !wants(issue, scalar)) continue;
        input = withValueAt(input, issue.path, scalar);
        typed = true;
      }
    }
    if (!typed) return { problems: r.error.issues.map((i) => problemOf(i, prefix)) };
  }
}

/** Does the issue ask for a value like this one (rather than for a string of another form)? */
function wants(issue: z.core.$ZodIssue, v: boolean | number | null): boolean {
  if (issue.code === 'invalid_type') return issue.expected === (v === null ? 'null' : typeof v) || v === null;
  if (issue.code === 'invalid_value') return issue.values.some((x) => x === v);
  return false;
}

const NULL = /^(~|null|Null|NULL|)$/;
const BOOL = /^(true|True|TRUE|false|False|FALSE)$/;
const INT = /^[-+]?[0-9]+$/;
const FLOAT = /^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$/;

/** A plain YAML 1.2 (core schema) scalar that is not a string: null, a boolean or a number; undefined otherwise. */
export function yamlScalar(text: string): boolean | number | null | undefined {
  if (NULL.test(text)) return null;
  if (BOOL.test(text)) return /^t/i.test(text);
  if (INT.test(text) || FLOAT.test(text)) return Number(text);
  if (/^0o[0-7]+$/.test(text)) return parseInt(text.slice(2), 8);
  if (/^0x[0-9a-fA-F]+$/.test(text)) return parseInt(text.slice(2), 16);
  return undefined;
}

function valueAt(v: unknown, path: readonly PropertyKey[]): unknown {
  let cur = v;
  for (const k of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<PropertyKey, unknown>)[k];
  }
  return cur;
}

/** A copy of `v` with the value at `path` replaced (the substituted tree is never changed in place). */
function withValueAt(v: unknown, path: readonly PropertyKey[], value: unknown): unknown {
  if (path.length === 0) return value;
  const [k, ...rest] = path;
  const copy = (Array.isArray(v) ? [...v] : { ...(v as object) }) as Record<PropertyKey, unknown>;
  copy[k!] = withValueAt(copy[k!], rest, value);
  return copy;
}
