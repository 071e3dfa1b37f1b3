// Config: load, validate, override.
export { loadConfigFile, parseConfig } from './service/load.js';
export type { LoadOptions } from './service/load.js';
export { substituteEnv } from './confmap/env.js';
export { parseDuration, parseSize } from './confmap/schema.js';
export { ConfigError } from './confmap/problems.js';
export type { ConfigProblem } from './confmap/problems.js';
export { findComponent, withComponentConfig } from './service/config.js';
export type { CollectorConfig, ReceiverConfig, ProcessorConfig, ExporterConfig, ExtensionConfig } from './service/config.js';
export type { PipelineConfig } from './service/graph.js';

// The component model.
export { RAW_OTLP_REQUEST, downstreamOf } from './component/component.js';
export type { Component, Host, DataForm, SpanConsumer, AuditConsumer, KafkaSource, KafkaTopicsConsumer, KafkaTopicSink, Downstream } from './component/component.js';
export { receiverFactory, processorFactory, exporterFactory, extensionFactory } from './component/factory.js';
export type { Kind, Signal, CreateSettings, ComponentUse, ServiceView, ReceiverFactory, ProcessorFactory, ExporterFactory, ExtensionFactory, AnyFactory } from './component/factory.js';
export { FactoryRegistry } from './component/registry.js';
export { BUILTIN_FACTORIES, builtinRegistry } from './components.js';
export { Lifecycle, guarded } from './component/lifecycle.js';
export type { LifecycleStage } from './component/lifecycle.js';
export { PipelineError, RetryableError, PermanentError } from './component/errors.js';
export type { RetryableErrorOptions, PermanentErrorOptions } from './component/errors.js';
export { statusOf, grpcError, retryAfterHeaders, fromGrpcStatus, fromHttpStatus, fromConnectionError, fromKafkaError, parseRetryAfter, DEFAULT_RETRY_DELAY_MS } from './component/status.js';
export type { Refusal } from './component/status.js';

// The pipeline.
export { Pipeline } from './service/pipeline.js';
export type { PipelineOptions, PipelineAddresses } from './service/pipeline.js';

// Components, for tests and for use on their own.
export { EXPORT_PATH } from './wire/otlp-service.js';
export { OtlpGrpcReceiver } from './receivers/otlp/grpc.js';
export { OtlpHttpReceiver } from './receivers/otlp/http.js';
export type { OtlpReceiverConfig } from './receivers/otlp/config.js';
export { K8sAuditReceiver } from './receivers/k8saudit/receiver.js';
export type { K8sAuditReceiverConfig } from './receivers/k8saudit/config.js';
export { AuditLogReceiver } from './receivers/auditlog/receiver.js';
export type { AuditLogReceiverConfig } from './receivers/auditlog/config.js';
export type { KafkaReceiverConfig } from './receivers/kafka/config.js';
export type { CorrelatorProcessorConfig } from './processors/correlator/config.js';
export type { CorrelatorExporterConfig } from './exporters/correlator/config.js';
export { KafkaExporter } from './exporters/kafka/exporter.js';
export type { KafkaExporterConfig } from './exporters/kafka/config.js';
export { OtlpClient } from './exporters/otlp/client.js';
export type { OtlpClientOptions, ExportResult } from './exporters/otlp/client.js';
export { OtlpTraceExporter } from './exporters/otlp/exporter.js';
export type { OtlpExporterConfig, OtlpHttpExporterConfig } from './exporters/otlp/config.js';
export { StoreExtension } from './extensions/store/extension.js';
export type { StoreExtensionConfig } from './extensions/store/config.js';
