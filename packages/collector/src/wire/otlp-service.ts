/** OTLP/gRPC `TraceService/Export`, as the receiver serves it and the exporter calls it. */
export const EXPORT_PATH = '/opentelemetry.proto.collector.trace.v1.TraceService/Export';

/** Bytes in, bytes out: our own decoder and encoder run on the message, not grpc-js's. */
export const passthrough = (b: Buffer): Buffer => b;
