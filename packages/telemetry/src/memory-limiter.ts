import type { Logger } from './logger.js';
import type { PipelineMetrics } from './metrics.js';

/**
 * The OpenTelemetry Collector's `memory_limiter`, for a Node process: every `checkIntervalMs` the
 * process's resident memory (RSS: what a container limit counts) is compared with a hard limit and
 * a soft limit (hard - spike). Above the soft limit, receivers refuse new data with a retryable
 * status (gRPC UNAVAILABLE, HTTP 503 with Retry-After) until usage drops below it again; data
 * already accepted is processed as usual, so memory goes down. Above the hard limit it also asks
 * V8 for a garbage collection when one can be asked for (node --expose-gc).
 *
 * The correlator's caps in bytes (max_bytes_in_flight, max_bytes_per_trace) bound what it holds;
 * this bounds the process as a whole (decoding, queues, sockets).
 */
export interface MemoryLimiterOptions {
  /** How often usage is sampled. */
  checkIntervalMs: number;
  /** Hard limit, bytes. */
  limitBytes: number;
  /** The soft limit is limitBytes - spikeBytes. Default 20% of the limit, as the Collector. */
  spikeBytes?: number;
  /** Memory in use, bytes. Default process.memoryUsage.rss(). */
  usage?: () => number;
  metrics?: PipelineMetrics;
  logger?: Logger;
}

export class MemoryLimiter {
  readonly softLimitBytes: number;
  private readonly usage: () => number;
  private timer: NodeJS.Timeout | undefined;
  private above: 'soft' | 'hard' | undefined;
  private last = 0;

  constructor(private readonly opts: MemoryLimiterOptions) {
    if (!(opts.limitBytes > 0)) throw new RangeError(`memory_limiter: limit must be positive, got ${opts.limitBytes}`);
    const spike = opts.spikeBytes ?? Math.floor(opts.limitBytes * 0.2);
    if (!(spike >= 0) || spike >= opts.limitBytes) throw new RangeError(`memory_limiter: spike_limit_mib must be below limit_mib (${spike} >= ${opts.limitBytes} bytes)`);
    if (!(opts.checkIntervalMs > 0)) throw new RangeError(`memory_limiter: check_interval must be positive, got ${opts.checkIntervalMs} ms`);
    this.softLimitBytes = opts.limitBytes - spike;
    this.usage = opts.usage ?? (() => process.memoryUsage.rss());
    opts.metrics?.memoryLimit.set(opts.limitBytes);
  }

  start(): void {
    if (this.timer) return;
    this.check();
    this.timer = setInterval(() => this.check(), this.opts.checkIntervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Samples usage and updates the state (the timer calls it; tests may). */
  check(): void {
    const used = this.usage();
    this.last = used;
    this.opts.metrics?.memoryUsage.set(used);
    const state = used >= this.opts.limitBytes ? 'hard' : used >= this.softLimitBytes ? 'soft' : undefined;
    if (state !== this.above) {
      if (state && !this.above) this.opts.logger?.warn({ usedMiB: mib(used), softLimitMiB: mib(this.softLimitBytes), limitMiB: mib(this.opts.limitBytes) }, 'memory usage above the soft limit: refusing new data (retryable) until it drops');
      else if (!state) this.opts.logger?.info({ usedMiB: mib(used) }, 'memory usage below the soft limit again: accepting data');
      this.above = state;
    }
    if (state === 'hard') (globalThis as { gc?: () => void }).gc?.();
  }

  /** Why data must be refused now, or undefined. */
  refusing(): string | undefined {
    if (!this.above) return undefined;
    return `memory usage ${mib(this.last)} MiB is above the ${this.above === 'hard' ? '' : 'soft '}limit of ${mib(this.above === 'hard' ? this.opts.limitBytes : this.softLimitBytes)} MiB`;
  }
}

const mib = (b: number) => Math.round(b / (1024 * 1024));
