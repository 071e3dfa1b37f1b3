import { FactoryRegistry } from './component/registry.js';
import { correlatorExporterFactory } from './exporters/correlator/factory.js';
import { kafkaExporterFactory } from './exporters/kafka/factory.js';
import { otlpExporterFactory, otlphttpExporterFactory } from './exporters/otlp/factory.js';
import { storeExporterFactory } from './exporters/store/factory.js';
import { bearerTokenAuthExtensionFactory } from './extensions/bearertokenauth/factory.js';
import { storeExtensionFactory } from './extensions/store/factory.js';
import { correlatorProcessorFactory } from './processors/correlator/factory.js';
import { k8sauditRedactionFactory } from './processors/k8saudit_redaction/factory.js';
import { memoryLimiterFactory } from './processors/memory_limiter/factory.js';
import { auditlogReceiverFactory } from './receivers/auditlog/factory.js';
import { k8sauditReceiverFactory } from './receivers/k8saudit/factory.js';
import { kafkaReceiverFactory } from './receivers/kafka/factory.js';
import { otlpReceiverFactory } from './receivers/otlp/factory.js';

/**
 * Every built-in component, one factory each, in the order messages list them. A new component is
 * a folder under receivers/, processors/, exporters/ or extensions/ and a line here.
 */
export const BUILTIN_FACTORIES = [
  otlpReceiverFactory,
  k8sauditReceiverFactory,
  auditlogReceiverFactory,
  kafkaReceiverFactory,
  memoryLimiterFactory,
  k8sauditRedactionFactory,
  correlatorProcessorFactory,
  correlatorExporterFactory,
  kafkaExporterFactory,
  storeExporterFactory,
  otlpExporterFactory,
  otlphttpExporterFactory,
  storeExtensionFactory,
  bearerTokenAuthExtensionFactory,
] as const;

/** A registry of the built-in components (a new one each call: callers may register more). */
export function builtinRegistry(): FactoryRegistry {
  return new FactoryRegistry(BUILTIN_FACTORIES);
}
