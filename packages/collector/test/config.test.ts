import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ConfigError, loadConfigFile, parseConfig, parseDuration, substituteEnv } from '../src/index.js';

const configDir = fileURLToPath(new URL('../../../../collector-config/', import.meta.url));

const minimal = (extra = '') => `
receivers:
  otlp:
    protocols:
      grpc:
  k8saudit:
exporters:
  correlator:
extensions:
  store:
service:
  extensions: [store]
  pipelines:
    traces: { receivers: [otlp], exporters: [correlator] }
    logs: { receivers: [k8saudit], exporters: [correlator] }
${extra}`;

test('every shipped config in collector-config/ loads', () => {
  const files = readdirSync(configDir).filter((f) => f.endsWith('.yaml'));
  assert.ok(files.includes('embedded.yaml'));
  assert.ok(files.includes('embedded-jaeger.yaml') && files.includes('kafka-jaeger.yaml'));
  for (const f of files) loadConfigFile(configDir + f, { KAFKA_BROKERS: '127.0.0.1:9092,127.0.0.2:9092', JAEGER_OTLP_ENDPOINT: 'jaeger-collector:4317' });
});

test('embedded-jaeger.yaml and kafka-jaeger.yaml export to ${env:JAEGER_OTLP_ENDPOINT}, which they require', () => {
  const env = { JAEGER_OTLP_ENDPOINT: 'jaeger-collector:4317', KAFKA_BROKERS: 'k:9092' };
  const embedded = loadConfigFile(configDir + 'embedded-jaeger.yaml', env);
  const e = embedded.exporters.find((x) => x.type === 'otlp');
  assert.ok(e && e.type === 'otlp');
  assert.is(e.name, 'otlp/jaeger');
  assert.is(e.config.endpoint, 'jaeger-collector:4317');
  assert.is(e.config.tls.insecure, true);
  assert.is(e.config.retry_on_failure.max_elapsed_time, '300s');
  assert.ok(embedded.correlator, 'with the embedded correlator');
  assert.equal(embedded.receivers.map((r) => r.exporters), [['correlator', 'otlp/jaeger'], ['correlator', 'otlp/jaeger']]);
  const kafka = loadConfigFile(configDir + 'kafka-jaeger.yaml', env);
  assert.equal(kafka.exporters.map((x) => x.type).sort(), ['otlp', 'store']);
  assert.is(kafka.receivers[0]!.type, 'kafka');
  assert.throws(() => loadConfigFile(configDir + 'embedded-jaeger.yaml', {}), /environment variable JAEGER_OTLP_ENDPOINT is not set/);
});

test('otlp exporter object_sets: window (1h) and max_spans_per_trace (2000), from the environment in the shipped configs, checked', () => {
  const env = { JAEGER_OTLP_ENDPOINT: 'jaeger-collector:4317', KAFKA_BROKERS: 'k:9092' };
  for (const f of ['embedded-jaeger.yaml', 'kafka-jaeger.yaml']) {
    const sets = (c: ReturnType<typeof loadConfigFile>) => {
      const e = c.exporters.find((x) => x.type === 'otlp');
      assert.ok(e && e.type === 'otlp');
      return e.config.object_sets;
    };
    assert.equal(sets(loadConfigFile(configDir + f, env)), { settle_after: '5s', max_delay: '1m', wait_for_owners: '2m', window: '1h', max_spans_per_trace: 2000 }, f);
    const tuned = sets(loadConfigFile(configDir + f, { ...env, KC_OBJSET_WINDOW: '10m', KC_OBJSET_MAX_SPANS_PER_TRACE: '500', KC_OBJSET_SETTLE_AFTER: '1s', KC_OBJSET_WAIT_FOR_OWNERS: '3s' }));
    assert.equal([tuned.window, tuned.max_spans_per_trace, tuned.settle_after, tuned.wait_for_owners], ['10m', 500, '1s', '3s'], f);
  }
  const withSets = (sets: string) => minimal().replace('exporters:\n', `exporters:\n  otlp/j: { endpoint: "j:4317", object_sets: ${sets} }\n`).replace(/exporters: \[correlator\]/g, 'exporters: [correlator, otlp/j]');
  assert.throws(() => parseConfig(withSets('{ window: 500ms }'), 'm.yaml', {}), /exporters\.otlp\/j\.object_sets\.window: object_sets\.window must be at least 1s/);
  assert.throws(() => parseConfig(withSets('{ window: hourly }'), 'm.yaml', {}), /object_sets\.window: expected a duration/);
  assert.throws(() => parseConfig(withSets('{ max_spans_per_trace: 5 }'), 'm.yaml', {}), /object_sets\.max_spans_per_trace: object_sets\.max_spans_per_trace must be at least 10/);
  assert.throws(() => parseConfig(withSets('{ windows: 1h }'), 'm.yaml', {}), /object_sets\.windows: unknown key/);
});

