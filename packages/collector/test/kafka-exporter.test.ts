import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { makeSpan } from '@kube-correlate/fixtures';
import type { KafkaClient, OutgoingMessage } from '@kube-correlate/kafka';
import { decodeTraceRequest } from '@kube-correlate/otlp';
import { PipelineMetrics, silentLogger } from '@kube-correlate/telemetry';
import { parseConfig, RetryableError } from '../src/index.js';
import { KafkaExporter } from '../src/exporters/kafka.js';

/** An in-process fake client (unit test only; the real broker is in test/e2e/kafka-*.test.ts). */
function fakeClient(behaviour: { delayMs?: number; fail?: boolean } = {}) {
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
    admin: async () => ({ ensureTopics: async () => [], partitionCount: async () => 8, disconnect: async () => {} }),
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
  });
  const slow = new KafkaExporter({ name: 'slow', config: exporterConfig('    timeout: 50ms\n    sending_queue: { queue_size: 1 }'), metrics, logger: silentLogger(), client: fakeClient({ delayMs: 200 }).client });
  const first = slow.consumeSpans([makeSpan({ trace: 1, id: 1, name: 'a' })]);
  await slow.consumeSpans([makeSpan({ trace: 2, id: 1, name: 'b' })]).then(() => assert.unreachable(), (err: unknown) => assert.match((err as Error).message, 'queue is full'));
  await first.then(() => assert.unreachable(), (err: unknown) => assert.match((err as Error).message, 'did not acknowledge within 50ms'));
  const failed = (await metrics.registry.getMetricsAsJSON()).find((m) => m.name === 'kube_correlate_exporter_failed_total')!;
  const v = (exporter: string, reason: string) => failed.values.find((x) => x.labels.exporter === exporter && x.labels.reason === reason)?.value;
  assert.is(v('kafka', 'unavailable'), 1);
  assert.is(v('slow', 'queue_full'), 1);
  assert.is(v('slow', 'timeout'), 1);
  await new Promise((r) => setTimeout(r, 200));
});

test.run();
