import { readFileSync } from 'node:fs';
import { totalmem } from 'node:os';
import type { AuditEvent } from '@kube-correlate/audit';
import type { Span } from '@kube-correlate/otlp';
import { MemoryLimiter } from '@kube-correlate/telemetry';
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
  create({ metrics, logger }, config, next) {
    const log = logger.child({ component: 'memory_limiter' });
    const lim = limits(config);
    const limiter = new MemoryLimiter({ checkIntervalMs: parseDuration(config.check_interval), ...lim, metrics, logger: log });
    const refuse = () => {
      const why = limiter.refusing();
      if (why) throw new RetryableError(`memory limit: ${why}`, parseDuration(config.check_interval) * 2, { reason: 'memory_limit' });
    };
    return {
      async start() {
        limiter.start();
        log.info({ limitMiB: Math.round(lim.limitBytes / MiB), softLimitMiB: Math.round(limiter.softLimitBytes / MiB), checkInterval: config.check_interval }, 'memory limiter started: receivers refuse (retryable) above the soft limit');
      },
      async shutdown() {
        limiter.stop();
      },
      async consumeSpans(spans: Span[]) {
        refuse();
        await next.spans.consumeSpans(spans);
      },
      async consumeAuditEvents(events: AuditEvent[]) {
        refuse();
        await next.audit.consumeAuditEvents(events);
      },
    };
  },
});