test('otlp exporter: endpoint checked; needs the correlator or store exporter; at most one', () => {
  const withOtlp = (exporter: string, list = 'correlator, otlp/j') => minimal().replace('exporters:\n', `exporters:\n  ${exporter}\n`).replace(/exporters: \[correlator\]/g, `exporters: [${list}]`);
  const ok = parseConfig(withOtlp('otlphttp/j: { endpoint: "http://jaeger:4318" }', 'correlator, otlphttp/j'), 'm.yaml', {});
  assert.is(ok.exporters.find((x) => x.type === 'otlphttp')?.config.endpoint, 'http://jaeger:4318');
  assert.throws(() => parseConfig(withOtlp('otlp/j: { endpoint: "jaeger" }'), 'm.yaml', {}), /m\.yaml: exporters\.otlp\/j\.endpoint: expected host:port/);
  assert.throws(() => parseConfig(withOtlp('otlphttp/j: { endpoint: "jaeger:4318" }', 'correlator, otlphttp/j'), 'm.yaml', {}), /expected a URL/);
  assert.throws(() => parseConfig(withOtlp('otlp/j: { endpoint: "j:4317", retry_on_failure: { max_elapsed: 1s } }'), 'm.yaml', {}), /retry_on_failure\.max_elapsed: unknown key/);
  assert.throws(() => parseConfig(withOtlp('otlp/j: { endpoint: "j:4317" }\n  otlp/k: { endpoint: "k:4317" }', 'correlator, otlp/j, otlp/k'), 'm.yaml', {}), /only one otlp\/otlphttp exporter/);
  const alone = minimal().replace('  correlator:\n', '  otlp/j: { endpoint: "j:4317" }\n').replace(/exporters: \[correlator\]/g, 'exporters: [otlp/j]');
  assert.throws(() => parseConfig(alone, 'm.yaml', {}), /exporters\.otlp\/j: the otlp exporter sends correlated trees: list it in a pipeline with the correlator exporter/);
});

test('embedded.yaml gives the default ports and store', () => {
  const c = loadConfigFile(configDir + 'embedded.yaml', {});
  const otlp = c.receivers.find((r) => r.type === 'otlp');
  assert.ok(otlp && otlp.type === 'otlp');
  assert.is(otlp.config.protocols.grpc?.endpoint, '127.0.0.1:4317');
  assert.is(otlp.config.protocols.grpc?.max_recv_msg_size_mib, 4);
  assert.is(otlp.config.protocols.http?.endpoint, '127.0.0.1:4318');
  assert.is(otlp.config.protocols.http?.max_request_body_size, 20 * 1024 * 1024);
  const audit = c.receivers.find((r) => r.type === 'k8saudit');
  assert.is(audit?.type === 'k8saudit' && audit.config.endpoint, '127.0.0.1:4319');
  assert.equal(c.store, { directory: './data', endpoint: '127.0.0.1:4320' });
  assert.is(c.correlator?.settle_after, '5s');
  assert.is(c.correlator?.api_spec, '', 'KC_API_SPEC unset: no API operation names');
  assert.is(loadConfigFile(configDir + 'embedded.yaml', { KC_API_SPEC: '/x/swagger.json' }).correlator?.api_spec, '/x/swagger.json');
});

test('defaults fill what a minimal config leaves out; http is off unless listed', () => {
  const c = parseConfig(minimal(), 'mem.yaml', {});
  const otlp = c.receivers[0]!;
  assert.ok(otlp.type === 'otlp');
  assert.is(otlp.config.protocols.grpc?.endpoint, '127.0.0.1:4317');
  assert.is(otlp.config.protocols.http, undefined);
});

test('unknown keys are errors naming the key and the file', () => {
  const bad = minimal().replace('      grpc:\n', '      grpc:\n        endpiont: 1.2.3.4:1\n');
  assert.throws(() => parseConfig(bad, 'my.yaml', {}), (e: Error) => e instanceof ConfigError && e.message === 'my.yaml: receivers.otlp.protocols.grpc.endpiont: unknown key');
  assert.throws(() => parseConfig(minimal('bogus: 1'), 'my.yaml', {}), /my\.yaml: bogus: unknown key/);
});

