import { ConfigError, type ConfigProblem, joinPath } from './problems.js';

/**
 * `${env:NAME}` and `${env:NAME:-default}`, as the OpenTelemetry Collector writes them, replaced
 * in the string values of the parsed YAML (never in keys, never in the text before parsing): a
 * value can only ever become another string, so an environment variable holding `": {"` or a
 * newline cannot add keys or change the file's structure. A value that is a whole reference is
 * remembered (`wholeReferences`): where the schema wants a boolean or a number, validation reads its
 * text as YAML reads a plain scalar (validate.ts); it never becomes a map or a list.
 */

const REFERENCE = /\$\{env:([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;
const WHOLE_REFERENCE = /^\$\{env:[A-Za-z_][A-Za-z0-9_]*(?::-[^}]*)?\}$/;

function unsetMessage(name: string): string {
  return `environment variable ${name} is not set (referenced as \${env:${name}})`;
}

/** One string with its references replaced; an unset variable without default is an error. */
export function substituteEnv(text: string, env: NodeJS.ProcessEnv, source: string): string {
  const problems: string[] = [];
  const out = replace(text, env, problems);
  if (problems.length) throw new ConfigError(source, problems.map((message) => ({ path: '', message })));
  return out;
}

function replace(text: string, env: NodeJS.ProcessEnv, unset: string[]): string {
  return text.replace(REFERENCE, (_m, name: string, def: string | undefined) => {
    const v = env[name];
    if (v !== undefined && v !== '') return v;
    if (def !== undefined) return def;
    unset.push(unsetMessage(name));
    return '';
  });
}

export interface Substituted {
  value: unknown;
  /** Key paths of values that were one whole `${env:...}` reference. */
  wholeReferences: Set<string>;
  problems: ConfigProblem[];
}

/** Replaces references in every string value of a parsed YAML document. */
export function substituteEnvTree(doc: unknown, env: NodeJS.ProcessEnv): Substituted {
  const wholeReferences = new Set<string>();
  const problems: ConfigProblem[] = [];
  const walk = (v: unknown, path: string): unknown => {
    if (typeof v === 'string') {
      if (!v.includes('${env:')) return v;
      const unset: string[] = [];
      const out = replace(v, env, unset);
      for (const message of unset) problems.push({ path, message });
      if (WHOLE_REFERENCE.test(v)) wholeReferences.add(path);
      return out;
    }
    if (Array.isArray(v)) return v.map((x, i) => walk(x, `${path}[${i}]`));
    if (v !== null && typeof v === 'object') {
      return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x, joinPath(path, k))]));
    }
    return v;
  };
  return { value: walk(doc, ''), wholeReferences, problems };
}
