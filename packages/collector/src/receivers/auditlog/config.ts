import { z } from 'zod';
import { duration } from '../../confmap/schema.js';

export const AUDITLOG_RECEIVER_DEFAULTS = {
  startAt: 'beginning',
  follow: true,
  pollInterval: '250ms',
} as const;

/** `receivers.auditlog`: audit log files as kube-apiserver's `--audit-log-path` writes them. */
export const auditlogReceiverConfig = z.strictObject({
  include: z.array(z.string().min(1)).min(1),
  start_at: z.enum(['beginning', 'end']).default(AUDITLOG_RECEIVER_DEFAULTS.startAt),
  /** Follow the files across appends and rotation (true), or read each once (false). */
  follow: z.boolean().default(AUDITLOG_RECEIVER_DEFAULTS.follow),
  poll_interval: duration.default(AUDITLOG_RECEIVER_DEFAULTS.pollInterval),
});

export type AuditLogReceiverConfig = z.output<typeof auditlogReceiverConfig>;
