import { readdirSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ConfigError, findComponent, loadConfigFile, parseConfig, parseDuration, parseSize, substituteEnv, type CollectorConfig } from '../../src/index.js';
import { COLLECTOR_CONFIG_DIR as configDir } from '../paths.js';

const correlatorOf = (c: CollectorConfig) => findComponent(c, 'exporters', 'correlator')?.config;
const storeOf = (c: CollectorConfig) => findComponent(c, 'extensions', 'store')?.config;

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

test('shipped configs: memory_limiter first in every pipeline that takes spans or audit events, k8saudit_redaction next in every logs pipeline', () => {
  const env = { KAFKA_BROKERS: 'k:9092', JAEGER_OTLP_ENDPOINT: 'jaeger-collector:4317' };
  for (const f of ['embedded.yaml', 'embedded-jaeger.yaml', 'kafka-collector.yaml']) {
    const c = loadConfigFile(configDir + f, env);
    const pipelines = Object.fromEntries(c.pipelines.map((p) => [p.id, p.processors]));
    assert.equal(pipelines, { traces: ['memory_limiter'], 'logs/audit': ['memory_limiter', 'k8saudit_redaction'] }, f);
    assert.equal(c.processors.find((p) => p.type === 'memory_limiter')?.config, { check_interval: '1s', limit_percentage: 80, spike_limit_percentage: 20 }, f);
    assert.equal(c.processors.find((p) => p.type === 'k8saudit_redaction')?.config, { default_rules: true, rules: [] }, f);
  }
});

test('embedded-jaeger.yaml and kafka-jaeger.yaml export to ${env:JAEGER_OTLP_ENDPOINT}, which they require', () => {
  const env = { JAEGER_OTLP_ENDPOINT: 'jaeger-collector:4317', KAFKA_BROKERS: 'k:9092' };
  const embedded = loadConfigFile(configDir + 'embedded-jaeger.yaml', env);
  const e = embedded.exporters.find((x) => x.type === 'otlp');
  assert.ok(e && e.type === 'otlp');
  assert.is(e.name, 'otlp/jaeger');
  assert.is(e.config.endpoint, 'jaeger-collector:4317');
  assert.is(e.config.tls?.insecure, true);
  assert.is(e.config.retry_on_failure.max_elapsed_time, '300s');
  assert.ok(correlatorOf(embedded), 'with the embedded correlator');
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
  assert.equal(storeOf(c), { directory: './data', endpoint: '127.0.0.1:4320', retention: '168h', max_size: '2GiB', sync: 'normal' });
  assert.is(parseSize(storeOf(c)!.max_size), 2 * 1024 ** 3);
  assert.is(storeOf(loadConfigFile(configDir + 'embedded.yaml', { KC_STORE_MAX_SIZE: '512MiB' }))?.max_size, '512MiB');
  assert.is(correlatorOf(c)?.settle_after, '5s');
  assert.is(correlatorOf(c)?.api_spec, '', 'KC_API_SPEC unset: no API operation names');
  assert.is(correlatorOf(loadConfigFile(configDir + 'embedded.yaml', { KC_API_SPEC: '/x/swagger.json' }))?.api_spec, '/x/swagger.json');
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
  assert.is(correlatorOf(c), undefined);
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
  assert.is(storeOf(c)?.directory, '/var/lib/kc');
});

test('an environment value is substituted after parsing: YAML syntax in it stays a plain string', () => {
  for (const dir of ['x": {"y', '/data\nbogus: 1', '[a, b]', '{ directory: /etc }', 'a: b', '- x', '#not a comment', "'quoted'", '${env:OTHER}']) {
    const c = parseConfig(minimal().replace('  store:\n', '  store:\n    directory: ${env:DIR}\n'), 'c.yaml', { DIR: dir, OTHER: 'nope' });
    assert.is(storeOf(c)?.directory, dir, JSON.stringify(dir));
  }
  // Inside a longer string too; and a key is never substituted.
  const c = parseConfig(minimal().replace('  store:\n', '  store:\n    directory: "/var/${env:DIR}/kc"\n'), 'c.yaml', { DIR: '": {"\n  endpoint: 1.2.3.4:5' });
  assert.is(storeOf(c)?.directory, '/var/": {"\n  endpoint: 1.2.3.4:5/kc');
  assert.is(storeOf(c)?.endpoint, '127.0.0.1:4320', 'the value added no key');
  assert.throws(() => parseConfig(minimal().replace('  store:\n', '  store:\n    ${env:KEY}: /x\n'), 'c.yaml', { KEY: 'directory' }), /extensions\.store\.\$\{env:KEY\}: unknown key/);
});

