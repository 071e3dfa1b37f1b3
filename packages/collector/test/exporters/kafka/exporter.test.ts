import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { makeSpan } from '@kube-correlate/fixtures';
import { KafkaError, type KafkaClient, type OutgoingMessage } from '@kube-correlate/kafka';
import * as grpc from '@grpc/grpc-js';
import { decodeTraceRequest } from '@kube-correlate/otlp';
import { PipelineMetrics, silentLogger } from '@kube-correlate/telemetry';
import { EXPORT_PATH, findComponent, loadConfigFile, OtlpGrpcReceiver, OtlpHttpReceiver, parseConfig, RetryableError } from '../../../src/index.js';
import { KafkaExporter } from '../../../src/exporters/kafka/exporter.js';
import { KAFKA_EXPORTER_DEFAULTS } from '../../../src/exporters/kafka/config.js';
import { testdata } from '../../paths.js';

/** An in-process fake client (unit test only; the real broker is in test/e2e/kafka-*.test.ts). */
function fakeClient(behaviour: { delayMs?: number; fail?: boolean; adminError?: Error } = {}) {
  const sends: OutgoingMessage[][] = [];
  const client: KafkaClient = {
    producer: async () => ({
      send: async (m) => {
        if (behaviour.delayMs) await new Promise((r) => setTimeout(r, behaviour.delayMs));
        if (behaviour.fail) throw new Error('broker down');
        sends.push(m);
      },
      disconnect: async () => {},
    }),
    admin: async () => {
      if (behaviour.adminError) throw behaviour.adminError;
      return { ensureTopics: async () => [], partitionCount: async () => 8, endOffsets: async () => [], committedOffsets: async () => [], disconnect: async () => {} };
    },
    consumer: async () => {
      throw new Error('not used');
    },
  };
  return { client, sends };
}

function exporterConfig(extra: string) {
  const yaml = `
receivers: { otlp: { protocols: { grpc: } } }
exporters:
  kafka:
    brokers: 127.0.0.1:9092
${extra}
service: { pipelines: { traces: { receivers: [otlp], exporters: [kafka] } } }`;
  const c = parseConfig(yaml, 'test.yaml', {}).exporters[0]!;
  if (c.type !== 'kafka') throw new Error('expected kafka');
  return c.config;
}

test('testdata/config.yaml: defaults fill a config of brokers only; every key can be set', () => {
  const c = loadConfigFile(testdata('exporters/kafka'), {});
  const [min, all] = c.exporters.map((e) => (e.type === 'kafka' ? e.config : assert.unreachable('kafka exporters only')));
  assert.equal(min, {
    brokers: ['127.0.0.1:9092'], client_id: KAFKA_EXPORTER_DEFAULTS.clientId,
    traces: { topic: 'otlp_spans', encoding: 'otlp_proto' }, logs: { topic: 'k8s_audit', encoding: 'k8s_audit_json' },
    partition_traces_by_id: true,
    producer: { required_acks: -1, compression: 'none', linger: '0ms', max_batch_messages: 500 },
    client: { library: 'platformatic', connect_timeout: '3s', request_timeout: '10s' },
    sending_queue: { queue_size: 1000 }, timeout: '5s', topics: { create: true, partitions: 8 },
  });
  assert.equal(all, {
    brokers: ['k1:9092', 'k2:9093'], client_id: 'collector-a',
    traces: { topic: 'spans_a', encoding: 'otlp_proto' }, logs: { topic: 'audit_a', encoding: 'k8s_audit_json' },
    partition_traces_by_id: true,
    producer: { required_acks: -1, compression: 'gzip', linger: '5ms', max_batch_messages: 100 },
    client: { library: 'kafkajs', connect_timeout: '1s', request_timeout: '2s' },
    auth: {
      tls: { ca_file: '/etc/kafka/ca.crt', cert_file: '/etc/kafka/client.crt', key_file: '/etc/kafka/client.key', insecure_skip_verify: false, server_name_override: 'kafka.internal' },
      sasl: { mechanism: 'SCRAM-SHA-512', username: 'collector', password: 'secret' },
    },
    sending_queue: { queue_size: 10 }, timeout: '3s', topics: { create: false, partitions: 4 },
  });
  assert.is(findComponent(c, 'exporters', 'kafka')?.name, 'kafka');
});

