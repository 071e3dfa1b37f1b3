import { readFileSync } from 'node:fs';
import { exporterFactory, type ComponentUse, type CreateSettings, type ServiceView } from '../../component/factory.js';
import type { z } from 'zod';
import type { Component } from '../../component/component.js';
import type { ConfigProblem } from '../../confmap/problems.js';
import { parseDuration } from '../../confmap/schema.js';
import { isClientAuthenticator } from '../../extensions/bearertokenauth/extension.js';
import { authenticatorProblems } from '../../extensions/bearertokenauth/factory.js';
import { storeExtensionOf } from '../../extensions/store/extension.js';
import { OtlpClient, type OtlpClientOptions } from './client.js';
import { otlpExporterConfig, otlphttpExporterConfig, usesTls, type OtlpExporterConfig, type OtlpHttpExporterConfig } from './config.js';
import { OtlpTraceExporter } from './exporter.js';

/**
 * `exporters.otlp[/name]` (OTLP/gRPC) and `exporters.otlphttp[/name]` (see README.md): correlated
 * trees from the store's export queue to Jaeger or any OTLP backend. Fed by the store extension,
 * not by its pipelines: it asks the store for an export queue when created, starts before the
 * exporters that write the store and stops after them, so it drains what they settled.
 */
function create(protocol: 'grpc' | 'http', { id, metrics, logger, host }: CreateSettings, c: OtlpExporterConfig | OtlpHttpExporterConfig): Component {
  const log = logger.child({ component: 'exporter', exporter: id });
  let exporter: OtlpTraceExporter | undefined;
  const store = storeExtensionOf(host);
  store.useExportQueue({
    objectSetDebounce: { settleAfterMs: parseDuration(c.object_sets.settle_after), maxDelayMs: parseDuration(c.object_sets.max_delay) },
    objectSetWindowMs: parseDuration(c.object_sets.window),
    onQueued: () => exporter?.notify(),
  });
  // TLS with a bare host:port (`tls.insecure: false`, or another tls key): https://.
  const tls = usesTls(c.endpoint, c.tls);
  const endpoint = tls && !/^https?:\/\//.test(c.endpoint) ? `https://${c.endpoint}` : c.endpoint;
  return {
    async start(host) {
      let authorization: (() => string) | undefined;
      if (c.auth) {
        const ext = host.getExtension(c.auth.authenticator);
        if (!isClientAuthenticator(ext)) throw new Error(`exporters.${id}.auth.authenticator: "${c.auth.authenticator}" is not a running bearertokenauth extension (list it in service.extensions)`);
        authorization = () => ext.authorization();
      }
      const client = new OtlpClient({
        protocol,
        endpoint,
        headers: c.headers,
        ...(tls ? { tls: clientTls(id, c.tls) } : {}),
        ...(authorization ? { authorization } : {}),
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
          metrics.exporterFailed.inc({ exporter: id, reason: `${reason}_retried` });
          log.debug({ attempt, delayMs, reason }, 'export attempt failed; retrying');
        },
      });
      exporter = new OtlpTraceExporter({
        name: id, store: store.store, client, metrics, logger: log,
        flushIntervalMs: parseDuration(c.flush_interval), batchSize: c.batch_size, maxSpansPerRequest: c.max_spans_per_request,
        queueSize: c.sending_queue.queue_size, shutdownTimeoutMs: parseDuration(c.shutdown_timeout),
        retryPauseMs: parseDuration(c.retry_on_failure.initial_interval),
        waitForOwnersMs: parseDuration(c.object_sets.wait_for_owners),
        maxSpansPerObjectSetTrace: c.object_sets.max_spans_per_trace,
        waitForAuditMs: parseDuration(c.wait_for_audit),
      });
      await exporter.start();
      logger.info({ exporter: id, endpoint: c.endpoint, tls, auth: !!authorization }, 'exporting correlated traces over OTLP');
    },
    async shutdown() {
      if (!exporter) return;
      await exporter.shutdown();
      logger.info({ queued: store.isOpen ? store.store.exportQueueSize() : 0 }, 'otlp exporter stopped');
    },
  };
}

/** The PEM files of `tls`, read at start (a missing file fails it, naming the key). */
function clientTls(id: string, t: OtlpExporterConfig['tls']): NonNullable<OtlpClientOptions['tls']> {
  const read = (key: string, file: string | undefined): Buffer | undefined => {
    if (file === undefined) return undefined;
    try {
      return readFileSync(file);
    } catch (err) {
      throw new Error(`exporters.${id}.tls.${key}: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
    }
  };
  const ca = read('ca_file', t?.ca_file);
  const cert = read('cert_file', t?.cert_file);
  const key = read('key_file', t?.key_file);
  return {
    ...(ca ? { ca } : {}), ...(cert ? { cert } : {}), ...(key ? { key } : {}),
    ...(t?.server_name_override ? { serverName: t.server_name_override } : {}),
    insecureSkipVerify: t?.insecure_skip_verify ?? false,
  };
}

/** At most one of them (they would share the queue), after a component that writes the store, and an authenticator that is there. */
function checkService(self: ComponentUse, service: ServiceView): ConfigProblem[] {
  if (self.pipelines.length === 0) return [];
  const auth = authenticatorProblems(self, service, `exporters.${self.id}.auth`, (self.config as OtlpExporterConfig).auth?.authenticator);
  return [...auth, ...senderProblems(self, service)];
}

function senderProblems(self: ComponentUse, service: ServiceView): ConfigProblem[] {
  const senders = service.used('exporter').filter((e) => e.type === 'otlp' || e.type === 'otlphttp');
  if (senders[0]!.id !== self.id) {
    return senders[1]!.id === self.id ? [{ path: `exporters.${self.id}`, message: 'only one otlp/otlphttp exporter may be used (they share the store\'s export queue)' }] : [];
  }
  if (!service.used('exporter').some((e) => e.type === 'correlator' || e.type === 'store')) {
    return [{ path: `exporters.${self.id}`, message: 'the otlp exporter sends correlated trees: list it in a pipeline with the correlator exporter (embedded) or the store exporter (Kafka mode)' }];
  }
  return [];
}

/** One of the two: same keys, same behaviour, another transport. */
function senderFactory<T extends string, C extends OtlpExporterConfig | OtlpHttpExporterConfig>(type: T, protocol: 'grpc' | 'http', config: z.ZodType<C>) {
  return exporterFactory({
    kind: 'exporter',
    type,
    signals: ['traces', 'logs'],
    takes: [],
    fedByExtension: true,
    config,
    create: (settings, c) => create(protocol, settings, c),
    checkService,
  });
}

export const otlpExporterFactory = senderFactory('otlp', 'grpc', otlpExporterConfig);
export const otlphttpExporterFactory = senderFactory('otlphttp', 'http', otlphttpExporterConfig);
