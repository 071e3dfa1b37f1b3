import { k8sauditRedactionSchema } from '@kube-correlate/audit';

/** `processors.k8saudit_redaction`: the rules (@kube-correlate/audit redaction-config.ts). */
export const k8sauditRedactionConfig = k8sauditRedactionSchema;
