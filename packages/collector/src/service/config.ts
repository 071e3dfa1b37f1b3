import type { z } from 'zod';
import type { BUILTIN_FACTORIES } from '../components.js';
import type { PipelineConfig } from './graph.js';

/** A loaded, validated collector config (load.ts). */

type Builtin = (typeof BUILTIN_FACTORIES)[number];
/** One component of the config: `type`, `name` (the whole key, `type[/name]`), its validated config. */
type EntryOf<F> = F extends { type: infer T; config: z.ZodType<infer C> } ? { type: T; name: string; config: C } : never;

export type ReceiverConfig = EntryOf<Extract<Builtin, { kind: 'receiver' }>> & {
  /** The exporters of the pipelines that list this receiver. */
  exporters: string[];
};
export type ProcessorConfig = EntryOf<Extract<Builtin, { kind: 'processor' }>>;
export type ExporterConfig = EntryOf<Extract<Builtin, { kind: 'exporter' }>>;
export type ExtensionConfig = EntryOf<Extract<Builtin, { kind: 'extension' }>>;

export interface CollectorConfig {
  /** The file it came from, for messages. */
  source: string;
  /** Receivers a pipeline lists, in the file's order. */
  receivers: ReceiverConfig[];
  /** Processors a pipeline lists. */
  processors: ProcessorConfig[];
  /** Exporters a pipeline lists. */
  exporters: ExporterConfig[];
  /** Extensions `service.extensions` lists, in its order. */
  extensions: ExtensionConfig[];
  pipelines: PipelineConfig[];
  logLevel: 'debug' | 'info' | 'warn' | 'error';
  /** service.telemetry.metrics.address */
  metricsAddress?: string;
}

type Section = 'receivers' | 'processors' | 'exporters' | 'extensions';
type EntryIn<S extends Section> = CollectorConfig[S][number];

/** The first component of a type in a section, typed by it: `findComponent(config, 'exporters', 'correlator')?.config.settle_after`. */
export function findComponent<S extends Section, T extends EntryIn<S>['type']>(config: CollectorConfig, section: S, type: T): Extract<EntryIn<S>, { type: T }> | undefined {
  return (config[section] as Array<EntryIn<S>>).find((c) => c.type === type) as Extract<EntryIn<S>, { type: T }> | undefined;
}

/**
 * A copy of the config with the config of every component of a type in a section changed, e.g. a
 * command-line override. Returns undefined when there is no such component.
 */
export function withComponentConfig<S extends Section, T extends EntryIn<S>['type']>(
  config: CollectorConfig,
  section: S,
  type: T,
  change: (c: Extract<EntryIn<S>, { type: T }>['config']) => Extract<EntryIn<S>, { type: T }>['config'],
): CollectorConfig | undefined {
  const list = config[section] as Array<EntryIn<S>>;
  if (!list.some((c) => c.type === type)) return undefined;
  return { ...config, [section]: list.map((c) => (c.type === type ? { ...c, config: change(c.config as Extract<EntryIn<S>, { type: T }>['config']) } : c)) };
}
