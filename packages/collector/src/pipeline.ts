import { createServer, type Server } from 'node:http';
import { resolve } from 'node:path';
import { loadCatalogueFile, mapAuditEvent } from '@kube-correlate/apicoverage';
import { Correlator, KafkaCorrelator, type DescribeRequest } from '@kube-correlate/correlator';
import { createKafkaClient } from '@kube-correlate/kafka';
import { createQueryApi, KafkaStoreLoader, TraceStore } from '@kube-correlate/store';
import { createLogger, PipelineMetrics, type Logger } from '@kube-correlate/telemetry';
import { ConfigError, parseDuration, type CollectorConfig, type KafkaReceiverConfig } from './config.js';
import type { AuditConsumer, Component, SpanConsumer } from './consumer.js';
import { KafkaExporter } from './exporters/kafka.js';
import { OtlpTraceExporter } from './exporters/otlp.js';
import { OtlpClient } from './exporters/otlp-client.js';
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
  metrics?: string;
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
  kafkaCorrelator: KafkaCorrelator | undefined;
  /** The otlp/otlphttp exporter (to Jaeger), when configured. */
  otlpExporter: OtlpTraceExporter | undefined;
  private receivers: Component[] = [];
  private exporters: Component[] = [];
  private queryServer: Server | undefined;
  private metricsServer: Server | undefined;
  private started = false;
  private stopping: Promise<void> | undefined;

  private get config(): CollectorConfig {
    return this.opts.config;
  }

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
      const otlp = config.exporters.find((e) => e.type === 'otlp' || e.type === 'otlphttp');
      if (config.store) {
        const dir = resolve(config.store.directory);
        const objectSets = otlp && (otlp.type === 'otlp' || otlp.type === 'otlphttp') ? otlp.config.object_sets : undefined;
        this.store = new TraceStore({
          dir, metrics, exportQueue: !!otlp, onExportQueued: () => this.otlpExporter?.notify(),
          ...(objectSets ? { objectSetDebounce: { settleAfterMs: parseDuration(objectSets.settle_after), maxDelayMs: parseDuration(objectSets.max_delay) }, objectSetWindowMs: parseDuration(objectSets.window) } : {}),
        });
        logger.info({ path: this.store.path }, 'embedded store opened');
      }
      if (otlp && (otlp.type === 'otlp' || otlp.type === 'otlphttp')) {
        const c = otlp.config;
        const grpcEndpoint = otlp.type === 'otlp' && !otlp.config.tls.insecure && !/^https?:\/\//.test(c.endpoint) ? `https://${c.endpoint}` : c.endpoint;
        const log = logger.child({ component: 'exporter', exporter: otlp.name });
        const client = new OtlpClient({
          protocol: otlp.type === 'otlp' ? 'grpc' : 'http',
          endpoint: otlp.type === 'otlp' ? grpcEndpoint : c.endpoint,
          headers: c.headers,
          compression: c.compression,
          timeoutMs: parseDuration(c.timeout),
          retry: {
            enabled: c.retry_on_failure.enabled,
            initialIntervalMs: parseDuration(c.retry_on_failure.initial_interval),
            maxIntervalMs: parseDuration(c.retry_on_failure.max_interval),
            maxElapsedMs: parseDuration(c.retry_on_failure.max_elapsed_time),
            multiplier: c.retry_on_failure.multiplier,
            randomization: c.retry_on_failure.randomization_factor,
          },
          onRetry: ({ attempt, delayMs, reason }) => {
            metrics.exporterFailed.inc({ exporter: otlp.name, reason: `${reason}_retried` });
            log.debug({ attempt, delayMs, reason }, 'export attempt failed; retrying');
          },
        });
        this.otlpExporter = new OtlpTraceExporter({
          name: otlp.name, store: this.store!, client, metrics, logger: log,
          flushIntervalMs: parseDuration(c.flush_interval), batchSize: c.batch_size, maxSpansPerRequest: c.max_spans_per_request,
          queueSize: c.sending_queue.queue_size, shutdownTimeoutMs: parseDuration(c.shutdown_timeout),
          retryPauseMs: parseDuration(c.retry_on_failure.initial_interval),
          waitForOwnersMs: parseDuration(c.object_sets.wait_for_owners),
          maxSpansPerObjectSetTrace: c.object_sets.max_spans_per_trace,
          waitForAuditMs: parseDuration(c.wait_for_audit),
        });
        await this.otlpExporter.start();
        logger.info({ exporter: otlp.name, endpoint: c.endpoint }, 'exporting correlated traces over OTLP');
      }
      if (config.correlator) {
        const c = config.correlator;
        this.correlator = new Correlator({
          sink: this.store!,
          describeRequest: describeFromSpec(c.api_spec, config.source, logger),
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
      if (config.metricsAddress) {
        this.metricsServer = createMetricsServer(metrics);
        this.addresses.metrics = await listenHttp(this.metricsServer, config.metricsAddress, 'metrics');
        logger.info({ endpoint: this.addresses.metrics }, '/metrics listening');
      }
      if (this.store && config.store) {
        this.queryServer = createQueryApi({
          store: this.store, metrics, logger: logger.child({ component: 'query' }),
          receivers: () => ({ otlpGrpc: this.addresses.otlpGrpc, otlpHttp: this.addresses.otlpHttp, auditWebhook: this.addresses.auditWebhook }),
        });
        this.addresses.query = await listenHttp(this.queryServer, config.store.endpoint, 'query API');
        logger.info({ endpoint: this.addresses.query }, 'query API and /metrics listening');
      }
      // Exporters by name, as SpanConsumer and AuditConsumer both.
      const exporters = new Map<string, SpanConsumer & AuditConsumer>();
      for (const e of config.exporters) {
        if (e.type === 'correlator') {
          const correlator = this.correlator!;
          exporters.set(e.name, { consumeSpans: (s) => correlator.addSpans(s), consumeAuditEvents: (a) => correlator.addAuditEvents(a) });
        } else if (e.type === 'otlp' || e.type === 'otlphttp') {
          // Fed by the store's export queue, not by receivers: it sends correlated trees.
          exporters.set(e.name, { consumeSpans: async () => undefined, consumeAuditEvents: async () => undefined });
        } else if (e.type === 'kafka' && !config.correlatorProcessor) {
          const k = new KafkaExporter({ name: e.name, config: e.config, metrics, logger: logger.child({ component: 'exporter' }) });
          this.exporters.push(k);
          await k.start();
          exporters.set(e.name, k);
        }
      }
      for (const r of config.receivers) {
        if (r.type === 'kafka') {
          await this.startReceiver(this.kafkaStage(r.name, r.config, r.exporters));
          continue;
        }
        const targets = r.exporters.map((name) => exporters.get(name)!);
        const spans: SpanConsumer = { consumeSpans: async (s) => void (await Promise.all(targets.map((t) => t.consumeSpans(s)))) };
        const audit: AuditConsumer = { consumeAuditEvents: async (a) => void (await Promise.all(targets.map((t) => t.consumeAuditEvents(a)))) };
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
        } else if (r.type === 'auditlog') {
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

  /** A kafka receiver with what follows it: the Kafka correlator, or the store loader. */
  private kafkaStage(name: string, rc: KafkaReceiverConfig, exporterNames: string[]): Component {
    const { config, metrics, logger } = this;
    const client = createKafkaClient({ brokers: rc.brokers, clientId: rc.client_id, logger: logger.child({ component: 'kafka' }) });
    const exps = config.exporters.filter((e) => exporterNames.includes(e.name));
    const p = config.correlatorProcessor;
    if (p) {
      const out = exps.find((e) => e.type === 'kafka');
      if (!out || out.type !== 'kafka') throw new Error(`${config.source}: receivers.${name}: the correlator processor writes to Kafka: list a kafka exporter in its pipeline`);
      const kc = new KafkaCorrelator({
        client, groupId: rc.group_id, metrics, logger: logger.child({ component: 'correlator' }),
        topics: { spans: rc.traces.topic, audit: rc.logs.topic, auditTrace: p.internal_topics.audit_trace, auditByTrace: p.internal_topics.audit_by_trace, correlated: out.config.traces.topic },
        settleAfterMs: parseDuration(p.settle_after), pendingAuditTtlMs: parseDuration(p.pending_audit_ttl),
        maxTracesInFlight: p.max_traces_in_flight, pairCacheSize: p.pair_cache_size, internalRetentionMs: parseDuration(p.internal_topics.retention),
        describeRequest: describeFromSpec(p.api_spec, config.source, logger),
      });
      this.kafkaCorrelator = kc;
      return { start: () => kc.start(), shutdown: () => kc.stop() };
    }
    if (exps.some((e) => e.type === 'store')) {
      const loader = new KafkaStoreLoader({ client, store: this.store!, topic: rc.traces.topic, groupId: rc.group_id, metrics, logger: logger.child({ component: 'store-loader' }) });
      return { start: () => loader.start(), shutdown: () => loader.stop() };
    }
    throw new Error(`${config.source}: receivers.${name}: a kafka receiver feeds the correlator processor or the store exporter`);
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
      for (const e of this.exporters) await e.shutdown().catch((err: unknown) => logger.error({ err }, 'exporter shutdown failed'));
      this.exporters = [];
      if (this.correlator) {
        const before = this.correlator.stats();
        await this.correlator.stop();
        logger.info({ settled: before }, 'correlator drained into the store');
      }
      if (this.otlpExporter) {
        await this.otlpExporter.shutdown().catch((err: unknown) => logger.error({ err }, 'otlp exporter shutdown failed'));
        logger.info({ queued: this.store?.exportQueueSize() ?? 0 }, 'otlp exporter stopped');
      }
      if (this.queryServer) await closeHttp(this.queryServer, 1000);
      if (this.metricsServer) await closeHttp(this.metricsServer, 1000);
      this.store?.close();
      logger.info('pipeline stopped');
    })();
    return this.stopping;
  }
}

/** The `api_spec` option: audit request -> its API operation, from the OpenAPI document's catalogue. */
function describeFromSpec(path: string, source: string, logger: Logger): DescribeRequest | undefined {
  if (!path) return undefined;
  let catalogue;
  try {
    catalogue = loadCatalogueFile(resolve(path));
  } catch (err) {
    throw new ConfigError(`${source}: api_spec: ${(err as Error).message}`);
  }
  logger.info({ apiSpec: path, endpoints: catalogue.endpoints.length }, 'naming API operations from the OpenAPI spec');
  return (events) => {
    const e = events.find((x) => x.stage === 'ResponseComplete') ?? events[0];
    const m = e ? mapAuditEvent(catalogue, e) : undefined;
    return m?.type === 'endpoint' ? { operationId: m.endpoint.operationId, stability: m.endpoint.level } : undefined;
  };
}

/** /metrics and /healthz for processes without a query API (collector, correlator). */
function createMetricsServer(metrics: PipelineMetrics): Server {
  return createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/metrics') {
      void metrics.registry.metrics().then((text) => {
        res.writeHead(200, { 'content-type': metrics.registry.contentType });
        res.end(text);
      });
    } else if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"status":"ok"}\n');
    } else {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: `no route ${path}` }) + '\n');
    }
  });
}