test('one message per trace, keyed by trace id, OTLP protobuf; audit events keyed by auditID', async () => {
  const { client, sends } = fakeClient();
  const e = new KafkaExporter({ name: 'kafka', config: exporterConfig(''), metrics: new PipelineMetrics(), logger: silentLogger(), client });
  await e.start();
  await e.consumeSpans([makeSpan({ trace: 1, id: 1, name: 'a' }), makeSpan({ trace: 2, id: 1, name: 'b' }), makeSpan({ trace: 1, id: 2, parent: 1, name: 'c' })]);
  assert.is(sends.length, 1);
  assert.equal(sends[0]!.map((m) => [m.topic, m.key]), [['otlp_spans', '0'.repeat(31) + '1'], ['otlp_spans', '0'.repeat(31) + '2']]);
  assert.equal(decodeTraceRequest(sends[0]![0]!.value as Uint8Array).spans.map((s) => s.name), ['a', 'c']);
  await e.consumeAuditEvents([{ auditID: 'x'.repeat(70), stage: 'RequestReceived', level: 'Metadata', verb: 'get', requestURI: '/', user: {}, requestReceivedTimestamp: '', stageTimestamp: '' }]);
  assert.is(sends[1]![0]!.topic, 'k8s_audit');
  assert.is(sends[1]![0]!.key, 'x'.repeat(64), 'keyed by the 64-byte form spans carry');
  await e.shutdown();
});

test('producer.linger gathers concurrent requests into one produce call, and every caller waits for it', async () => {
  const { client, sends } = fakeClient();
  const e = new KafkaExporter({ name: 'kafka', config: exporterConfig('    producer: { linger: 30ms, max_batch_messages: 10 }'), metrics: new PipelineMetrics(), logger: silentLogger(), client });
  await e.start();
  await Promise.all([1, 2, 3].map((i) => e.consumeSpans([makeSpan({ trace: i, id: 1, name: `s${i}` })])));
  assert.is(sends.length, 1);
  assert.is(sends[0]!.length, 3);
  await Promise.all(Array.from({ length: 25 }, (_, i) => e.consumeSpans([makeSpan({ trace: 100 + i, id: 1, name: 'x' })])));
  assert.equal(sends.slice(1).map((s) => s.length), [10, 10, 5], 'a full batch goes at once');
  await e.shutdown();
});

test('Kafka failing or slow: retryable errors, counted; a full queue refuses at once', async () => {
  const metrics = new PipelineMetrics();
  const down = new KafkaExporter({ name: 'kafka', config: exporterConfig(''), metrics, logger: silentLogger(), client: fakeClient({ fail: true }).client });
  await down.consumeSpans([makeSpan({ trace: 1, id: 1, name: 'a' })]).then(() => assert.unreachable(), (err: unknown) => {
    assert.instance(err, RetryableError);
    assert.match((err as Error).message, 'Kafka unavailable: broker down');
    assert.equal([(err as RetryableError).delayMs, (err as RetryableError).reason], [1000, 'unavailable'], 'retry in 1 s (Retry-After: 1)');
  });
  const slow = new KafkaExporter({ name: 'slow', config: exporterConfig('    timeout: 50ms\n    sending_queue: { queue_size: 1 }'), metrics, logger: silentLogger(), client: fakeClient({ delayMs: 200 }).client });
  const first = slow.consumeSpans([makeSpan({ trace: 1, id: 1, name: 'a' })]);
  await slow.consumeSpans([makeSpan({ trace: 2, id: 1, name: 'b' })]).then(() => assert.unreachable(), (err: unknown) => {
    assert.match((err as Error).message, 'queue is full');
    assert.equal([(err as RetryableError).delayMs, (err as RetryableError).reason], [2000, 'queue_full'], 'retry in 2 s');
  });
  await first.then(() => assert.unreachable(), (err: unknown) => {
    assert.match((err as Error).message, 'did not acknowledge within 50ms');
    assert.equal([(err as RetryableError).delayMs, (err as RetryableError).reason], [1000, 'timeout']);
  });
  const failed = (await metrics.registry.getMetricsAsJSON()).find((m) => m.name === 'kube_correlate_exporter_failed_total')!;
  const v = (exporter: string, reason: string) => failed.values.find((x) => x.labels.exporter === exporter && x.labels.reason === reason)?.value;
  assert.is(v('kafka', 'unavailable'), 1);
  assert.is(v('slow', 'queue_full'), 1);
  assert.is(v('slow', 'timeout'), 1);
  await new Promise((r) => setTimeout(r, 200));
});

test('at start, Kafka down is a warning (senders retry), Kafka refusing the credentials or certificate is an error that stops the start', async () => {
  const metrics = new PipelineMetrics();
  const down = new KafkaExporter({ name: 'kafka', config: exporterConfig(''), metrics, logger: silentLogger(), client: fakeClient({ adminError: new KafkaError('connecting the Kafka admin client failed: Connection refused', { retriable: true }) }).client });
  await down.start();
  await down.shutdown();
  const refused = new KafkaError('connecting the Kafka admin client failed: SASL authentication failed. [SASL_AUTHENTICATION_FAILED]', { type: 'SASL_AUTHENTICATION_FAILED', retriable: false });
  const wrong = new KafkaExporter({ name: 'kafka', config: exporterConfig(''), metrics, logger: silentLogger(), client: fakeClient({ adminError: refused }).client });
  await wrong.start().then(() => assert.unreachable('started'), (err: Error) => assert.match(err.message, /^exporters\.kafka: connecting the Kafka admin client failed: SASL authentication failed/));
  await wrong.shutdown();
});

