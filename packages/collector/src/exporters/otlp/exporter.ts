import { encodeTraceRequest, type Span } from '@kube-correlate/otlp';
import { planExport, type ExportQueueEntry, type TraceStore } from '@kube-correlate/store';
import type { Logger, PipelineMetrics } from '@kube-correlate/telemetry';
import { PipelineError } from '../../component/errors.js';
import type { OtlpClient } from './client.js';

export interface OtlpTraceExporterOptions {
  name: string;
  store: TraceStore;
  client: OtlpClient;
  metrics: PipelineMetrics;
  logger: Logger;
  flushIntervalMs: number;
  batchSize: number;
  maxSpansPerRequest: number;
  queueSize: number;
  shutdownTimeoutMs: number;
  /** Pause before trying again after a send gave up on retryable errors. */
  retryPauseMs: number;
  /** Requests are split to stay under this many bytes (receivers' default limit is 4 MiB). */
  maxRequestBytes?: number;
  /** What to send for queue entries (tests inject faults here). Default planExport. */
  plan?: typeof planExport;
  /** How long a request's route and audit spans wait for its audit record to complete (see @kube-correlate/store export-plan.ts). */
  waitForAuditMs?: number;
  /** How long an object set's spans that may still change are held (see @kube-correlate/store export-plan.ts). */
  waitForOwnersMs?: number;
  /** Spans in one object-set trace before its window continues in a further trace (object_sets.max_spans_per_trace). */
  maxSpansPerObjectSetTrace?: number;
}

/**
 * Exports what reaches the store to an OTLP backend (Jaeger): request traces with their audit,
 * unjoined audit requests, and object-set traces. The queue is the store's `export_queue` table,
 * filled in the same transaction as the data, so a crash or a Jaeger outage loses nothing: entries
 * leave the queue only after the backend accepted their spans. Span ids sent are recorded
 * (`exported_spans`), so a replay, a redelivery or a restart never shows a span twice; late
 * activity goes out as new spans (see @kube-correlate/store export-plan.ts).
 *
 * One loop sends at a time: a trace touched again while a send is in flight is planned after it,
 * from what was recorded as sent.
 */
export class OtlpTraceExporter {
  private stopped = false;
  private loop: Promise<void> | undefined;
  private readonly waiters = new Set<{ untilNotified: boolean; done: () => void }>();
  private pending = false;
  private readonly maxBytes: number;

  constructor(private readonly opts: OtlpTraceExporterOptions) {
    this.maxBytes = opts.maxRequestBytes ?? 3 * 1024 * 1024;
  }

  async start(): Promise<void> {
    this.pending = this.opts.store.exportQueueSize() > 0; // left over from the previous run
    this.loop = this.run();
  }

  /** New entries were queued: export them after the flush interval. */
  notify(): void {
    this.pending = true;
    for (const w of [...this.waiters]) if (w.untilNotified) w.done();
  }

  private async run(): Promise<void> {
    const { flushIntervalMs, retryPauseMs } = this.opts;
    while (!this.stopped) {
      // Until new entries, or the next queued one comes due (object sets wait until quiet), or a minute.
      if (!this.pending) await this.wait(Math.min(60_000, this.opts.store.msUntilNextExport() ?? 60_000), true);
      if (this.stopped) break;
      await this.wait(flushIntervalMs, false);
      this.pending = false;
      const ok = await this.drain().catch((err: unknown) => {
        // The store failed (disk, lock): keep the loop alive and try again after the pause.
        this.opts.metrics.exporterFailed.inc({ exporter: this.opts.name, reason: 'internal' });
        this.opts.logger.error({ err }, 'export round failed');
        return false;
      });
      if (!ok && !this.stopped) {
        this.pending = true;
        await this.wait(retryPauseMs, false);
      }
    }
  }

  /** Sleeps `ms`; ends early on shutdown, and on notify() when `untilNotified`. */
  private wait(ms: number, untilNotified: boolean): Promise<void> {
    return new Promise((resolve) => {
      const waiter = {
        untilNotified,
        done: () => {
          clearTimeout(timer);
          this.waiters.delete(waiter);
          resolve();
        },
      };
      const timer = setTimeout(waiter.done, ms);
      this.waiters.add(waiter);
    });
  }

