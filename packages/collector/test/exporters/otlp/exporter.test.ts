import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { CorrelatorOutput } from '@kube-correlate/correlator';
import { generateDeploymentScenario } from '@kube-correlate/fixtures';
import type { Span } from '@kube-correlate/otlp';
import { planExport, TraceStore } from '@kube-correlate/store';
import { PipelineMetrics, silentLogger } from '@kube-correlate/telemetry';
import { OtlpClient } from '../../../src/exporters/otlp/client.js';
import { OtlpTraceExporter } from '../../../src/exporters/otlp/exporter.js';
import { OtlpGrpcReceiver } from '../../../src/receivers/otlp/grpc.js';

/**
 * The OTLP exporter against a real OTLP/gRPC server (the collector's own receiver): data written
 * while the backend is down stays queued in the store and goes out once it is up; each span id is
 * sent once, across restarts and redelivered writes; late data goes out as new spans.
 */
const scenario = generateDeploymentScenario({ seed: 9 });
const dir = mkdtempSync(join(tmpdir(), 'kc-otlp-exporter-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

async function until<T>(what: string, fn: () => T | undefined | Promise<T | undefined>, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const lateRequest = scenario.requests[scenario.requests.length - 1]!;
const isLate = (e: { auditID: string; stage: string }) => e.auditID === lateRequest.auditID && e.stage === 'ResponseComplete';

/** The scenario as the correlator hands it to the store; with `holdBack`, without the last request's ResponseComplete. */
function output(holdBack = false): CorrelatorOutput {
  return {
    traces: scenario.requests.map((r) => ({ traceId: r.traceId, spans: r.spans, auditEvents: r.auditEvents.filter((e) => !holdBack || !isLate(e)), auditIds: [r.auditID], reason: 'idle' as const })),
    unjoinedAuditEvents: [],
  };
}

function exporterOn(store: TraceStore, port: number, metrics: PipelineMetrics): OtlpTraceExporter {
  const client = new OtlpClient({ protocol: 'grpc', endpoint: `127.0.0.1:${port}`, timeoutMs: 1000, retry: { enabled: true, initialIntervalMs: 20, maxIntervalMs: 50, maxElapsedMs: 200 } });
  return new OtlpTraceExporter({
    name: 'otlp/test', store, client, metrics, logger: silentLogger(),
    flushIntervalMs: 20, batchSize: 3, maxSpansPerRequest: 7, queueSize: 10_000, shutdownTimeoutMs: 2000, retryPauseMs: 50,
    // The held-back request's object-set span waits this long for its ResponseComplete, then goes as it is.
    waitForOwnersMs: 300,
    waitForAuditMs: 300,
  });
}

test('backend down, then up: queued data goes out once; a restart and a redelivery send nothing again; late stages add a span', async () => {
  const port = await freePort();
  const metrics = new PipelineMetrics();
  let exporter: OtlpTraceExporter | undefined;
  let store = new TraceStore({ dir, metrics, exportQueue: true, onExportQueued: () => exporter?.notify() });
  exporter = exporterOn(store, port, metrics);
  await exporter.start();
  store.writeSync(output(true));
  const queued = store.exportQueueSize();
  assert.ok(queued > scenario.requests.length, `traces and objects queued (${queued})`);
  await until('a failed send', async () => ((await metrics.exporterFailed.get()).values.some((v) => v.labels.reason === 'unavailable' && v.value > 0) ? true : undefined));
  assert.is(store.exportQueueSize(), queued, 'nothing leaves the queue while the backend is down');

  const received: Span[] = [];
  const backend = new OtlpGrpcReceiver({ name: 'backend', endpoint: `127.0.0.1:${port}`, maxRecvMsgSizeMiB: 4, metrics: new PipelineMetrics(), logger: silentLogger(), consumer: { consumeSpans: async (s) => void received.push(...s) } });
  await backend.start();
  try {
    await until('the queue drained', () => (store.exportQueueSize() === 0 ? true : undefined));
    const keys = received.map((s) => `${s.traceId}/${s.spanId}`);
    assert.is(new Set(keys).size, keys.length, 'each span id once');
    for (const s of scenario.requests.flatMap((r) => r.spans)) assert.ok(keys.includes(`${s.traceId}/${s.spanId}`), `span ${s.name} sent`);
    const audit = received.filter((s) => s.scope.name === 'kube-correlate');
    assert.is(audit.length, scenario.requests.length, 'one audit span per request');
    assert.is(audit.filter((s) => s.events.length === 1).length, 1, 'the held-back request has only RequestReceived');
    const set = received.filter((s) => s.traceId === store.getObjectSet(scenario.deploymentUid)!.traceId);
    assert.is(set.length, store.getObjectSet(scenario.deploymentUid)!.spanCount, 'the whole object-set trace');
    const sent = (await metrics.exporterSent.get()).values.find((v) => v.labels.exporter === 'otlp/test')?.value;
    assert.is(sent, received.length);

    // Restart on the same store directory, and redeliver everything: nothing new to send.
    await exporter.shutdown();
    store.close();
    store = new TraceStore({ dir, metrics, exportQueue: true, onExportQueued: () => exporter?.notify() });
    exporter = exporterOn(store, port, metrics);
    await exporter.start();
    const before = received.length;
    store.writeSync(output(true));
    assert.is(store.exportQueueSize(), 0, 'a redelivery queues nothing');

    // The held-back ResponseComplete arrives late: a late-stage span; the audit span is not resent.
    store.writeSync({ traces: [{ traceId: lateRequest.traceId, spans: [], auditEvents: lateRequest.auditEvents.filter(isLate), auditIds: [lateRequest.auditID], reason: 'idle' }], unjoinedAuditEvents: [] });
    await until('the late stage sent', () => (store.exportQueueSize() === 0 && received.length > before ? true : undefined));
    await exporter.shutdown();
    const lateAudit = received.slice(before).filter((s) => s.scope.name === 'kube-correlate');
    assert.is(lateAudit.length, 1, 'one late-stage span');
    assert.is(lateAudit[0]!.name.endsWith('(late: ResponseComplete)'), true, lateAudit[0]!.name);
    assert.equal(lateAudit[0]!.events.map((e) => e.name), ['ResponseComplete']);
    const all = received.map((s) => `${s.traceId}/${s.spanId}`);
    assert.is(new Set(all).size, all.length, 'still each span id once');
  } finally {
    await exporter.shutdown();
    await backend.shutdown();
    store.close();
  }
});

test('entries that cannot be planned are dropped and counted, and the entries after them still go out', async () => {
  const d = mkdtempSync(join(tmpdir(), 'kc-otlp-plan-'));
  const port = await freePort();
  const metrics = new PipelineMetrics();
  const store = new TraceStore({ dir: d, metrics, exportQueue: true });
  const received: Span[] = [];
  const backend = new OtlpGrpcReceiver({ name: 'backend', endpoint: `127.0.0.1:${port}`, maxRecvMsgSizeMiB: 4, metrics: new PipelineMetrics(), logger: silentLogger(), consumer: { consumeSpans: async (s) => void received.push(...s) } });
  await backend.start();
  let calls = 0;
  const exporter = new OtlpTraceExporter({
    name: 'otlp/plan', store, metrics, logger: silentLogger(),
    client: new OtlpClient({ protocol: 'grpc', endpoint: `127.0.0.1:${port}`, timeoutMs: 1000, retry: { enabled: false, initialIntervalMs: 10, maxIntervalMs: 10, maxElapsedMs: 10 } }),
    flushIntervalMs: 10, batchSize: 2, maxSpansPerRequest: 100, queueSize: 10_000, shutdownTimeoutMs: 500, retryPauseMs: 10,
    plan: (s, entries) => {
      if (calls++ === 0) throw new Error('corrupt row');
      return planExport(s, entries);
    },
  });
  try {
    store.writeSync(output());
    const queued = store.exportQueueSize();
    assert.is(await exporter.drain(), true);
    assert.is(store.exportQueueSize(), 0, 'the queue is not stuck behind the bad entries');
    assert.ok(received.length > 0, 'the other entries were exported');
    assert.is((await metrics.exporterFailed.get()).values.find((v) => v.labels.reason === 'internal')?.value, 1);
    assert.ok(queued > 2);
  } finally {
    await exporter.shutdown();
    await backend.shutdown();
    store.close();
    rmSync(d, { recursive: true, force: true });
  }
});

test('a full queue drops its oldest entries and counts them', async () => {
  const d = mkdtempSync(join(tmpdir(), 'kc-otlp-queue-'));
  const metrics = new PipelineMetrics();
  const store = new TraceStore({ dir: d, metrics, exportQueue: true });
  const exporter = new OtlpTraceExporter({
    name: 'otlp/small', store, metrics, logger: silentLogger(),
    client: new OtlpClient({ protocol: 'grpc', endpoint: `127.0.0.1:${await freePort()}`, timeoutMs: 200, retry: { enabled: false, initialIntervalMs: 10, maxIntervalMs: 10, maxElapsedMs: 10 } }),
    flushIntervalMs: 10, batchSize: 10, maxSpansPerRequest: 100, queueSize: 4, shutdownTimeoutMs: 200, retryPauseMs: 10_000,
  });
  try {
    store.writeSync(output());
    const before = store.exportQueueSize();
    assert.ok(before > 4);
    assert.is(await exporter.drain(), false, 'the backend is unreachable');
    assert.is(store.exportQueueSize(), 4);
    const dropped = (await metrics.exporterFailed.get()).values.find((v) => v.labels.reason === 'queue_full')?.value;
    assert.is(dropped, before - 4);
  } finally {
    await exporter.shutdown();
    store.close();
    rmSync(d, { recursive: true, force: true });
  }
});

test.run();
