import { z } from 'zod';
import type { DataForm } from '../component/component.js';
import type { AnyFactory, Kind, Signal } from '../component/factory.js';
import type { FactoryRegistry } from '../component/registry.js';
import type { ConfigProblem } from '../confmap/problems.js';
import { endpoint } from '../confmap/schema.js';

/** `service`: which extensions run, the pipelines, the process's own telemetry. */

const pipelineSchema = z.strictObject({
  receivers: z.array(z.string()).min(1),
  processors: z.array(z.string()).default([]),
  exporters: z.array(z.string()).min(1),
});

export const serviceSchema = z.strictObject({
  extensions: z.array(z.string()).default([]),
  pipelines: z.record(z.string(), pipelineSchema),
  telemetry: z.strictObject({
    logs: z.strictObject({ level: z.enum(['debug', 'info', 'warn', 'error']).default('info') }).optional(),
    /** A listener for /metrics and /healthz of a process without the store's query API. */
    metrics: z.strictObject({ address: endpoint }).optional(),
  }).optional(),
});
export type ServiceConfig = z.output<typeof serviceSchema>;

/** The YAML section of each kind. */
export const SECTION: Record<Kind, 'receivers' | 'processors' | 'exporters' | 'extensions'> = {
  receiver: 'receivers', processor: 'processors', exporter: 'exporters', extension: 'extensions',
};

/** A component defined in the config, valid or not. */
export interface DefinedComponent {
  kind: Kind;
  id: string;
  type: string;
  /** Undefined when its type is unknown. */
  factory: AnyFactory | undefined;
  /** The validated config; undefined when it has problems (already reported). */
  config: unknown;
}

export interface PipelineConfig {
  /** `traces`, `logs/audit`, ... */
  id: string;
  signal: Signal;
  receivers: string[];
  processors: string[];
  exporters: string[];
}

const FORM_TEXT: Record<DataForm, string> = {
  spans: 'spans',
  audit_events: 'audit events',
  kafka_topics: 'Kafka topics',
  kafka_output: 'Kafka output',
};

/** Forms that one component takes over whole (a consumer group, a topic to produce to). */
const EXCLUSIVE: ReadonlySet<DataForm> = new Set(['kafka_topics', 'kafka_output']);

type Defined = (kind: Kind, id: string) => DefinedComponent | undefined;

/**
 * The pipelines, checked: every component they name is defined, receivers feed pipelines of their
 * signal, and each stage takes what the stage before it hands on (spans, audit events, Kafka
 * topics; see DataForm). Problems are added to `problems`; the pipelines whose components are all
 * defined are returned (for the rules between components, which look at what pipelines use).
 */
export function checkPipelines(service: ServiceConfig, defined: Defined, registry: FactoryRegistry, problems: ConfigProblem[]): PipelineConfig[] {
  const out: PipelineConfig[] = [];
  for (const [id, p] of Object.entries(service.pipelines)) {
    const at = `service.pipelines.${id}`;
    const signal = id.split('/')[0]!;
    if (signal !== 'traces' && signal !== 'logs') {
      problems.push({ path: at, message: `pipeline type must be traces or logs, got "${signal}"` });
      continue;
    }
    const before = problems.length;
    const lookup = (kind: Kind, list: string[]) =>
      list.map((ref, i) => {
        const c = defined(kind, ref);
        if (!c) problems.push({ path: `${at}.${SECTION[kind]}[${i}]`, message: `${kind} "${ref}" is not defined under ${SECTION[kind]}` });
        else if (c.factory && c.factory.kind === 'receiver' && c.factory.signal !== signal) {
          problems.push({ path: `${at}.${SECTION[kind]}[${i}]`, message: `receiver "${ref}" produces ${c.factory.signal}, not ${signal}` });
        } else if (c.factory && 'signals' in c.factory && !c.factory.signals.includes(signal)) {
          problems.push({ path: `${at}.${SECTION[kind]}[${i}]`, message: `${kind} "${ref}" does not handle ${signal} (only ${c.factory.signals.join(', ')})` });
        }
        return c;
      });
    const stages = [lookup('receiver', p.receivers), ...lookup('processor', p.processors).map((c) => [c]), lookup('exporter', p.exporters)];
    if (problems.length > before) continue;
    // The forms each stage hands on: a processor that emits `same` hands on what it was handed.
    let handed: DataForm[] = [];
    for (let i = 0; i + 1 < stages.length; i++) handed = checkHandOver(at, stages[i]! as DefinedComponent[], stages[i + 1]! as DefinedComponent[], handed, registry, problems);
    out.push({ id, signal, receivers: p.receivers, processors: p.processors, exporters: p.exporters });
  }
  return out;
}

/** Does the next stage take what each component of this one hands on? Returns the forms the next stage hands on when it passes them through. */
function checkHandOver(at: string, upstream: DefinedComponent[], downstream: DefinedComponent[], handedToUpstream: DataForm[], registry: FactoryRegistry, problems: ConfigProblem[]): DataForm[] {
  // Components of unknown type or with invalid configs were reported already.
  if (![...upstream, ...downstream].every((c) => c.factory && c.config !== undefined)) return [];
  const takers = downstream.filter((c) => !(c.factory!.kind === 'exporter' && c.factory!.fedByExtension));
  const forms = new Set<DataForm>();
  for (const u of upstream) {
    const f = u.factory!;
    if (f.kind !== 'receiver' && f.kind !== 'processor') continue;
    const from = `${SECTION[u.kind]}.${u.id}`;
    for (const form of f.emits === 'same' ? handedToUpstream : [f.emits]) {
      forms.add(form);
      const where = whoTakes(form, registry);
      if (takers.length === 0) {
        problems.push({ path: at, message: `nothing takes the ${FORM_TEXT[form]} of ${from}${where}` });
        continue;
      }
      for (const t of takers) {
        const tf = t.factory as { takes: readonly DataForm[] };
        if (!tf.takes.includes(form)) problems.push({ path: at, message: `${SECTION[t.kind]}.${t.id} does not take ${FORM_TEXT[form]} from ${from}${where}` });
      }
      if (EXCLUSIVE.has(form) && takers.length > 1) {
        problems.push({ path: at, message: `only one component can take the ${FORM_TEXT[form]} of ${from}, not ${takers.map((t) => `${SECTION[t.kind]}.${t.id}`).join(' and ')}` });
      }
    }
  }
  return [...forms];
}

/** " (what takes Kafka topics: the correlator processor, the store exporter)", from the registry. */
function whoTakes(form: DataForm, registry: FactoryRegistry): string {
  // Processors that hand on what they were handed (memory_limiter, k8saudit_redaction) are no answer: something must still take it after them.
  const names = registry.all()
    .filter((f) => (f.kind === 'processor' ? f.emits !== 'same' && f.takes.includes(form) : f.kind === 'exporter' && !f.fedByExtension && f.takes.includes(form)))
    .map((f) => `the ${f.type} ${f.kind}`);
  return names.length ? ` (what takes ${FORM_TEXT[form]}: ${names.join(', ')})` : '';
}
