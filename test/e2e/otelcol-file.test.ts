import { appendFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { encodeTraceRequest } from '@kube-correlate/otlp';
import { generateDeploymentScenario } from '@kube-correlate/fixtures';
import { SpanFileCounter, metricSum } from '../bench/embedded.js';
import { runLoad } from '../bench/otlp-load.js';
import { startOtelcol, type OtelcolProcess } from '../harness/otelcol.js';
import { ROOT, tempDir, waitFor } from '../harness/index.js';

/**
 * The embedded-mode benchmark's reference and its counting (test/bench/embedded.ts): the collector
 * built from test/otelcol runs collector-config/otelcol/apiserver-to-file.yaml as shipped and
 * writes every span of the requests it accepted to its file, as counted by SpanFileCounter; the
 * counter reads only complete length-prefixed messages, and metricSum reads our /metrics.
 */
let otelcol: OtelcolProcess | undefined;
const tmp = tempDir('kc-otelcol-file-');
test.after(async () => {
  await otelcol?.stop();
  tmp.cleanup();
});

const frame = (msg: Uint8Array): Buffer => {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(msg.length);
  return Buffer.concat([len, msg]);
};

test('SpanFileCounter counts the spans of complete messages, and picks up a message once its end is written', () => {
  const s = generateDeploymentScenario({ seed: 3 });
  const spans = s.traces.flatMap((t) => t.spans);
  const a = encodeTraceRequest(spans.slice(0, 7));
  const b = frame(encodeTraceRequest(spans.slice(7, 20)));
  const path = join(tmp.dir, 'spans.pb');
  writeFileSync(path, Buffer.concat([frame(a), b.subarray(0, 10)]));
  const c = new SpanFileCounter(path);
  assert.is(c.read(), 7);
  assert.is(c.messages, 1);
  appendFileSync(path, b.subarray(10));
  assert.is(c.read(), 20);
  assert.is(c.messages, 2);
  assert.is(c.read(), 20, 'reading again adds nothing');
});

test('SpanFileCounter reads a file in chunks: what a saturation run writes between two reads (gigabytes) is more than one read can take', () => {
  const s = generateDeploymentScenario({ seed: 4 });
  const spans = s.traces.flatMap((t) => t.spans);
  const small = frame(encodeTraceRequest(spans.slice(0, 3)));
  const big = frame(encodeTraceRequest(spans.slice(3, 40)));
  const path = join(tmp.dir, 'chunked.pb');
  writeFileSync(path, Buffer.concat([small, small, big, small, big.subarray(0, 20)]));
  // A chunk that holds one small message but not the big one: every whole message is still counted once.
  const c = new SpanFileCounter(path, small.length + 10);
  assert.ok(big.length > small.length + 10);
  assert.is(c.read(), 3 + 3 + 37 + 3);
  assert.is(c.messages, 4);
  appendFileSync(path, big.subarray(20));
  assert.is(c.read(), 3 + 3 + 37 + 3 + 37);
  assert.is(c.messages, 5);
  assert.is(c.read(), 3 + 3 + 37 + 3 + 37, 'reading again adds nothing');
});

test('metricSum adds the samples whose labels match', () => {
  const text = [
    '# HELP kube_correlate_store_rows_total Rows offered',
    'kube_correlate_store_rows_total{table="spans",outcome="inserted"} 1845',
    'kube_correlate_store_rows_total{table="spans",outcome="duplicate"} 3',
    'kube_correlate_store_rows_total{table="audit_events",outcome="inserted"} 10',
    'kube_correlate_store_rows_total_other 99',
  ].join('\n');
  assert.is(metricSum(text, 'kube_correlate_store_rows_total', { table: 'spans', outcome: 'inserted' }), 1845);
  assert.is(metricSum(text, 'kube_correlate_store_rows_total', { table: 'spans' }), 1848);
  assert.is(metricSum(text, 'kube_correlate_store_rows_total'), 1858);
});

test('collector-config/otelcol/apiserver-to-file.yaml, as shipped, writes every accepted span to its file', async () => {
  otelcol = await startOtelcol(join(ROOT, 'collector-config/otelcol/apiserver-to-file.yaml'));
  const r = await runLoad({ target: otelcol.otlpGrpc, rate: 0, durationS: 0.5, concurrency: 4, templates: 20 });
  assert.ok(r.okSpans > 0, 'some requests were accepted');
  assert.equal(r.refused, {});
  const counter = new SpanFileCounter(join(otelcol.dir, 'otlp_spans.pb'));
  // The exporter flushes its buffer every second (flush_interval): wait for that (otelcol runs at the
  // test's low priority, beside whatever else the machine runs), then check.
  await waitFor(`${r.okSpans} spans in the file`, () => (counter.read() >= r.okSpans ? true : undefined), 60_000)
    .catch((e: Error) => { throw new Error(`${e.message} (the file has ${counter.read()})`); });
  assert.is(counter.read(), r.okSpans);
  assert.is(counter.messages, r.ok, 'one message per request (no batch processor)');
});

test.run();