test('a whole ${env:...} value is read as a boolean or a number where the key wants one, never as a map', () => {
  const yaml = minimal()
    .replace('      grpc:\n', '      grpc:\n        max_recv_msg_size_mib: ${env:MIB}\n')
    .replace('  correlator:\n', '  correlator:\n    max_traces_in_flight: ${env:TRACES:-100}\n');
  const c = parseConfig(yaml, 'c.yaml', { MIB: '16' });
  const otlp = c.receivers[0]!;
  assert.ok(otlp.type === 'otlp');
  assert.is(otlp.config.protocols.grpc?.max_recv_msg_size_mib, 16);
  assert.is(correlatorOf(c)?.max_traces_in_flight, 100);
  const jaeger = loadConfigFile(configDir + 'embedded-jaeger.yaml', { JAEGER_OTLP_ENDPOINT: 'j:4317', JAEGER_OTLP_INSECURE: 'false' });
  const e = findComponent(jaeger, 'exporters', 'otlp');
  assert.is(e?.config.tls?.insecure, false);
  assert.is(findComponent(loadConfigFile(configDir + 'embedded-jaeger.yaml', { JAEGER_OTLP_ENDPOINT: 'j:4317' }), 'exporters', 'otlp')?.config.tls?.insecure, true);
  assert.throws(() => parseConfig(yaml, 'c.yaml', { MIB: '{ a: 1 }' }), /c\.yaml: receivers\.otlp\.protocols\.grpc\.max_recv_msg_size_mib: Invalid input: expected number, received string/);
  assert.throws(() => parseConfig(yaml, 'c.yaml', { MIB: '16', TRACES: 'many' }), /exporters\.correlator\.max_traces_in_flight: Invalid input: expected number, received string/);
  // A string key keeps the text, also when it looks like a number.
  assert.is(storeOf(parseConfig(minimal().replace('  store:\n', '  store:\n    directory: ${env:DIR}\n'), 'c.yaml', { DIR: '0755' }))?.directory, '0755');
});

test('${env:...} in a comment is not a reference', () => {
  assert.ok(parseConfig(minimal('# set ${env:NOT_SET} to ...'), 'c.yaml', {}));
});

test('every problem is reported at once, each naming the file and the key', () => {
  const yaml = `
receivers:
  otlp:
    protocols:
      grpc:
        endpiont: 1.2.3.4:1
  zipkin:
  k8saudit:
    endpoint: nope
exporters:
  correlator:
    settle_after: soon
    max_spans_per_trace: -1
  kafka:
    brokers: \${env:KAFKA_BROKERS}
    producer: { required_acks: 1 }
extensions:
  store:
    endpoint: \${env:QUERY}
service:
  extensions: [store, nothere]
  pipelines:
    traces: { receivers: [otlp, otlp/missing], exporters: [correlator, kafka/missing] }
    logs: { receivers: [k8saudit, otlp], exporters: [correlator] }
    metrics: { receivers: [otlp], exporters: [correlator] }
  bogus: 1
`;
  let err: ConfigError | undefined;
  try {
    parseConfig(yaml, 'all.yaml', { QUERY: 'no-port' });
  } catch (e) {
    err = e as ConfigError;
  }
  assert.instance(err, ConfigError);
  const lines = err!.message.split('\n');
  const want = [
    'all.yaml: receivers.otlp.protocols.grpc.endpiont: unknown key',
    'all.yaml: receivers.zipkin: unknown receiver type "zipkin" (known: otlp, k8saudit, auditlog, kafka)',
    'all.yaml: receivers.k8saudit.endpoint: expected host:port, e.g. "0.0.0.0:4317"',
    'all.yaml: exporters.correlator.settle_after: expected a duration such as "250ms", "5s" or "1m"',
    'all.yaml: exporters.correlator.max_spans_per_trace: Too small: expected number to be >0',
    'all.yaml: exporters.kafka.brokers: environment variable KAFKA_BROKERS is not set (referenced as ${env:KAFKA_BROKERS})',
    'all.yaml: exporters.kafka.producer.required_acks: must be -1 (all in-sync replicas): receivers acknowledge only what is durable',
    'all.yaml: extensions.store.endpoint: expected host:port, e.g. "0.0.0.0:4317"',
    'all.yaml: service.bogus: unknown key',
    'all.yaml: service.extensions[1]: extension "nothere" is not defined under extensions',
    'all.yaml: service.pipelines.traces.receivers[1]: receiver "otlp/missing" is not defined under receivers',
    'all.yaml: service.pipelines.traces.exporters[1]: exporter "kafka/missing" is not defined under exporters',
    'all.yaml: service.pipelines.logs.receivers[1]: receiver "otlp" produces traces, not logs',
    'all.yaml: service.pipelines.metrics: pipeline type must be traces or logs, got "metrics"',
  ];
  for (const w of want) assert.ok(lines.includes(w), `missing: ${w}\ngot:\n${err!.message}`);
  assert.is(lines.length, want.length, err!.message);
  assert.is(err!.problems.length, want.length);
  assert.ok(err!.problems.every((p) => p.path && p.message));
});

