import { receiverFactory } from '../../component/factory.js';
import { parseDuration } from '../../confmap/schema.js';
import { auditlogReceiverConfig } from './config.js';
import { AuditLogReceiver } from './receiver.js';

/** `receivers.auditlog`: audit log files, read once or followed across rotation (see README.md). */
export const auditlogReceiverFactory = receiverFactory({
  kind: 'receiver',
  type: 'auditlog',
  signal: 'logs',
  emits: 'audit_events',
  config: auditlogReceiverConfig,
  create({ id, metrics, logger }, config, next) {
    return new AuditLogReceiver({
      name: id, metrics, logger: logger.child({ component: 'receiver' }), consumer: next.audit,
      include: config.include, startAt: config.start_at, follow: config.follow, pollIntervalMs: parseDuration(config.poll_interval),
    });
  },
});
