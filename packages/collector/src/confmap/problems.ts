import type { z } from 'zod';

/** One thing wrong with a config: the key path (`receivers.otlp.protocols.grpc.endpoint`) and what is wrong. */
export interface ConfigProblem {
  /** Dotted key path from the root, `[i]` for list items; '' for the file as a whole. */
  path: string;
  message: string;
}

/**
 * Everything wrong with one config file, found at once. Its message has a line per problem, each
 * naming the file and the key: `my.yaml: receivers.otlp.protocols.grpc.endpiont: unknown key`.
 */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';

  constructor(
    readonly source: string,
    readonly problems: readonly ConfigProblem[],
  ) {
    super(problems.map((p) => `${source}: ${p.path ? `${p.path}: ` : ''}${p.message}`).join('\n'));
  }
}

/** A key path as messages print it: `a.b[0].c`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const k of path) out += typeof k === 'number' ? `[${k}]` : out ? `.${String(k)}` : String(k);
  return out;
}

/** Joins a prefix path and a relative one. */
export function joinPath(prefix: string, rest: string): string {
  if (!prefix) return rest;
  if (!rest) return prefix;
  return rest.startsWith('[') ? prefix + rest : `${prefix}.${rest}`;
}

/** A zod issue as a problem under `prefix`: unknown keys of one object are named together. */
export function problemOf(issue: z.core.$ZodIssue, prefix: string): ConfigProblem {
  const path = joinPath(prefix, formatPath(issue.path));
  if (issue.code === 'unrecognized_keys') {
    const keys = issue.keys;
    return { path: keys.map((k) => joinPath(path, k)).join(', '), message: `unknown key${keys.length > 1 ? 's' : ''}` };
  }
  return { path: path || '(top level)', message: issue.message };
}