test('bad values name the key and what was expected', () => {
  assert.throws(() => parseConfig(minimal().replace('  correlator:\n', '  correlator:\n    settle_after: soon\n'), 'c.yaml', {}), /c\.yaml: exporters\.correlator\.settle_after: expected a duration/);
  assert.throws(() => parseConfig(minimal().replace('  k8saudit:\n', '  k8saudit:\n    endpoint: nope\n'), 'c.yaml', {}), /receivers\.k8saudit\.endpoint: expected host:port/);
  assert.throws(() => parseConfig(minimal().replace('[otlp]', '[otlp/missing]'), 'c.yaml', {}), /service\.pipelines\.traces\.receivers\[0\]: receiver "otlp\/missing" is not defined/);
  assert.throws(() => parseConfig(minimal().replace('receivers: [k8saudit]', 'receivers: [otlp]'), 'c.yaml', {}), /receiver "otlp" produces traces, not logs/);
  assert.throws(() => parseConfig(minimal().replace('  otlp:', '  zipkin:').replace('[otlp]', '[zipkin]'), 'c.yaml', {}), /unknown receiver type "zipkin"/);
  assert.throws(() => parseConfig(minimal().replace('  extensions: [store]\n', ''), 'c.yaml', {}), /add a store extension/);
  assert.throws(() => parseConfig('receivers: [', 'c.yaml', {}), /c\.yaml: invalid YAML/);
});

test('kafka-collector.yaml: kafka exporter with brokers from the environment, routed per pipeline', () => {
  const c = loadConfigFile(configDir + 'kafka-collector.yaml', { KAFKA_BROKERS: 'k1:9092, k2:9093' });
  const k = c.exporters.find((e) => e.type === 'kafka');
  assert.ok(k && k.type === 'kafka');
  assert.equal(k.config.brokers, ['k1:9092', 'k2:9093']);
  assert.is(k.config.traces.topic, 'otlp_spans');
  assert.is(k.config.logs.topic, 'k8s_audit');
  assert.is(k.config.producer.required_acks, -1);
  assert.equal(c.receivers.map((r) => [r.name, r.exporters]), [['otlp', ['kafka']], ['k8saudit', ['kafka']]]);
  assert.is(c.correlator, undefined);
  assert.is(c.metricsAddress, '0.0.0.0:8888');
  assert.throws(() => loadConfigFile(configDir + 'kafka-collector.yaml', {}), /environment variable KAFKA_BROKERS is not set/);
  assert.throws(() => loadConfigFile(configDir + 'kafka-collector.yaml', { KAFKA_BROKERS: 'nohost' }), /exporters\.kafka\.brokers: broker "nohost" is not host:port/);
});

test('kafka exporter refuses acks other than all', () => {
  const yaml = minimal().replace('  correlator:\n', '  correlator:\n  kafka:\n    brokers: a:1\n    producer: { required_acks: 1 }\n');
  assert.throws(() => parseConfig(yaml, 'c.yaml', {}), /exporters\.kafka\.producer\.required_acks: must be -1/);
});

test('named components type/name', () => {
  const c = parseConfig(minimal().replace('  k8saudit:\n', '  k8saudit/cluster-a:\n    endpoint: 0.0.0.0:9000\n').replace('[k8saudit]', '[k8saudit/cluster-a]'), 'c.yaml', {});
  assert.equal(c.receivers.map((r) => r.name), ['otlp', 'k8saudit/cluster-a']);
});

test('${env:NAME} substitution, with defaults, and a clear error when unset', () => {
  assert.is(substituteEnv('a ${env:X} b ${env:Y:-dflt}', { X: '1' }, 'f'), 'a 1 b dflt');
  assert.throws(() => substituteEnv('${env:KAFKA_BROKERS}', {}, 'k.yaml'), /k\.yaml: environment variable KAFKA_BROKERS is not set/);
  const c = parseConfig(minimal().replace('  store:\n', '  store:\n    directory: ${env:DIR}\n'), 'c.yaml', { DIR: '/var/lib/kc' });
  assert.is(c.store?.directory, '/var/lib/kc');
});

test('durations', () => {
  assert.is(parseDuration('250ms'), 250);
  assert.is(parseDuration('5s'), 5000);
  assert.is(parseDuration('1.5m'), 90000);
  assert.throws(() => parseDuration('5'), /not a duration/);
});

test.run();
