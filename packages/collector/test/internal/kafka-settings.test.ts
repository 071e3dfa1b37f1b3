import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { findComponent, loadConfigFile, parseConfig } from '../../src/index.js';
import type { KafkaExporterConfig } from '../../src/exporters/kafka/config.js';
import type { KafkaReceiverConfig } from '../../src/receivers/kafka/config.js';
import { COLLECTOR_CONFIG_DIR as configDir } from '../paths.js';

/** The kafka exporter's and receiver's connection settings: the client library, TLS and SASL. */
test('kafka client: platformatic by default, kafkajs by `client: kafkajs` or client.library, on the exporter and the receiver', () => {
  const kafka = (exp: string, rec = '') => `
receivers:
  kafka:
    brokers: a:1
    group_id: g
${rec}
processors: { correlator: {} }
exporters:
  kafka:
    brokers: a:1
${exp}
service: { pipelines: { traces: { receivers: [kafka], processors: [correlator], exporters: [kafka] } } }`;
  const parse = (exp: string, rec = '') => {
    const c = parseConfig(kafka(exp, rec), 'c.yaml', {});
    return { e: findComponent(c, 'exporters', 'kafka')!.config as KafkaExporterConfig, r: findComponent(c, 'receivers', 'kafka')!.config as KafkaReceiverConfig };
  };
  const d = parse('');
  assert.equal(d.e.client, { library: 'platformatic', connect_timeout: '3s', request_timeout: '10s' });
  assert.equal(d.r.client, { library: 'platformatic', connect_timeout: '3s', request_timeout: '10s' });
  const k = parse('    client: kafkajs', '    client: kafkajs');
  assert.is(k.e.client.library, 'kafkajs');
  assert.is(k.r.client.library, 'kafkajs');
  assert.equal(parse('    client: { library: kafkajs, connect_timeout: 1s }').e.client, { library: 'kafkajs', connect_timeout: '1s', request_timeout: '10s' });
  assert.equal(parse('    client: { request_timeout: 2s }').e.client, { library: 'platformatic', connect_timeout: '3s', request_timeout: '2s' });
  assert.throws(() => parse('    client: rdkafka'), /exporters\.kafka\.client\.library: expected platformatic \(@platformatic\/kafka, the default\) or kafkajs/);
  assert.throws(() => parse('', '    client: { library: kafkajs, linger: 1s }'), /receivers\.kafka\.client\.linger/);
  // The shipped configs take it from the environment.
  const shipped = loadConfigFile(configDir + 'kafka-correlator.yaml', { KAFKA_BROKERS: 'a:1', KC_KAFKA_CLIENT: 'kafkajs' });
  assert.is((findComponent(shipped, 'receivers', 'kafka')!.config as KafkaReceiverConfig).client.library, 'kafkajs');
  assert.is((findComponent(shipped, 'exporters', 'kafka')!.config as KafkaExporterConfig).client.library, 'kafkajs');
});

test('kafka auth: tls and sasl in the OpenTelemetry Collector\'s keys, ${env:...} for the password, checked', () => {
  const yaml = (auth: string) => `
receivers: { otlp: { protocols: { grpc: } } }
exporters:
  kafka:
    brokers: a:1
    auth:
${auth}
service: { pipelines: { traces: { receivers: [otlp], exporters: [kafka] } } }`;
  const parse = (auth: string, env: NodeJS.ProcessEnv = {}) => (findComponent(parseConfig(yaml(auth), 'c.yaml', env), 'exporters', 'kafka')!.config as KafkaExporterConfig).auth;
  assert.equal(parse(`      tls:
        ca_file: /etc/kafka/ca.pem
        cert_file: /etc/kafka/client.pem
        key_file: /etc/kafka/client.key
        server_name_override: kafka.internal
      sasl:
        mechanism: SCRAM-SHA-512
        username: kc
        password: \${env:KAFKA_PASSWORD}`, { KAFKA_PASSWORD: 's3cret' }), {
    tls: { ca_file: '/etc/kafka/ca.pem', cert_file: '/etc/kafka/client.pem', key_file: '/etc/kafka/client.key', insecure_skip_verify: false, server_name_override: 'kafka.internal' },
    sasl: { mechanism: 'SCRAM-SHA-512', username: 'kc', password: 's3cret' },
  });
  // A password with YAML's own characters comes through as it is (substitution after parsing).
  assert.is(parse('      sasl: { mechanism: PLAIN, username: a, password: "${env:KAFKA_PASSWORD}" }', { KAFKA_PASSWORD: 'p"a: {s}' })?.sasl?.password, 'p"a: {s}');
  assert.equal(parse('      tls:'), { tls: { insecure_skip_verify: false } }, 'tls: with no value: TLS with the system CAs');
  assert.equal(parse('      tls: { insecure_skip_verify: true }')?.tls?.insecure_skip_verify, true);
  assert.throws(() => parse('      sasl: { mechanism: GSSAPI, username: a, password: b }'), /exporters\.kafka\.auth\.sasl\.mechanism: expected PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512/);
  assert.throws(() => parse('      sasl: { mechanism: PLAIN, username: a }'), /exporters\.kafka\.auth\.sasl\.password/);
  assert.throws(() => parse('      tls: { cert_file: /c.pem }'), /exporters\.kafka\.auth\.tls: cert_file and key_file go together/);
  assert.throws(() => parse('      tls: { ca_pem: x }'), /exporters\.kafka\.auth\.tls\.ca_pem/);
  assert.throws(() => parse('      sasl: { mechanism: PLAIN, username: a, password: "${env:KAFKA_PASSWORD}" }'), /KAFKA_PASSWORD/);
});

test.run();
