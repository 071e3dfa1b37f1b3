import type { Server } from 'node:http';
import { resolve } from 'node:path';
import { Correlator } from '@kube-correlate/correlator';
import { createQueryApi, TraceStore } from '@kube-correlate/store';
import { createLogger, PipelineMetrics, type Logger } from '@kube-correlate/telemetry';
import { parseDuration, type CollectorConfig } from './config.js';
import type { AuditConsumer, Component, SpanConsumer } from './consumer.js';
import { closeHttp, listenHttp } from './listen.js';
import { AuditLogReceiver } from './receivers/auditlog.js';
import { K8sAuditReceiver } from './receivers/k8saudit.js';
import { OtlpGrpcReceiver } from './receivers/otlp-grpc.js';
import { OtlpHttpReceiver } from './receivers/otlp-http.js';

export interface PipelineOptions {
  config: CollectorConfig;
  logger?: Logger;
  metrics?: PipelineMetrics;
}

/** Bound addresses, once started (ports chosen by the OS when the config says :0). */
export interface PipelineAddresses {
  otlpGrpc?: string;
  otlpHttp?: string;
  auditWebhook?: string;
  query?: string;
}

/**
 * The pipeline of one process, built from a collector config: receivers -> correlator -> embedded
 * store, and the query API. Starts downstream first and shuts down upstream first, so what the
 * receivers accepted drains into the store before the process exits.
 */
export class Pipeline {
  readonly metrics: PipelineMetrics;
  readonly logger: Logger;
  readonly addresses: PipelineAddresses = {};
  store: TraceStore | undefined;
  correlator: Correlator | undefined;
  private receivers: Component[] = [];
  private queryServer: Server | undefined;
  private started = false;
  private stopping: Promise<void> | undefined;

  constructor(private readonly opts: PipelineOptions) {
    this.metrics = opts.metrics ?? new PipelineMetrics(undefined, { defaultMetrics: true });
    this.logger = opts.logger ?? createLogger({ name: 'pipeline', level: opts.config.logLevel });
  }

  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    const { config } = this.opts;
    const { metrics, logger } = this;
    try {
      if (config.store) {
        const dir = resolve(config.store.directory);
        this.store = new TraceStore({ dir, metrics });
        logger.info({ path: this.store.path }, 'embedded store opened');
      }
      if (config.correlator) {
        const c = config.correlator;
        this.correlator = new Correlator({
          sink: this.store!,
          settleAfterMs: parseDuration(c.settle_after),
          pendingAuditTtlMs: parseDuration(c.pending_audit_ttl),
          maxTracesInFlight: c.max_traces_in_flight,
          maxSpansPerTrace: c.max_spans_per_trace,
          maxSpansInFlight: c.max_spans_in_flight,
          maxPendingAudits: c.max_pending_audits,
          metrics,
          logger: logger.child({ component: 'correlator' }),
        });
        this.correlator.start();
      }
      if (this.store && config.store) {
        this.queryServer = createQueryApi({ store: this.store, metrics, logger: logger.child({ component: 'query' }) });
        this.addresses.query = await listenHttp(this.queryServer, config.store.endpoint, 'query API');
        logger.info({ endpoint: this.addresses.query }, 'query API and /metrics listening');
      }
      const correlator = this.correlator;
      if (config.receivers.length && !correlator) throw new Error(`${config.source}: receivers are configured but no correlator exporter receives their data`);
      const spans: SpanConsumer = { consumeSpans: (s) => correlator!.addSpans(s) };
      const audit: AuditConsumer = { consumeAuditEvents: (e) => correlator!.addAuditEvents(e) };
      for (const r of config.receivers) {
        const common = { name: r.name, metrics, logger: logger.child({ component: 'receiver' }) };
        if (r.type === 'otlp') {
          if (r.config.protocols.grpc) {
            const g = new OtlpGrpcReceiver({ ...common, endpoint: r.config.protocols.grpc.endpoint, maxRecvMsgSizeMiB: r.config.protocols.grpc.max_recv_msg_size_mib, consumer: spans });
            await this.startReceiver(g);
            this.addresses.otlpGrpc ??= g.address;
          }
          if (r.config.protocols.http) {
            const h = new OtlpHttpReceiver({ ...common, endpoint: r.config.protocols.http.endpoint, maxRequestBodySize: r.config.protocols.http.max_request_body_size, consumer: spans });
            await this.startReceiver(h);
            this.addresses.otlpHttp ??= h.address;
          }
        } else if (r.type === 'k8saudit') {
          const k = new K8sAuditReceiver({ ...common, endpoint: r.config.endpoint, maxRequestBodySize: r.config.max_request_body_size, consumer: audit });
          await this.startReceiver(k);
          this.addresses.auditWebhook ??= k.address;
        } else {
          await this.startReceiver(new AuditLogReceiver({
            ...common, include: r.config.include, startAt: r.config.start_at, follow: r.config.follow,
            pollIntervalMs: parseDuration(r.config.poll_interval), consumer: audit,
          }));
        }
      }
    } catch (err) {
      await this.shutdown();
      throw err;
    }
  }

  private async startReceiver(r: Component): Promise<void> {
    this.receivers.push(r);
    await r.start();
  }

  /** Stops receivers, settles and stores everything in flight, closes the store. Safe twice. */
  shutdown(): Promise<void> {
    this.stopping ??= (async () => {
      const { logger } = this;
      for (const r of this.receivers.reverse()) {
        await r.shutdown().catch((err: unknown) => logger.error({ err }, 'receiver shutdown failed'));
      }
      this.receivers = [];
      if (this.correlator) {
        const before = this.correlator.stats();
        await this.correlator.stop();
        logger.info({ settled: before }, 'correlator drained into the store');
      }
      if (this.queryServer) await closeHttp(this.queryServer, 1000);
      this.store?.close();
      logger.info('pipeline stopped');
    })();
    return this.stopping;
  }
}
