import { redactAuditEvent, redactionRulesFromConfig, type AuditEvent } from '@kube-correlate/audit';
import { processorFactory } from '../../component/factory.js';
import { k8sauditRedactionConfig } from './config.js';

/** The processor's type: every `logs` pipeline runs it first unless it lists it elsewhere (service/load.ts). */
export const K8SAUDIT_REDACTION = 'k8saudit_redaction';

/**
 * `processors.k8saudit_redaction` (see README.md): secrets in audit events are redacted before
 * anything stores, writes to Kafka or exports them. It is always on: every `logs` pipeline runs it
 * first unless the pipeline lists it itself; configuring it only changes its rules.
 */
export const k8sauditRedactionFactory = processorFactory({
  kind: 'processor',
  type: K8SAUDIT_REDACTION,
  signals: ['logs'],
  takes: ['audit_events'],
  emits: 'same',
  config: k8sauditRedactionConfig,
  create({ metrics }, config, next) {
    const rules = redactionRulesFromConfig(config);
    return {
      async start() {},
      async shutdown() {},
      async consumeAuditEvents(events: AuditEvent[]) {
        let changed = false;
        const out = events.map((e) => {
          const r = redactAuditEvent(e, rules);
          if (r.redactions.length) {
            changed = true;
            for (const x of r.redactions) metrics.auditRedactions.inc({ rule: x.rule });
          }
          return r.event;
        });
        await next.audit.consumeAuditEvents(changed ? out : events);
      },
    };
  },
});
