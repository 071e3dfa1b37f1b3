import { readFileSync } from 'node:fs';
import { parseDocument } from 'yaml';
import { z } from 'zod';
import type { AnyFactory, ComponentUse, Kind, ServiceView } from '../component/factory.js';
import type { FactoryRegistry } from '../component/registry.js';
import { builtinRegistry } from '../components.js';
import type { CollectorConfig } from './config.js';
import { substituteEnvTree } from '../confmap/env.js';
import { ConfigError, type ConfigProblem } from '../confmap/problems.js';
import { checkPipelines, type DefinedComponent, SECTION, serviceSchema } from './graph.js';
import { validate } from '../confmap/validate.js';
import { K8SAUDIT_REDACTION } from '../processors/k8saudit_redaction/factory.js';

/**
 * Loads a collector config in the OpenTelemetry Collector's schema: `receivers`, `processors`,
 * `exporters`, `extensions`, `service.pipelines`, components named `type[/name]`. In this order:
 *  1. parse the YAML;
 *  2. substitute `${env:NAME}` / `${env:NAME:-default}` in string values (env.ts);
 *  2b. add the processors that are always on: `k8saudit_redaction` first (after a leading
 *     `memory_limiter`) in every `logs` pipeline that does not list it (secrets never reach an
 *     exporter; defining it only changes its rules);
 *  3. validate everything: the top level, every component with its factory's schema, the
 *     service's extensions and pipelines, then the rules between components (`checkService`).
 * Every problem found is reported at once in one ConfigError, each naming the file and the key.
 */

export interface LoadOptions {
  /** The component factories to validate with. Default: the built-in ones. */
  registry?: FactoryRegistry;
}

export function loadConfigFile(path: string, env: NodeJS.ProcessEnv = process.env, opts: LoadOptions = {}): CollectorConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(path, [{ path: '', message: `cannot read config: ${(err as Error).message}` }]);
  }
  return parseConfig(text, path, env, opts);
}

const section = z.record(z.string(), z.unknown());
const rootSchema = z.strictObject({
  receivers: section.default({}),
  processors: section.nullable().default({}),
  exporters: section.default({}),
  extensions: section.nullable().default({}),
  /** Checked on its own (serviceSchema), so its problems come with the rest. */
  service: z.unknown(),
});

export function parseConfig(text: string, source: string, env: NodeJS.ProcessEnv = process.env, opts: LoadOptions = {}): CollectorConfig {
  const registry = opts.registry ?? builtinRegistry();
  const doc = parseDocument(text);
  if (doc.errors.length) throw new ConfigError(source, doc.errors.map((e) => ({ path: '', message: `invalid YAML: ${e.message.split('\n')[0]}` })));
  const { value, wholeReferences, problems } = substituteEnvTree(doc.toJS() ?? {}, env);
  const inserted = registry.get('processor', K8SAUDIT_REDACTION) ? alwaysRedact(value) : new Map<string, number>();
  const unset = new Set(problems.map((p) => p.path));
  const check: Check = (schema, v, at) => {
    const r = validate(schema, v, at, wholeReferences);
    // A key whose variable is unset was reported as that; what its empty value fails is noise.
    problems.push(...r.problems.filter((p) => !unset.has(p.path)));
    return r.data;
  };

  check(rootSchema, value, '');
  // Sections are checked even when the top level has problems (an unknown key beside them).
  const raw = (value !== null && typeof value === 'object' && !Array.isArray(value) ? value : {}) as Record<string, unknown>;
  // An unknown key beside the pipelines must not hide the pipelines' own problems.
  const service = check(serviceSchema, raw['service'], 'service') ?? validate(z.object(serviceSchema.shape), raw['service'], 'service', wholeReferences).data;
  const defined = defineComponents(raw, registry, check, problems);
  if (!service) throw new ConfigError(source, problems);
  const find = (kind: Kind, id: string) => defined.get(`${kind} ${id}`);

  for (const [i, id] of service.extensions.entries()) {
    if (!find('extension', id)) problems.push({ path: `service.extensions[${i}]`, message: `extension "${id}" is not defined under extensions` });
  }
  const pipelines = checkPipelines(service, find, registry, problems);

  // Rules between components, over the valid ones.
  const valid = [...defined.values()].filter((c) => c.factory && c.config !== undefined);
  const uses = valid.map((c): ComponentUse & { factory: AnyFactory } => ({
    kind: c.kind, id: c.id, type: c.type, config: c.config, factory: c.factory!,
    pipelines: c.kind === 'extension' ? [] : pipelines.filter((p) => p[SECTION[c.kind] as 'receivers' | 'processors' | 'exporters'].includes(c.id)).map((p) => p.id),
  }));
  const isUsed = (c: ComponentUse) => (c.kind === 'extension' ? service.extensions.includes(c.id) : c.pipelines.length > 0);
  const view: ServiceView = {
    defined: (kind) => uses.filter((c) => c.kind === kind),
    used: (kind) => uses.filter((c) => c.kind === kind && isUsed(c)),
  };
  for (const c of uses) problems.push(...(c.factory.checkService?.(c, view) ?? []));
  if (problems.length) throw new ConfigError(source, problems.map((p) => asWritten(p, inserted)));

  const entry = (c: ComponentUse) => ({ type: c.type, name: c.id, config: c.config });
  const exportersOf = (receiver: string) => [...new Set(pipelines.filter((p) => p.receivers.includes(receiver)).flatMap((p) => p.exporters))];
  const config = {
    source,
    receivers: view.used('receiver').map((c) => ({ ...entry(c), exporters: exportersOf(c.id) })),
    processors: view.used('processor').map(entry),
    exporters: view.used('exporter').map(entry),
    extensions: service.extensions.map((id) => entry(uses.find((c) => c.kind === 'extension' && c.id === id)!)),
    pipelines,
    logLevel: service.telemetry?.logs?.level ?? 'info',
    ...(service.telemetry?.metrics ? { metricsAddress: service.telemetry.metrics.address } : {}),
  };
  return config as CollectorConfig;
}

