import type { KafkaClientOptions } from '@kube-correlate/kafka';
import type { Logger } from '@kube-correlate/telemetry';
import { parseDuration, type KafkaExporterConfig, type KafkaReceiverConfig } from './config.js';

/** The Kafka client settings of a kafka exporter or receiver: library, timeouts, TLS and SASL. */
export function kafkaClientOptions(c: KafkaExporterConfig | KafkaReceiverConfig, logger: Logger): KafkaClientOptions {
  const out: KafkaClientOptions = {
    brokers: c.brokers,
    clientId: c.client_id,
    client: c.client.library,
    connectionTimeoutMs: parseDuration(c.client.connect_timeout),
    requestTimeoutMs: parseDuration(c.client.request_timeout),
    logger: logger.child({ component: 'kafka', client: c.client.library }),
  };
  const tls = c.auth?.tls;
  if (tls) {
    out.tls = {
      ...(tls.ca_file ? { caFile: tls.ca_file } : {}),
      ...(tls.cert_file ? { certFile: tls.cert_file } : {}),
      ...(tls.key_file ? { keyFile: tls.key_file } : {}),
      insecureSkipVerify: tls.insecure_skip_verify,
      ...(tls.server_name_override ? { serverNameOverride: tls.server_name_override } : {}),
    };
  }
  const sasl = c.auth?.sasl;
  if (sasl) out.sasl = { mechanism: sasl.mechanism, username: sasl.username, password: sasl.password };
  return out;
}
