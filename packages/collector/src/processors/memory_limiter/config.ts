import { z } from 'zod';
import { duration, parseDuration } from '../../confmap/schema.js';

export const MEMORY_LIMITER_DEFAULTS = { checkInterval: '1s', spikeShare: 0.2 } as const;

/**
 * `processors.memory_limiter`, in the OpenTelemetry Collector's keys: `limit_mib` (the hard limit
 * of resident memory), `spike_limit_mib` (the soft limit is limit - spike; default 20% of the
 * limit), or both as a percentage of the container's memory limit (the machine's when there is
 * none). Exactly one of `limit_mib` and `limit_percentage`; the spike key of the same kind.
 */
export const memoryLimiterConfig = z.strictObject({
  check_interval: duration.default(MEMORY_LIMITER_DEFAULTS.checkInterval),
  limit_mib: z.number().int().positive().optional(),
  spike_limit_mib: z.number().int().nonnegative().optional(),
  limit_percentage: z.number().int().min(1).max(100).optional(),
  spike_limit_percentage: z.number().int().min(0).max(100).optional(),
}).superRefine((c, ctx) => {
  const problem = (path: string, message: string) => ctx.addIssue({ code: 'custom', path: [path], message });
  // A check_interval that is no duration was reported by its own schema.
  let intervalMs: number | undefined;
  try {
    intervalMs = parseDuration(c.check_interval);
  } catch {
    intervalMs = undefined;
  }
  if (intervalMs !== undefined && intervalMs <= 0) problem('check_interval', 'must be above 0, e.g. "1s"');
  if (c.limit_mib === undefined && c.limit_percentage === undefined) {
    ctx.addIssue({ code: 'custom', path: [], message: 'set limit_mib (MiB of resident memory) or limit_percentage (of the container\'s or machine\'s memory)' });
  }
  if (c.limit_mib !== undefined && c.limit_percentage !== undefined) problem('limit_percentage', 'set limit_mib or limit_percentage, not both');
  if (c.spike_limit_mib !== undefined) {
    if (c.limit_mib === undefined) problem('spike_limit_mib', 'goes with limit_mib (with limit_percentage, use spike_limit_percentage)');
    else if (c.spike_limit_mib >= c.limit_mib) problem('spike_limit_mib', `must be below limit_mib (${c.limit_mib}): the soft limit is limit_mib - spike_limit_mib`);
  }
  if (c.spike_limit_percentage !== undefined) {
    if (c.limit_percentage === undefined) problem('spike_limit_percentage', 'goes with limit_percentage (with limit_mib, use spike_limit_mib)');
    else if (c.spike_limit_percentage >= c.limit_percentage) problem('spike_limit_percentage', `must be below limit_percentage (${c.limit_percentage}): the soft limit is limit_percentage - spike_limit_percentage`);
  }
});

export type MemoryLimiterConfig = z.output<typeof memoryLimiterConfig>;
