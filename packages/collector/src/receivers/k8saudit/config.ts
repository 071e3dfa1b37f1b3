import type { z } from 'zod';
import { positiveInt, serverSettings } from '../../confmap/schema.js';

export const K8SAUDIT_RECEIVER_DEFAULTS = {
  endpoint: '127.0.0.1:4319',
  maxRequestBodySize: 64 * 1024 * 1024,
} as const;

/** `receivers.k8saudit`: kube-apiserver's audit webhook backend. */
export const k8sauditReceiverConfig = serverSettings(K8SAUDIT_RECEIVER_DEFAULTS.endpoint, {
  max_request_body_size: positiveInt.default(K8SAUDIT_RECEIVER_DEFAULTS.maxRequestBodySize),
});

export type K8sAuditReceiverConfig = z.output<typeof k8sauditReceiverConfig>;
