import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Outcomes of one POST /mutate (label `outcome`). */
export type ReviewMetricOutcome = 'patched' | 'unchanged' | 'owned' | 'skipped' | 'error' | 'bad_request' | 'too_large';

/**
 * Every metric of the admission webhook (README.md, "Metrics"), bound to one registry. Labels are
 * bounded sets: operations are the four admission operations or `unknown`.
 */
export class WebhookMetrics {
  readonly registry: Registry;
  /** Reviews answered, by operation, outcome and dry_run ("true" | "false"). */
  readonly reviews: Counter<'operation' | 'outcome' | 'dry_run'>;
  /** Time from the request's arrival to the end of the response, POST /mutate only. */
  readonly reviewSeconds: Histogram;
  /** Reviews allowed unchanged because of an internal error, by reason (bad_object | exception). */
  readonly errors: Counter<'reason'>;
  /** What the trace-context headers of reviews held: header = traceparent | baggage_objectsetid. */
  readonly traceContext: Counter<'header' | 'state'>;
  /** Reload attempts of the serving pair and client CAs after the files changed, by outcome (ok | error). */
  readonly certReloads: Counter<'outcome'>;
  /** TLS handshakes refused or failed, by reason (TlsErrorReason in server.ts). */
  readonly tlsErrors: Counter<'reason'>;

  constructor(registry: Registry = new Registry(), opts: { defaultMetrics?: boolean } = {}) {
    this.registry = registry;
    const registers = [registry];
    const p = 'kube_correlate_webhook_';
    this.reviews = new Counter({ name: `${p}reviews_total`, help: 'AdmissionReviews answered, by operation, outcome and dry run.', labelNames: ['operation', 'outcome', 'dry_run'], registers });
    this.reviewSeconds = new Histogram({
      name: `${p}review_duration_seconds`,
      help: 'Time to answer one AdmissionReview, from request arrival to the end of the response.',
      buckets: [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5],
      registers,
    });
    this.errors = new Counter({ name: `${p}errors_total`, help: 'Reviews allowed without a patch because of an internal error, by reason.', labelNames: ['reason'], registers });
    this.traceContext = new Counter({ name: `${p}trace_context_total`, help: 'Trace-context headers of reviews, by header and state (valid, invalid, missing).', labelNames: ['header', 'state'], registers });
    this.certReloads = new Counter({ name: `${p}cert_reloads_total`, help: 'Serving certificate (and client CA) reloads after the files changed, by outcome.', labelNames: ['outcome'], registers });
    this.tlsErrors = new Counter({
      name: `${p}tls_handshake_errors_total`,
      help: 'TLS handshakes refused or failed, by reason (protocol_version, no_shared_cipher, no_client_certificate, untrusted_client_certificate, not_tls, timeout, aborted, other).',
      labelNames: ['reason'],
      registers,
    });
    if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: registry, prefix: 'kube_correlate_' });
  }
}
