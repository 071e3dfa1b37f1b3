import type { Logger, PipelineMetrics } from '@kube-correlate/telemetry';
import type { z } from 'zod';
import type { ConfigProblem } from '../confmap/problems.js';
import type { Component, DataForm, Downstream, Host } from './component.js';

/**
 * A component type, as the OpenTelemetry Collector has them: its `type` (the YAML key before the
 * `/`), its config schema (the one home of its defaults and of the checks on one component), and
 * `create`, which builds the implementation from a validated config. The pipeline looks factories up
 * in a registry (registry.ts): adding a component is adding a folder and registering its factory.
 */

export type Kind = 'receiver' | 'processor' | 'exporter' | 'extension';
/** Pipeline types: `service.pipelines.traces[/name]`, `service.pipelines.logs[/name]`. */
export type Signal = 'traces' | 'logs';

/** Given to `create`. */
export interface CreateSettings {
  /** `type[/name]`, as in the config: names the component in metrics and logs. */
  id: string;
  /** The config file, for messages. */
  source: string;
  metrics: PipelineMetrics;
  /** The process's logger; a component logs through a child that names it (`{ component: 'receiver' }`). */
  logger: Logger;
  /** Extensions are created first: a component may register with one here (before anything starts) and use it from `start`. */
  host: Host;
}

/** A component as the service uses it, for rules that span components (`checkService`). */
export interface ComponentUse {
  kind: Kind;
  /** `type[/name]`. */
  id: string;
  type: string;
  config: unknown;
  /** Pipelines that list it (extensions: listed in service.extensions or not). */
  pipelines: string[];
}

/** The service as `checkService` sees it: valid components only. */
export interface ServiceView {
  /** Every valid component of this kind defined in the config. */
  defined(kind: Kind): ComponentUse[];
  /** Those a pipeline lists; extensions: those `service.extensions` lists. */
  used(kind: Kind): ComponentUse[];
}

interface FactoryBase<K extends Kind, T extends string, C> {
  readonly kind: K;
  readonly type: T;
  /** Typed config with defaults; its messages name the key. */
  readonly config: z.ZodType<C>;
  /**
   * Rules that involve other components (an extension it needs, at most one of it, ...), checked at
   * load with every other problem. Paths are from the config's root, e.g. `exporters.correlator`.
   */
  checkService?(self: ComponentUse, service: ServiceView): ConfigProblem[];
}

export interface ReceiverFactory<T extends string = string, C = unknown> extends FactoryBase<'receiver', T, C> {
  /** The pipeline type it feeds. */
  readonly signal: Signal;
  /** What it hands downstream. */
  readonly emits: DataForm;
  create(settings: CreateSettings, config: C, next: Downstream): Component;
}

export interface ProcessorFactory<T extends string = string, C = unknown> extends FactoryBase<'processor', T, C> {
  readonly signals: readonly Signal[];
  readonly takes: readonly DataForm[];
  /** What it hands on; `same`: what it was handed (memory_limiter, redaction). */
  readonly emits: DataForm | 'same';
  /** One instance per pipeline that lists it, as in the OpenTelemetry Collector. */
  create(settings: CreateSettings, config: C, next: Downstream): Component;
}

export interface ExporterFactory<T extends string = string, C = unknown> extends FactoryBase<'exporter', T, C> {
  readonly signals: readonly Signal[];
  readonly takes: readonly DataForm[];
  /**
   * Fed by an extension (the store's export queue), not by its pipelines: listed in pipelines so
   * users see where data goes, handed nothing by them. Such exporters start before, and stop
   * after, the exporters that write into the extension, so they drain what those wrote.
   */
  readonly fedByExtension?: boolean;
  create(settings: CreateSettings, config: C): Component;
}

export interface ExtensionFactory<T extends string = string, C = unknown> extends FactoryBase<'extension', T, C> {
  create(settings: CreateSettings, config: C): Component;
}

// `any` config: a registry holds factories of every config type; each checks its own with `config`.
/* eslint-disable @typescript-eslint/no-explicit-any */
export type AnyFactory = ReceiverFactory<string, any> | ProcessorFactory<string, any> | ExporterFactory<string, any> | ExtensionFactory<string, any>;
/* eslint-enable @typescript-eslint/no-explicit-any */

/** The config type of a factory. */
export type ConfigOf<F> = F extends { config: z.ZodType<infer C> } ? C : never;

/** Identity functions that keep a factory's literal `type` (for the config types) and check its shape. */
export const receiverFactory = <T extends string, C>(f: ReceiverFactory<T, C>): ReceiverFactory<T, C> => f;
export const processorFactory = <T extends string, C>(f: ProcessorFactory<T, C>): ProcessorFactory<T, C> => f;
export const exporterFactory = <T extends string, C>(f: ExporterFactory<T, C>): ExporterFactory<T, C> => f;
export const extensionFactory = <T extends string, C>(f: ExtensionFactory<T, C>): ExtensionFactory<T, C> => f;
