import type { Logger, PipelineMetrics } from '@kube-correlate/telemetry';
import type { TraceStore } from './trace-store.js';

export interface StoreMaintenanceOptions {
  store: TraceStore;
  metrics: PipelineMetrics;
  logger: Logger;
  /** Delete what is older than this (0: keep for ever). */
  maxAgeMs: number;
  /** The database's cap: retention keeps it under `targetShare` of it. */
  maxSizeBytes?: number;
  /** Share of maxSizeBytes retention keeps the database under. Default 0.8. */
  targetShare?: number;
  /** How often retention runs. Default 60 s (and once at start). */
  intervalMs?: number;
}

/**
 * Retention of the embedded store (`extensions.store.retention`, `max_size`): on a timer, data
 * older than the retention goes, oldest first, then the oldest data whatever its age while the
 * database uses more than 80% of its cap. So nobody who reaches a receiver can fill the disk; and if
 * data comes in faster than retention frees space, the cap makes writes fail and receivers refuse
 * with retryable codes until there is room again (correlator.ts), rather than filling the disk.
 */
export class StoreMaintenance {
  private timer: NodeJS.Timeout | undefined;
  private soon: NodeJS.Immediate | undefined;
  private lastSoon = 0;

  constructor(private readonly opts: StoreMaintenanceOptions) {}

  start(): void {
    if (this.timer) return;
    this.run();
    this.timer = setInterval(() => this.run(), this.opts.intervalMs ?? 60_000);
    this.timer.unref();
  }

  /** One retention pass (also what the timer runs). Never throws. */
  run(): void {
    const { store, metrics, logger, maxAgeMs, maxSizeBytes } = this.opts;
    try {
      const target = maxSizeBytes !== undefined ? Math.floor(maxSizeBytes * (this.opts.targetShare ?? 0.8)) : undefined;
      const r = store.applyRetention({ ...(maxAgeMs > 0 ? { maxAgeMs } : {}), ...(target !== undefined ? { targetBytes: target } : {}) });
      if (r.traces || r.auditRequests || r.objects) {
        logger.info({ ...r }, `retention deleted ${r.traces} traces, ${r.auditRequests} audit requests, ${r.objects} objects${r.bySize ? ' (the store was near its max_size)' : ''}`);
      }
      metrics.storeBytes.set(store.size().usedBytes);
    } catch (err) {
      logger.error({ err }, 'retention failed; it runs again at the next interval');
    }
  }

  /** Runs retention on the next turn of the event loop, at most once a second (a full store asks for it). */
  runSoon(): void {
    const now = Date.now();
    if (this.soon || now - this.lastSoon < 1000) return;
    this.lastSoon = now;
    this.soon = setImmediate(() => {
      this.soon = undefined;
      this.run();
    });
  }

  stop(): void {
    if (this.soon) clearImmediate(this.soon);
    this.soon = undefined;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}
