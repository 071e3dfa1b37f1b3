import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadConfigFile, Pipeline } from '@kube-correlate/collector';
import { buildRequestTree, type RequestTree } from '@kube-correlate/correlator';
import { generateDeploymentScenario } from '@kube-correlate/fixtures';
import { createKafkaClient, KAFKA_CLIENT_LIBRARIES, KafkaError, type KafkaClientOptions } from '@kube-correlate/kafka';
import { encodeTraceRequest, type Span } from '@kube-correlate/otlp';
import { PipelineMetrics, silentLogger } from '@kube-correlate/telemetry';
import { KAFKA_VERSIONS } from '../harness/kafka.js';
import { SECURE_SERVER_NAME, startSecureKafka, type SecureKafka } from '../harness/kafka-secure.js';
import { eventList, postJson, reported, tempDir, waitForScenarioTrees } from '../harness/index.js';

/**
 * Kafka over TLS with SASL (issue 14, item 6), on a real broker's SASL_SSL listener (and an SSL
 * listener that requires client certificates, for mutual TLS): the pipeline
 * (collector -> correlator -> store) works through it with the OpenTelemetry Collector's `auth.tls`
 * and `auth.sasl` keys, each stage on another client library and mechanism; a wrong password, a
 * plaintext client, an untrusted certificate and a wrong server name are refused, each with an error
 * that says which setting to look at. One broker (Kafka 4.x) for the whole file.
 */
const version = KAFKA_VERSIONS[KAFKA_VERSIONS.length - 1]!;
let kafka: SecureKafka;
const tmp = tempDir();
const running: Pipeline[] = [];

test.before(reported('setup', async () => {
  kafka = await startSecureKafka(version);
}));

test.after(async () => {
  for (const p of running.reverse()) await p.shutdown();
  await kafka?.stop();
  tmp.cleanup();
});

/** `auth:` YAML for a kafka exporter or receiver, the password from the environment. */
function auth(o: { mechanism: string; user: 'plain' | 'scram'; serverName?: boolean }): string {
  return `
    auth:
      tls:
        ca_file: ${kafka.caFile}${o.serverName ? `\n        server_name_override: ${SECURE_SERVER_NAME}` : ''}
      sasl:
        mechanism: ${o.mechanism}
        username: ${kafka.users[o.user].username}
        password: \${env:KAFKA_PASSWORD_${o.user.toUpperCase()}}`;
}

function pipeline(name: string, yaml: string, env: NodeJS.ProcessEnv): Pipeline {
  const file = join(tmp.dir, `${name}.yaml`);
  writeFileSync(file, yaml);
  return new Pipeline({ config: loadConfigFile(file, env), metrics: new PipelineMetrics(), logger: silentLogger() });
}

const env = () => ({
  KAFKA_BROKERS: kafka.bootstrap, KAFKA_PASSWORD_PLAIN: kafka.users.plain.password, KAFKA_PASSWORD_SCRAM: kafka.users.scram.password,
});

const collectorYaml = (a: string, client = 'platformatic') => `
receivers:
  otlp: { protocols: { http: { endpoint: 127.0.0.1:0 } } }
  k8saudit: { endpoint: 127.0.0.1:0 }
exporters:
  kafka:
    brokers: \${env:KAFKA_BROKERS}
    client: ${client}${a}
service:
  pipelines:
    traces: { receivers: [otlp], exporters: [kafka] }
    logs: { receivers: [k8saudit], exporters: [kafka] }
`;

test('collector, correlator and store through the SASL_SSL listener (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512; both libraries)', async () => {
  const e = env();
  const collector = pipeline('collector', collectorYaml(auth({ mechanism: 'SCRAM-SHA-512', user: 'scram' })), e);
  await collector.start();
  running.push(collector);
  const correlator = pipeline('correlator', `
receivers:
  kafka:
    brokers: \${env:KAFKA_BROKERS}
    client: kafkajs
    group_id: kc-secure-correlator${auth({ mechanism: 'SCRAM-SHA-256', user: 'scram', serverName: true })}
processors:
  correlator: { settle_after: 300ms }
exporters:
  kafka:
    brokers: \${env:KAFKA_BROKERS}
    client: platformatic
    traces: { topic: otlp_correlated }${auth({ mechanism: 'PLAIN', user: 'plain' })}
service:
  pipelines:
    traces: { receivers: [kafka], processors: [correlator], exporters: [kafka] }
  telemetry: { metrics: { address: 127.0.0.1:0 } }
`, e);
  await correlator.start();
  running.push(correlator);
  const store = pipeline('store', `
receivers:
  kafka:
    brokers: \${env:KAFKA_BROKERS}
    group_id: kc-secure-store
    traces: { topic: otlp_correlated }${auth({ mechanism: 'PLAIN', user: 'plain' })}
exporters:
  store: {}
extensions:
  store: { directory: ${tmp.dir}/store, endpoint: 127.0.0.1:0 }
service:
  extensions: [store]
  pipelines:
    traces: { receivers: [kafka], exporters: [store] }
`, e);
  await store.start();
  running.push(store);

  const scenario = generateDeploymentScenario({ seed: 41, start: new Date(Date.now() - 60_000) });
  const res = await fetch(`http://${collector.addresses.otlpHttp}/v1/traces`, { method: 'POST', headers: { 'content-type': 'application/x-protobuf' }, body: encodeTraceRequest(scenario.spans) });
  assert.is(res.status, 200, await res.text());
  assert.is((await postJson(`http://${collector.addresses.auditWebhook}/`, eventList(scenario.auditEvents))).status, 200);
  const all = new Map<string, Span>(scenario.spans.map((s) => [`${s.traceId}/${s.spanId}`, s]));
  // Every trace first, the caller's too (the apply request's link is followed to it when its tree is
  // read, and it settles on its own), and each request with every stage of its audit events.
  const trees = await waitForScenarioTrees(`http://${store.addresses.query}`, scenario, 90_000);
  for (const r of scenario.requests) {
    const got: RequestTree = trees[r.traceId]!;
    assert.equal(got, JSON.parse(JSON.stringify(buildRequestTree(r.traceId, r.spans, r.auditEvents, { resolveLink: (a, b) => all.get(`${a}/${b}`) }))), r.label);
  }
});

