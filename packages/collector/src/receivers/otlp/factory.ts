import { receiverFactory } from '../../component/factory.js';
import { otlpReceiverConfig } from './config.js';
import { OtlpGrpcReceiver } from './grpc.js';
import { OtlpHttpReceiver } from './http.js';

/** `receivers.otlp`: OTLP/gRPC and OTLP/HTTP trace listeners (see README.md). */
export const otlpReceiverFactory = receiverFactory({
  kind: 'receiver',
  type: 'otlp',
  signal: 'traces',
  emits: 'spans',
  config: otlpReceiverConfig,
  create({ id, metrics, logger }, config, next) {
    const common = { name: id, metrics, logger: logger.child({ component: 'receiver' }), consumer: next.spans };
    const { grpc, http } = config.protocols;
    const listeners = [
      ...(grpc ? [{ address: 'otlpGrpc', receiver: new OtlpGrpcReceiver({ ...common, endpoint: grpc.endpoint, maxRecvMsgSizeMiB: grpc.max_recv_msg_size_mib }) }] : []),
      ...(http ? [{ address: 'otlpHttp', receiver: new OtlpHttpReceiver({ ...common, endpoint: http.endpoint, maxRequestBodySize: http.max_request_body_size }) }] : []),
    ];
    return {
      async start(host) {
        for (const l of listeners) {
          await l.receiver.start();
          host.reportAddress(l.address, l.receiver.address);
        }
      },
      async shutdown() {
        for (const l of [...listeners].reverse()) await l.receiver.shutdown();
      },
    };
  },
});
