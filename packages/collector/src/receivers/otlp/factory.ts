import { receiverFactory } from '../../component/factory.js';
import { authenticatorProblems } from '../../extensions/bearertokenauth/factory.js';
import { ListenerSecurity } from '../../internal/security.js';
import { otlpReceiverConfig, type OtlpReceiverConfig } from './config.js';
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
    const log = logger.child({ component: 'receiver' });
    const common = { name: id, metrics, logger: log, consumer: next.spans };
    const { grpc, http } = config.protocols;
    const security = (protocol: 'grpc' | 'http', settings: NonNullable<OtlpReceiverConfig['protocols'][typeof protocol]>) =>
      new ListenerSecurity({ path: `receivers.${id}.protocols.${protocol}`, settings, metrics, logger: log });
    const listeners = [
      ...(grpc ? [{ address: 'otlpGrpc', receiver: new OtlpGrpcReceiver({ ...common, endpoint: grpc.endpoint, maxRecvMsgSizeMiB: grpc.max_recv_msg_size_mib, security: security('grpc', grpc) }) }] : []),
      ...(http ? [{ address: 'otlpHttp', receiver: new OtlpHttpReceiver({ ...common, endpoint: http.endpoint, maxRequestBodySize: http.max_request_body_size, security: security('http', http) }) }] : []),
    ];
    return {
      async start(host) {
        for (const l of listeners) {
          await l.receiver.start(host);
          host.reportAddress(l.address, l.receiver.address);
        }
      },
      async shutdown() {
        for (const l of [...listeners].reverse()) await l.receiver.shutdown();
      },
    };
  },
  checkService(self, service) {
    const { grpc, http } = (self.config as OtlpReceiverConfig).protocols;
    return [
      ...authenticatorProblems(self, service, `receivers.${self.id}.protocols.grpc.auth`, grpc?.auth?.authenticator),
      ...authenticatorProblems(self, service, `receivers.${self.id}.protocols.http.auth`, http?.auth?.authenticator),
    ];
  },
});