  /** Exports until the queue is empty. False when the backend could not be reached. */
  async drain(): Promise<boolean> {
    const { store, metrics, name, logger, batchSize, queueSize } = this.opts;
    for (;;) {
      const dropped = store.trimExportQueue(queueSize);
      if (dropped) {
        metrics.exporterFailed.inc({ exporter: name, reason: 'queue_full' }, dropped);
        logger.warn({ dropped, queueSize }, 'export queue full: oldest entries dropped');
      }
      metrics.exporterQueue.set({ exporter: name }, store.exportQueueSize());
      const entries = store.nextExports(batchSize);
      if (entries.length === 0) return true;
      let plan;
      try {
        plan = (this.opts.plan ?? planExport)(store, entries, { waitForOwnersMs: this.opts.waitForOwnersMs, waitForAuditMs: this.opts.waitForAuditMs, maxSpansPerTrace: this.opts.maxSpansPerObjectSetTrace });
      } catch (err) {
        // A bug or a stored row we cannot read: these entries would fail every time, so they go
        // (counted and logged) rather than block the queue behind them.
        metrics.exporterFailed.inc({ exporter: name, reason: 'internal' });
        logger.error({ err, entries: entries.slice(0, 5) }, 'cannot plan the export of these queue entries; dropping them');
        store.removeExports(entries);
        continue;
      }
      try {
        for (const chunk of this.chunks(plan.spans)) {
          const r = await this.opts.client.exportBytes(chunk.bytes);
          store.markExported(chunk.spans, chunk.spans.flatMap((s) => plan.stages.get(`${s.traceId}/${s.spanId}`) ?? []));
          metrics.exporterSent.inc({ exporter: name, signal: 'spans' }, chunk.spans.length - r.rejectedSpans);
          if (r.rejectedSpans) {
            metrics.exporterFailed.inc({ exporter: name, reason: 'partially_rejected' });
            logger.warn({ rejected: r.rejectedSpans, message: r.errorMessage }, 'backend rejected some spans');
          }
        }
        store.removeExports(entries);
        for (const r of plan.releases) store.scheduleRelease(r.key, r.atMs);
        for (const k of plan.complete) store.cancelRelease(k);
      } catch (err) {
        if (!(err instanceof PipelineError)) throw err;
        metrics.exporterFailed.inc({ exporter: name, reason: err.reason });
        if (err.retryable) {
          if (!this.stopped) logger.warn({ err: err.message, queued: store.exportQueueSize() }, 'export failed; entries stay queued');
          return false;
        }
        // The backend refuses this data for good: retrying cannot help, so let it go (counted).
        logger.error({ err: err.message, entries: entries.length }, 'export refused by the backend; dropping these entries');
        store.removeExports(entries);
      } finally {
        metrics.exporterQueue.set({ exporter: name }, store.exportQueueSize());
      }
      if (this.stopped && this.deadlinePassed()) return true;
    }
  }

  private *chunks(spans: Span[]): Generator<{ spans: Span[]; bytes: Uint8Array }> {
    const n = this.opts.maxSpansPerRequest;
    for (let i = 0; i < spans.length; i += n) yield* this.split(spans.slice(i, i + n));
  }

  private *split(spans: Span[]): Generator<{ spans: Span[]; bytes: Uint8Array }> {
    const bytes = encodeTraceRequest(spans);
    if (bytes.length <= this.maxBytes || spans.length === 1) {
      yield { spans, bytes };
      return;
    }
    const half = Math.ceil(spans.length / 2);
    yield* this.split(spans.slice(0, half));
    yield* this.split(spans.slice(half));
  }

  private deadline = 0;
  private deadlinePassed(): boolean {
    return Date.now() > this.deadline;
  }

  /** Exports what is queued (for at most shutdown_timeout), then stops; the rest stays queued. */
  async shutdown(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.deadline = Date.now() + this.opts.shutdownTimeoutMs;
    const timer = setTimeout(() => this.opts.client.close(), this.opts.shutdownTimeoutMs);
    for (const w of [...this.waiters]) w.done();
    try {
      await this.loop;
      await this.drain(); // what the correlator settled while stopping
    } finally {
      clearTimeout(timer);
      this.opts.client.close();
    }
  }

  /** For tests: what is left in the queue, due or not. */
  queued(): ExportQueueEntry[] {
    return this.opts.store.allExports();
  }
}
