import { z } from 'zod';
import { enabled, positiveInt, serverSettings } from '../../confmap/schema.js';

const MiB = 1024 * 1024;

export const OTLP_RECEIVER_DEFAULTS = {
  grpcEndpoint: '127.0.0.1:4317',
  grpcMaxRecvMsgSizeMiB: 4,
  httpEndpoint: '127.0.0.1:4318',
  httpMaxRequestBodySize: 20 * MiB,
} as const;

/** `receivers.otlp`: a protocol listed (even with no value, `grpc:`) is enabled with its defaults. */
export const otlpReceiverConfig = z.strictObject({
  protocols: z.strictObject({
    grpc: enabled(serverSettings(OTLP_RECEIVER_DEFAULTS.grpcEndpoint, {
      /** Larger messages get RESOURCE_EXHAUSTED. */
      max_recv_msg_size_mib: z.number().positive().default(OTLP_RECEIVER_DEFAULTS.grpcMaxRecvMsgSizeMiB),
    })),
    http: enabled(serverSettings(OTLP_RECEIVER_DEFAULTS.httpEndpoint, {
      /** Bytes, as sent and after decompression; larger gets 413. */
      max_request_body_size: positiveInt.default(OTLP_RECEIVER_DEFAULTS.httpMaxRequestBodySize),
    })),
  }),
});

export type OtlpReceiverConfig = z.output<typeof otlpReceiverConfig>;
