import type { Server } from 'node:http';
import { resolve } from 'node:path';
import { queryApiHandler, StoreMaintenance, TraceStore } from '@kube-correlate/store';
import type { Logger, PipelineMetrics } from '@kube-correlate/telemetry';
import type { Component, Host } from '../../component/component.js';
import { closeHttp, serveHttp } from '../../internal/http.js';
import { ListenerSecurity } from '../../internal/security.js';
import { parseDuration, parseSize } from '../../confmap/schema.js';
import type { StoreExtensionConfig } from './config.js';

export interface StoreExtensionOptions {
  id: string;
  config: StoreExtensionConfig;
  metrics: PipelineMetrics;
  logger: Logger;
}

/** What the export queue's reader (the otlp exporter) registers before the store opens. */
export interface ExportQueueReader {
  /** When an object set's queue entry comes due (see @kube-correlate/store export-plan.ts). */
  objectSetDebounce?: { settleAfterMs: number; maxDelayMs: number };
  /** Length of an object set's trace window (one trace per set per window). */
  objectSetWindowMs?: number;
  /** A write queued something. */
  onQueued(): void;
}

/**
 * The embedded store (SQLite) and its query API. Components reach it through the host: the
 * correlator exporter and the store exporter write into it, the otlp exporter drains its export
 * queue, which it asks for (`useExportQueue`) when it is created, before the store opens. As an
 * extension it starts before, and stops after, every component that uses it.
 */
export class StoreExtension implements Component {
  private exportQueue: ExportQueueReader | undefined;
  private traceStore: TraceStore | undefined;
  private queryServer: Server | undefined;
  private maintenanceRunner: StoreMaintenance | undefined;
  private readonly security: ListenerSecurity;

  constructor(private readonly opts: StoreExtensionOptions) {
    this.security = new ListenerSecurity({ path: `extensions.${opts.id}`, settings: opts.config, metrics: opts.metrics, logger: opts.logger.child({ component: 'query' }) });
  }

  /** Keep an export queue in the store, filled in the same transaction as the data. Before `start`. */
  useExportQueue(reader: ExportQueueReader): void {
    if (this.traceStore) throw new Error(`extensions.${this.opts.id}: the export queue must be asked for before the store opens`);
    this.exportQueue = reader;
  }

  /** The open store (from `start` to `shutdown`). */
  get store(): TraceStore {
    if (!this.traceStore) throw new Error(`extensions.${this.opts.id}: the store is not open`);
    return this.traceStore;
  }

  get isOpen(): boolean {
    return this.traceStore !== undefined;
  }

  async start(host: Host): Promise<void> {
    const { config, metrics, logger } = this.opts;
    const q = this.exportQueue;
    const maxSize = parseSize(config.max_size);
    this.traceStore = new TraceStore({
      dir: resolve(config.directory), metrics, exportQueue: !!q, onExportQueued: () => q?.onQueued(),
      ...(q?.objectSetDebounce ? { objectSetDebounce: q.objectSetDebounce } : {}),
      ...(q?.objectSetWindowMs ? { objectSetWindowMs: q.objectSetWindowMs } : {}),
      synchronous: config.sync,
      ...(maxSize > 0 ? { maxSizeBytes: maxSize } : {}),
      // Commits on this process's one event loop never wait for a checkpoint's copy and syncs.
      checkpointInBackground: true,
      onCheckpointError: (message, code) => logger.warn({ err: message, code }, 'WAL checkpoint failed; the WAL keeps the data and the next checkpoint tries again'),
    });
    logger.info({ path: this.traceStore.path, retention: config.retention, maxSize: config.max_size }, 'embedded store opened');
    this.maintenanceRunner = new StoreMaintenance({
      store: this.traceStore, metrics, logger: logger.child({ component: 'store' }),
      maxAgeMs: parseDuration(config.retention), ...(maxSize > 0 ? { maxSizeBytes: maxSize } : {}),
    });
    this.maintenanceRunner.start();
    const security = this.security;
    const handler = queryApiHandler({
      store: this.traceStore, metrics, logger: logger.child({ component: 'query' }),
      ...(security.authenticates ? {
        authorize: (req) => {
          const denied = security.check(req.headers.authorization);
          return denied ? { message: denied.error.message, headers: { 'www-authenticate': denied.challenge } } : undefined;
        },
      } : {}),
      receivers: () => {
        const a = host.addresses();
        return { otlpGrpc: a['otlpGrpc'], otlpHttp: a['otlpHttp'], auditWebhook: a['auditWebhook'] };
      },
    });
    const { server, address } = await serveHttp({ endpoint: config.endpoint, handler, what: 'query API', security, host });
    this.queryServer = server;
    host.reportAddress('query', address);
    logger.info({ endpoint: address, tls: !!security.tls, auth: security.authenticates }, 'query API and /metrics listening');
  }

  /** Retention (started with the store): a full store asks it to run at once. */
  get maintenance(): StoreMaintenance | undefined {
    return this.maintenanceRunner;
  }

  async shutdown(): Promise<void> {
    this.security.stop();
    if (this.queryServer) await closeHttp(this.queryServer, 1000);
    this.maintenanceRunner?.stop();
    // Once this resolves nothing has the store's files open (the checkpoint thread's connection included).
    await this.traceStore?.shutdown();
  }
}

/** The store extension a component needs (its presence is checked at load: `requireStoreExtension`). */
export function storeExtensionOf(host: Host): StoreExtension {
  const ext = host.getExtension('store');
  if (!(ext instanceof StoreExtension)) throw new Error('no store extension is enabled (service.extensions)');
  return ext;
}