/**
 * Puts k8saudit_redaction first in each `logs` pipeline that does not list it (after a leading
 * memory_limiter), and defines it (defaults) when the config does not. Every `logs` pipeline carries
 * audit events (its receivers are k8saudit or auditlog), so nothing reaches an exporter unredacted.
 */
function alwaysRedact(value: unknown): Map<string, number> {
  const inserted = new Map<string, number>();
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return inserted;
  const root = value as Record<string, unknown>;
  const pipelines = (root['service'] as { pipelines?: unknown } | undefined)?.pipelines;
  if (pipelines === null || typeof pipelines !== 'object') return inserted;
  let used = false;
  for (const [id, p] of Object.entries(pipelines as Record<string, unknown>)) {
    if (id.split('/')[0] !== 'logs' || p === null || typeof p !== 'object') continue;
    const pipe = p as { processors?: unknown };
    const list = Array.isArray(pipe.processors) ? pipe.processors : pipe.processors === undefined || pipe.processors === null ? [] : undefined;
    if (!list) continue; // not a list: validation says so
    const typeOf = (x: unknown) => (typeof x === 'string' ? x.split('/')[0] : undefined);
    if (!list.some((x) => typeOf(x) === K8SAUDIT_REDACTION)) {
      // After a leading memory_limiter (refusing costs less than redacting), before everything else.
      let at = 0;
      while (at < list.length && typeOf(list[at]) === 'memory_limiter') at++;
      pipe.processors = [...list.slice(0, at), K8SAUDIT_REDACTION, ...list.slice(at)];
      inserted.set(id, at);
    }
    used = true;
  }
  if (!used) return inserted;
  const processors = root['processors'];
  if (processors === undefined || processors === null) root['processors'] = { [K8SAUDIT_REDACTION]: null };
  else if (typeof processors === 'object' && !Array.isArray(processors) && !(K8SAUDIT_REDACTION in processors)) (processors as Record<string, unknown>)[K8SAUDIT_REDACTION] = null;
  return inserted;
}

/** A problem's path as the user wrote the config: a pipeline's processors[i] after the inserted k8saudit_redaction is [i - 1]. */
function asWritten(p: ConfigProblem, inserted: ReadonlyMap<string, number>): ConfigProblem {
  for (const [id, at] of inserted) {
    const prefix = `service.pipelines.${id}.processors[`;
    if (!p.path.startsWith(prefix)) continue;
    const m = /^(\d+)\]/.exec(p.path.slice(prefix.length));
    if (!m || Number(m[1]) <= at) continue;
    return { ...p, path: `${prefix}${Number(m[1]) - 1}${p.path.slice(prefix.length + m[1]!.length)}` };
  }
  return p;
}

type Check = <T>(schema: z.ZodType<T>, value: unknown, at: string) => T | undefined;

/**
 * Every component of every section, valid or not (so that a pipeline naming one with problems
 * gets no second complaint), each checked with its factory's schema.
 */
function defineComponents(raw: Record<string, unknown>, registry: FactoryRegistry, check: Check, problems: ConfigProblem[]): Map<string, DefinedComponent> {
  const defined = new Map<string, DefinedComponent>();
  for (const kind of ['receiver', 'processor', 'exporter', 'extension'] as const) {
    const entries = raw[SECTION[kind]];
    if (entries === null || typeof entries !== 'object' || Array.isArray(entries)) continue;
    for (const [id, v] of Object.entries(entries)) {
      const type = id.split('/')[0]!;
      const factory = registry.get(kind, type);
      const at = `${SECTION[kind]}.${id}`;
      if (!factory) problems.push({ path: at, message: `unknown ${kind} type "${type}" (known: ${registry.types(kind).join(', ')})` });
      defined.set(`${kind} ${id}`, { kind, id, type, factory, config: factory ? check(factory.config, v ?? {}, at) : undefined });
    }
  }
  return defined;
}