/** The error `admin()` (the first thing every stage does) fails with. */
async function refusal(o: Partial<KafkaClientOptions>): Promise<KafkaError> {
  const client = createKafkaClient({ brokers: [kafka.bootstrap], clientId: 'kc-refused', connectionTimeoutMs: 3000, requestTimeoutMs: 5000, ...o });
  let err: unknown;
  try {
    const a = await client.admin();
    // kafkajs connects with ApiVersions only, which a SASL listener answers before authentication:
    // the first real request is refused.
    try {
      await a.ensureTopics([{ name: 'kc_refused', partitions: 1 }]);
    } finally {
      await a.disconnect().catch(() => undefined);
    }
  } catch (e) {
    err = e;
  }
  assert.instance(err, KafkaError, `refused: ${String(err)}`);
  return err as KafkaError;
}

for (const client of KAFKA_CLIENT_LIBRARIES) {
  test(`${client}: a wrong password, a plaintext client, an untrusted certificate and a wrong server name are refused, each saying why`, async () => {
    const tls = { caFile: kafka.caFile };
    for (const mechanism of ['PLAIN', 'SCRAM-SHA-256', 'SCRAM-SHA-512'] as const) {
      const user = mechanism === 'PLAIN' ? kafka.users.plain : kafka.users.scram;
      const e = await refusal({ client, tls, sasl: { mechanism, username: user.username, password: `${user.password}-wrong` } });
      assert.match(e.message, /SASL authentication failed: check auth\.sasl\.username, password and mechanism/, `${mechanism}: ${e.message}`);
      assert.not.ok(e.retriable, 'a wrong password is not retried forever');
    }
    const plain = await refusal({ client });
    assert.match(plain.message, /the broker closed the connection without answering, as a TLS listener does to a plaintext client: if it uses TLS, set auth\.tls/, plain.message);
    const noSasl = await refusal({ client, tls });
    assert.match(noSasl.message, /as a SASL listener does to a client without credentials: if it uses SASL, set auth\.sasl/, noSasl.message);
    const sasl = { mechanism: 'PLAIN' as const, ...kafka.users.plain };
    const untrusted = await refusal({ client, tls: { caFile: kafka.otherCaFile }, sasl });
    assert.match(untrusted.message, /self-signed certificate in certificate chain.*TLS handshake failed: check auth\.tls\.ca_file/, untrusted.message);
    const wrongName = await refusal({ client, tls: { caFile: kafka.caFile, serverNameOverride: 'other.kc.test' }, sasl });
    assert.match(wrongName.message, /does not match certificate's altnames.*TLS handshake failed/, wrongName.message);
  });
}

for (const client of KAFKA_CLIENT_LIBRARIES) {
  test(`${client}: mutual TLS: auth.tls.cert_file and key_file accepted by a listener that requires a client certificate; none refused`, async () => {
    const ok = createKafkaClient({ client, brokers: [kafka.mtlsBootstrap], clientId: 'kc-mtls', tls: { caFile: kafka.caFile, certFile: kafka.clientCertFile, keyFile: kafka.clientKeyFile } });
    const admin = await ok.admin();
    try {
      await admin.ensureTopics([{ name: `kc_mtls_${client}`, partitions: 1 }]);
      const p = await ok.producer();
      await p.send([{ topic: `kc_mtls_${client}`, key: 'k', value: 'v' }]);
      await p.disconnect();
      assert.equal(await admin.endOffsets(`kc_mtls_${client}`), [1]);
    } finally {
      await admin.disconnect();
    }
    const e = await refusal({ client, brokers: [kafka.mtlsBootstrap], tls: { caFile: kafka.caFile } });
    assert.match(e.message, /cert_file and key_file|auth\.tls/, e.message);
  });
}

test('a collector with a wrong password does not start: the error names the exporter and the cause', async () => {
  const p = pipeline('collector-wrong', collectorYaml(auth({ mechanism: 'SCRAM-SHA-256', user: 'scram' }), 'kafkajs'), { ...env(), KAFKA_PASSWORD_SCRAM: 'not-the-password' });
  const err = await p.start().then(() => undefined, (e: Error) => e);
  await p.shutdown();
  assert.ok(err, 'start failed');
  assert.match(err!.message, /exporters\.kafka: .*SASL authentication failed/);
});

test.run();