test('rules between components and pipelines are reported with the rest', () => {
  const yaml = `
receivers:
  otlp: { protocols: { grpc: } }
  kafka: { brokers: k:9092, group_id: g }
processors:
  correlator:
exporters:
  correlator:
  correlator/2:
  store: {}
  otlp/a: { endpoint: "a:4317" }
  otlp/b: { endpoint: "b:4317" }
service:
  pipelines:
    traces: { receivers: [otlp], exporters: [correlator, otlp/a, otlp/b] }
    traces/store: { receivers: [otlp], exporters: [store] }
    traces/kafka: { receivers: [kafka], exporters: [correlator] }
    traces/proc: { receivers: [kafka], processors: [correlator], exporters: [store] }
`;
  const err = (() => {
    try {
      parseConfig(yaml, 'r.yaml', {});
    } catch (e) {
      return e as ConfigError;
    }
    throw new Error('expected a ConfigError');
  })();
  const want = [
    'r.yaml: service.pipelines.traces/store: exporters.store does not take spans from receivers.otlp (what takes spans: the correlator exporter, the kafka exporter)',
    'r.yaml: service.pipelines.traces/kafka: exporters.correlator does not take Kafka topics from receivers.kafka (what takes Kafka topics: the correlator processor, the store exporter)',
    'r.yaml: service.pipelines.traces/proc: exporters.store does not take Kafka output from processors.correlator (what takes Kafka output: the kafka exporter)',
    'r.yaml: exporters.correlator/2: only one correlator exporter may be configured',
    'r.yaml: exporters.correlator: writes to the embedded store: add a store extension and list it in service.extensions',
    'r.yaml: exporters.store: writes to the embedded store: add a store extension and list it in service.extensions',
    "r.yaml: exporters.otlp/b: only one otlp/otlphttp exporter may be used (they share the store's export queue)",
  ];
  const lines = err.message.split('\n');
  for (const w of want) assert.ok(lines.includes(w), `missing: ${w}\ngot:\n${err.message}`);
  assert.is(lines.length, want.length, err.message);
});

test('a pipeline that hands its data to nothing is an error', () => {
  const alone = minimal().replace('  correlator:\n', '  otlp/j: { endpoint: "j:4317" }\n').replace(/exporters: \[correlator\]/g, 'exporters: [otlp/j]');
  assert.throws(() => parseConfig(alone, 'm.yaml', {}), /m\.yaml: service\.pipelines\.traces: nothing takes the spans of receivers\.otlp \(what takes spans: the correlator exporter, the kafka exporter\)/);
});

test('durations', () => {
  assert.is(parseDuration('250ms'), 250);
  assert.is(parseDuration('5s'), 5000);
  assert.is(parseDuration('1.5m'), 90000);
  assert.throws(() => parseDuration('5'), /not a duration/);
});

test.run();
