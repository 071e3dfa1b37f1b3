import { readFileSync } from 'node:fs';
import { totalmem } from 'node:os';
import type { AuditEvent } from '@kube-correlate/audit';
import type { RawSpan, Span } from '@kube-correlate/otlp';
import { MemoryLimiter, type PipelineMetrics } from '@kube-correlate/telemetry';
import { RetryableError } from '../../component/errors.js';
import { processorFactory } from '../../component/factory.js';
import { parseDuration } from '../../confmap/schema.js';
import { memoryLimiterConfig, type MemoryLimiterConfig } from './config.js';

const MiB = 1024 * 1024;

/** The memory a percentage is of: the cgroup's limit when there is one (a container), else the machine's. */
function totalMemory(): number {
  for (const f of ['/sys/fs/cgroup/memory.max', '/sys/fs/cgroup/memory/memory.limit_in_bytes']) {
    try {
      const v = readFileSync(f, 'utf8').trim();
      const n = Number(v);
      if (v !== 'max' && Number.isFinite(n) && n > 0 && n < totalmem()) return n;
    } catch {
      // not this cgroup version
    }
  }
  return totalmem();
}

function limits(c: MemoryLimiterConfig): { limitBytes: number; spikeBytes?: number } {
  if (c.limit_mib !== undefined) return { limitBytes: c.limit_mib * MiB, ...(c.spike_limit_mib !== undefined ? { spikeBytes: c.spike_limit_mib * MiB } : {}) };
  const total = totalMemory();
  const limitBytes = Math.floor((total * c.limit_percentage!) / 100);
  return { limitBytes, ...(c.spike_limit_percentage !== undefined ? { spikeBytes: Math.floor((total * c.spike_limit_percentage) / 100) } : {}) };
}

/**
 * One limiter per `memory_limiter[/name]` of a process's pipelines, shared by every pipeline that
 * lists it (as in the OpenTelemetry Collector): one timer, one log line per crossing. Keyed by the
 * metrics too, so that two pipelines built in one process (tests) do not share.
 */
const shared = new WeakMap<PipelineMetrics, Map<string, { limiter: MemoryLimiter; started: number }>>();

/**
 * `processors.memory_limiter` (see README.md): above its soft limit (limit - spike) of resident
 * memory, spans and audit events are refused with a retryable status (gRPC UNAVAILABLE, HTTP 503 +
 * Retry-After) until usage drops; list it first in each pipeline, as in the OpenTelemetry Collector.
 */
export const memoryLimiterFactory = processorFactory({
  kind: 'processor',
  type: 'memory_limiter',
  signals: ['traces', 'logs'],
  takes: ['spans', 'audit_events'],
  emits: 'same',
  config: memoryLimiterConfig,
  create({ id, metrics, logger }, config, next) {
    const log = logger.child({ component: 'processor', processor: id });
    const lim = limits(config);
    let byId = shared.get(metrics);
    if (!byId) shared.set(metrics, (byId = new Map()));
    let entry = byId.get(id);
    if (!entry) byId.set(id, (entry = { limiter: new MemoryLimiter({ checkIntervalMs: parseDuration(config.check_interval), ...lim, metrics, logger: log }), started: 0 }));
    const { limiter } = entry;
    const own = entry;
    let running = false;
    const refuse = () => {
      const why = limiter.refusing();
      if (why) throw new RetryableError(`memory limit: ${why}`, parseDuration(config.check_interval) * 2, { reason: 'memory_limit' });
    };
    return {
      async start() {
        if (running) return;
        running = true;
        if (own.started++ > 0) return;
        log.info({ limitMiB: Math.round(lim.limitBytes / MiB), softLimitMiB: Math.round(limiter.softLimitBytes / MiB), checkInterval: config.check_interval }, 'memory limiter started: receivers refuse (retryable) above the soft limit');
        limiter.start();
      },
      async shutdown() {
        if (!running) return;
        running = false;
        if (--own.started > 0) return;
        limiter.stop();
        byId.delete(id);
      },
      async consumeSpans(spans: Span[]) {
        refuse();
        await next.spans.consumeSpans(spans);
      },
      // Scanned spans pass through when everything after this takes them (component.ts).
      ...(next.spans.consumeRawSpans
        ? {
          async consumeRawSpans(spans: RawSpan[]) {
            refuse();
            await next.spans.consumeRawSpans!(spans);
          },
        }
        : {}),
      async consumeAuditEvents(events: AuditEvent[]) {
        refuse();
        await next.audit.consumeAuditEvents(events);
      },
    };
  },
});
