import { receiverFactory } from '../../component/factory.js';
import { k8sauditReceiverConfig } from './config.js';
import { K8sAuditReceiver } from './receiver.js';

/** `receivers.k8saudit`: kube-apiserver's audit webhook backend (see README.md). */
export const k8sauditReceiverFactory = receiverFactory({
  kind: 'receiver',
  type: 'k8saudit',
  signal: 'logs',
  emits: 'audit_events',
  config: k8sauditReceiverConfig,
  create({ id, metrics, logger }, config, next) {
    const receiver = new K8sAuditReceiver({ name: id, metrics, logger: logger.child({ component: 'receiver' }), consumer: next.audit, endpoint: config.endpoint, maxRequestBodySize: config.max_request_body_size });
    return {
      async start(host) {
        await receiver.start();
        host.reportAddress('auditWebhook', receiver.address);
      },
      shutdown: () => receiver.shutdown(),
    };
  },
});
