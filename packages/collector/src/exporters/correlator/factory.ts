import type { AuditEvent } from '@kube-correlate/audit';
import { Correlator, StoreUnavailableError } from '@kube-correlate/correlator';
import type { Span } from '@kube-correlate/otlp';
import { RetryableError } from '../../component/errors.js';
import { exporterFactory } from '../../component/factory.js';
import { RAW_OTLP_REQUEST } from '../../component/component.js';
import { parseDuration } from '../../confmap/schema.js';
import { describeFromSpec } from '../../internal/correlator-settings.js';
import { storeExtensionOf } from '../../extensions/store/extension.js';
import { requireStoreExtension } from '../../extensions/store/factory.js';
import { correlatorExporterConfig } from './config.js';

function retryable(err: unknown): never {
  if (err instanceof StoreUnavailableError) throw new RetryableError(err.message, err.retryAfterSeconds * 1000);
  throw err;
}

/**
 * `exporters.correlator` (embedded mode, see README.md): joins spans and audit events in process
 * and writes settled trees to the store extension. Its `shutdown` settles everything it holds
 * into the store, which is still open then (extensions stop last).
 */
export const correlatorExporterFactory = exporterFactory({
  kind: 'exporter',
  type: 'correlator',
  signals: ['traces', 'logs'],
  takes: ['spans', 'audit_events'],
  config: correlatorExporterConfig,
  create({ id, source, metrics, logger }, c) {
    const log = logger.child({ component: 'correlator' });
    const describeRequest = describeFromSpec(c.api_spec, source, `exporters.${id}`, logger);
    let correlator: Correlator | undefined;
    const running = (): Correlator => {
      if (!correlator) throw new Error(`exporters.${id} is not started`);
      return correlator;
    };
    return {
      async start(host) {
        const ext = storeExtensionOf(host);
        const maintenance = ext.maintenance;
        correlator = new Correlator({
          store: ext.store,
          // A full store: retention frees the oldest data now rather than at its next interval.
          ...(maintenance ? { onStoreFull: () => maintenance.runSoon() } : {}),
          describeRequest,
          settleAfterMs: parseDuration(c.settle_after),
          pendingAuditTtlMs: parseDuration(c.pending_audit_ttl),
          maxTracesInFlight: c.max_traces_in_flight,
          maxSpansPerTrace: c.max_spans_per_trace,
          maxSpansInFlight: c.max_spans_in_flight,
          maxPendingAudits: c.max_pending_audits,
          metrics,
          logger: log,
        });
        // Replays what was acknowledged and not stored in full before the last stop (a crash).
        await correlator.start();
      },
      // Acknowledged once durable (the store's inbox); a store that cannot write now is a retryable refusal.
      consumeSpans: (spans: Span[]) => running().consumeSpans(spans, RAW_OTLP_REQUEST.get(spans)).catch(retryable),
      consumeAuditEvents: (events: AuditEvent[]) => running().consumeAuditEvents(events).catch(retryable),
      async shutdown() {
        if (!correlator) return;
        const before = correlator.stats();
        await correlator.stop();
        logger.info({ settled: before }, 'correlator drained into the store');
      },
    };
  },
  checkService(self, service) {
    const all = service.defined('exporter').filter((e) => e.type === 'correlator');
    return [
      ...(all.length > 1 && all[1]!.id === self.id ? [{ path: `exporters.${self.id}`, message: 'only one correlator exporter may be configured' }] : []),
      ...requireStoreExtension(self, service, 'writes to the embedded store'),
    ];
  },
});
