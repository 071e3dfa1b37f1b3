import { receiverFactory } from '../../component/factory.js';
import { authenticatorProblems } from '../../extensions/bearertokenauth/factory.js';
import { ListenerSecurity } from '../../internal/security.js';
import { k8sauditReceiverConfig, type K8sAuditReceiverConfig } from './config.js';
import { K8sAuditReceiver } from './receiver.js';

/** `receivers.k8saudit`: kube-apiserver's audit webhook backend (see README.md). */
export const k8sauditReceiverFactory = receiverFactory({
  kind: 'receiver',
  type: 'k8saudit',
  signal: 'logs',
  emits: 'audit_events',
  config: k8sauditReceiverConfig,
  create({ id, metrics, logger }, config, next) {
    const log = logger.child({ component: 'receiver' });
    const security = new ListenerSecurity({ path: `receivers.${id}`, settings: config, metrics, logger: log });
    const receiver = new K8sAuditReceiver({ name: id, metrics, logger: log, consumer: next.audit, endpoint: config.endpoint, maxRequestBodySize: config.max_request_body_size, security });
    return {
      async start(host) {
        await receiver.start(host);
        host.reportAddress('auditWebhook', receiver.address);
      },
      shutdown: () => receiver.shutdown(),
    };
  },
  checkService: (self, service) => authenticatorProblems(self, service, `receivers.${self.id}.auth`, (self.config as K8sAuditReceiverConfig).auth?.authenticator),
});