/** Protobuf by hand: a length-delimited field (field numbers below 16). */
const ld = (field: number, ...parts: Buffer[]): Buffer => {
  const body = Buffer.concat(parts);
  const len: number[] = [];
  for (let n = body.length; ; n >>>= 7) {
    if (n < 0x80) {
      len.push(n);
      break;
    }
    len.push((n & 0x7f) | 0x80);
  }
  return Buffer.concat([Buffer.of((field << 3) | 2, ...len), body]);
};
const hexField = (field: number, hex: string) => ld(field, Buffer.from(hex, 'hex'));
const str = (field: number, s: string) => ld(field, Buffer.from(s));
/** An unknown Span field (number 99, varint 7): a newer OTLP than ours. */
const UNKNOWN = Buffer.of(0x98, 0x06, 0x07);
const TRACE_A = '0af7651916cd43dd8448eb211c80319c';
const TRACE_B = '4bf92f3577b34da6a3ce929d0e0e4736';
const span = (trace: string, id: string, name: string, extra: Buffer = Buffer.alloc(0)) =>
  ld(2, hexField(1, trace), hexField(2, id), str(5, name), Buffer.of(0x39), Buffer.alloc(8, 1), Buffer.of(0x41), Buffer.alloc(8, 2), extra);
const request = (...spans: Buffer[]) => ld(1, ld(1, ld(1, str(1, 'service.name'), ld(2, str(1, 'apiserver')))), ld(2, ld(1, str(1, 'k8s.io/apiserver')), ...spans));

test('OTLP/protobuf from the receivers goes to Kafka as the sender wrote it, split by trace: fields we do not know survive', async () => {
  const { client, sends } = fakeClient();
  const metrics = new PipelineMetrics();
  const e = new KafkaExporter({ name: 'kafka', config: exporterConfig(''), metrics, logger: silentLogger(), client });
  await e.start();
  const common = { metrics, logger: silentLogger(), consumer: e };
  const g = new OtlpGrpcReceiver({ ...common, name: 'otlp', endpoint: '127.0.0.1:0', maxRecvMsgSizeMiB: 4 });
  const h = new OtlpHttpReceiver({ ...common, name: 'otlp', endpoint: '127.0.0.1:0', maxRequestBodySize: 1 << 20 });
  await g.start();
  await h.start();
  const grpcClient = new grpc.Client(g.address, grpc.credentials.createInsecure());
  try {
    const body = request(span(TRACE_A, '00000000000000a1', 'a1', UNKNOWN), span(TRACE_B, '00000000000000b1', 'b1'), span(TRACE_A, '00000000000000a2', 'a2', UNKNOWN));
    await new Promise<void>((resolve, reject) => grpcClient.makeUnaryRequest(EXPORT_PATH, (b: Buffer) => b, (b: Buffer) => b, body, (err) => (err ? reject(err) : resolve())));
    const res = await fetch(`http://${h.address}/v1/traces`, { method: 'POST', headers: { 'content-type': 'application/x-protobuf' }, body });
    assert.is(res.status, 200);
    assert.is(sends.length, 2, 'one produce per request');
    for (const messages of sends) {
      assert.equal(messages.map((m) => m.key), [TRACE_A, TRACE_B]);
      const [a, b] = messages.map((m) => Buffer.from(m.value as Uint8Array));
      assert.equal(decodeTraceRequest(a!).spans.map((s) => s.name), ['a1', 'a2']);
      assert.equal(decodeTraceRequest(b!).spans.map((s) => s.name), ['b1']);
      assert.ok(a!.includes(UNKNOWN), 'the unknown span field reaches Kafka (a re-encode would drop it)');
      assert.ok(a!.includes(span(TRACE_A, '00000000000000a1', 'a1', UNKNOWN)), 'the span bytes as sent');
      assert.ok(!b!.includes(UNKNOWN));
    }

    // A request with an invalid span: partial success, and Kafka gets only the valid spans, still
    // as their own bytes (the receiver scanned the request, so nothing was re-encoded).
    sends.length = 0;
    const bad = request(span(TRACE_A, '00000000000000a3', 'a3', UNKNOWN), span('abcd', '00000000000000c1', 'bad trace id'));
    const partial = await fetch(`http://${h.address}/v1/traces`, { method: 'POST', headers: { 'content-type': 'application/x-protobuf' }, body: bad });
    assert.is(partial.status, 200);
    assert.equal(sends[0]!.map((m) => m.key), [TRACE_A]);
    const value = Buffer.from(sends[0]![0]!.value as Uint8Array);
    assert.equal(decodeTraceRequest(value).spans.map((s) => s.name), ['a3']);
    assert.ok(!value.includes(Buffer.from('bad trace id')), 'the rejected span is not forwarded');
    assert.ok(value.includes(span(TRACE_A, '00000000000000a3', 'a3', UNKNOWN)), 'the valid span as sent, its unknown field too');
  } finally {
    grpcClient.close();
    await g.shutdown();
    await h.shutdown();
    await e.shutdown();
  }
});

test.run();
