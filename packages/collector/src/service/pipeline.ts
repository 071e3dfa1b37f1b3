import type { TraceStore } from '@kube-correlate/store';
import { createLogger, PipelineMetrics, type Logger } from '@kube-correlate/telemetry';
import { downstreamOf, type Component, type Host } from '../component/component.js';
import type { CreateSettings, Kind } from '../component/factory.js';
import { Lifecycle, type LifecycleStage } from '../component/lifecycle.js';
import type { FactoryRegistry } from '../component/registry.js';
import { builtinRegistry } from '../components.js';
import type { CollectorConfig } from './config.js';
import { StoreExtension } from '../extensions/store/extension.js';
import { TelemetryServer } from './telemetry.js';

export interface PipelineOptions {
  config: CollectorConfig;
  logger?: Logger;
  metrics?: PipelineMetrics;
  /** The factories to build components with; the config must have been loaded with the same. Default: the built-in ones. */
  registry?: FactoryRegistry;
}

/** Bound addresses, once started (ports chosen by the OS when the config says :0). */
export interface PipelineAddresses {
  otlpGrpc?: string;
  otlpHttp?: string;
  auditWebhook?: string;
  query?: string;
  metrics?: string;
}

/**
 * The pipelines of one process, built from a collector config by looking each component's factory
 * up in the registry: extensions first, then exporters, then each pipeline's processors (one
 * instance per pipeline, last first, each handed the stage after it), then receivers, each handed
 * the first stage of every pipeline that lists it.
 *
 * Starts downstream first: telemetry, extensions, exporters fed by extensions (otlp), the other
 * exporters, processors, receivers. Shuts down upstream first, in the reverse order: receivers stop
 * taking data (in-flight requests finish), the correlator settles what it holds into the store, the
 * otlp exporter drains the store's queue, then the store closes. Safe twice.
 */
export class Pipeline {
  readonly metrics: PipelineMetrics;
  readonly logger: Logger;
  readonly addresses: PipelineAddresses = {};
  private readonly extensions = new Map<string, { type: string; component: Component }>();
  private lifecycle: Lifecycle | undefined;
  private starting: Promise<void> | undefined;
  private stopping: Promise<void> | undefined;

  constructor(private readonly opts: PipelineOptions) {
    this.metrics = opts.metrics ?? new PipelineMetrics(undefined, { defaultMetrics: true });
    this.logger = opts.logger ?? createLogger({ name: 'pipeline', level: opts.config.logLevel });
  }

  /** The embedded store, while a store extension has it open. */
  get store(): TraceStore | undefined {
    const ext = [...this.extensions.values()].find((e) => e.component instanceof StoreExtension)?.component as StoreExtension | undefined;
    return ext?.isOpen ? ext.store : undefined;
  }

  start(): Promise<void> {
    this.starting ??= (async () => {
      const stages: LifecycleStage[] = [];
      try {
        this.build(stages);
      } catch (err) {
        await new Lifecycle(stages, this.logger).shutdown();
        throw err;
      }
      this.lifecycle = new Lifecycle(stages, this.logger);
      await this.lifecycle.start(this.host());
    })();
    return this.starting;
  }

  /** Stops receivers, settles and stores everything in flight, closes the store. Safe twice. */
  shutdown(): Promise<void> {
    this.stopping ??= (async () => {
      await this.starting?.catch(() => undefined);
      await this.lifecycle?.shutdown();
      this.logger.info('pipeline stopped');
    })();
    return this.stopping;
  }

  private host(): Host {
    return {
      getExtension: (idOrType) => {
        const exact = this.extensions.get(idOrType);
        if (exact) return exact.component;
        const ofType = [...this.extensions.values()].filter((e) => e.type === idOrType);
        return ofType.length === 1 ? ofType[0]!.component : undefined;
      },
      reportAddress: (name, address) => {
        const addresses = this.addresses as Record<string, string | undefined>;
        addresses[name] ??= address;
      },
      addresses: () => ({ ...(this.addresses as Record<string, string>) }),
    };
  }

  /** Creates every component into `stages`, in start order (so a failure part-way can shut down what was made). */
  private build(stages: LifecycleStage[]): void {
    const { metrics, logger } = this;
    const { config } = this.opts;
    const registry = this.opts.registry ?? builtinRegistry();
    const host = this.host();
    const settings = (id: string): CreateSettings => ({ id, source: config.source, metrics, logger, host });
    const factory = <K extends Kind>(kind: K, type: string) => {
      const f = registry.get(kind, type);
      if (!f) throw new Error(`${config.source}: no ${kind} factory of type "${type}" is registered`);
      return f;
    };
    const stage = (name: string): LifecycleStage['components'] => {
      const s = { name, components: [] };
      stages.push(s);
      return s.components;
    };

    if (config.metricsAddress) stage('telemetry').push({ id: 'metrics', component: new TelemetryServer(config.metricsAddress, metrics, logger) });

    const extensions = stage('extensions');
    for (const e of config.extensions) {
      const component = factory('extension', e.type).create(settings(e.name), e.config);
      this.extensions.set(e.name, { type: e.type, component });
      extensions.push({ id: e.name, component });
    }

    const fedByExtensions = stage('exporters fed by extensions');
    const fedByPipelines = stage('exporters');
    const exporters = new Map<string, Component>();
    for (const e of config.exporters) {
      const f = factory('exporter', e.type);
      const component = f.create(settings(e.name), e.config);
      exporters.set(e.name, component);
      (f.fedByExtension ? fedByExtensions : fedByPipelines).push({ id: e.name, component });
    }

    // Each pipeline's first stage: its first processor, or its exporters.
    const processors = stage('processors');
    const firstStage = new Map<string, Component[]>();
    for (const p of config.pipelines) {
      let next = p.exporters.map((id) => exporters.get(id)!);
      for (const id of [...p.processors].reverse()) {
        const pc = config.processors.find((x) => x.name === id)!;
        const component = factory('processor', pc.type).create(settings(id), pc.config, downstreamOf(next));
        processors.push({ id: `${id} (${p.id})`, component });
        next = [component];
      }
      firstStage.set(p.id, next);
    }

    const receivers = stage('receivers');
    for (const r of config.receivers) {
      const next = config.pipelines.filter((p) => p.receivers.includes(r.name)).flatMap((p) => firstStage.get(p.id)!);
      receivers.push({ id: r.name, component: factory('receiver', r.type).create(settings(r.name), r.config, downstreamOf(next)) });
    }
  }
}
