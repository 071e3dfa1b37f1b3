import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { AuditEvent } from '@kube-correlate/audit';
import { encodeTraceRequest, SpanKind, type Span } from '@kube-correlate/otlp';
import { TraceStore } from '@kube-correlate/store';
import { eventList, freePort, spawnCorrelate, tempDir, waitFor } from '../harness/index.js';
import { killGroup } from '../harness/supervise.js';

/**
 * "An OK means durable" (issue 14) with the real process: `correlate start` is SIGKILLed while
 * senders are being answered; after a restart, every span and audit event it acknowledged is
 * stored, also audit events that had no spans (they used to wait 30 s in memory).
 */
const tmp = tempDir('kc-durability-');
test.after(() => tmp.cleanup());

const hex = (n: number, len: number) => n.toString(16).padStart(len, '0');
const resource = { attributes: [{ key: 'service.name', value: { stringValue: 'apiserver' } }], droppedAttributesCount: 0, schemaUrl: '' };
const scope = { name: 'k8s.io/apiserver', version: '', attributes: [], droppedAttributesCount: 0, schemaUrl: '' };

function request(run: number, i: number): { spans: Span[]; audit: AuditEvent[]; traceId: string; auditID: string } {
  const traceId = hex(run, 8) + hex(i + 1, 24);
  const auditID = `${hex(run, 8)}-${hex(i, 4)}-4000-8000-${hex(i, 12)}`;
  const t0 = 1_790_000_000_000_000_000n + BigInt(i) * 1_000_000n;
  const mk = (n: number, parent: number, name: string, kind: number, audit: boolean): Span => ({
    traceId, spanId: hex(n, 16), parentSpanId: parent ? hex(parent, 16) : '', traceState: '', flags: 1, name, kind,
    startTimeUnixNano: (t0 + BigInt(n * 1000)).toString(), endTimeUnixNano: (t0 + 900_000n).toString(),
    attributes: audit ? [{ key: 'audit-id', value: { stringValue: auditID } }] : [], droppedAttributesCount: 0,
    events: [], droppedEventsCount: 0, links: [], droppedLinksCount: 0, status: { code: 0, message: '' }, resource, scope,
  });
  const spans = [mk(1, 0, 'POST /api/v1/namespaces/{:namespace}/configmaps', SpanKind.SERVER, true), mk(2, 1, 'Create', SpanKind.INTERNAL, true), mk(3, 2, 'Create etcd3', SpanKind.INTERNAL, true)];
  const ts = new Date(Number(t0 / 1_000_000n)).toISOString().replace('Z', '000Z');
  const base = { level: 'Metadata', auditID, requestURI: '/api/v1/namespaces/default/configmaps', verb: 'create', user: { username: 'load' }, objectRef: { resource: 'configmaps', namespace: 'default', name: `cm-${i}`, apiVersion: 'v1' }, requestReceivedTimestamp: ts };
  return { spans, traceId, auditID, audit: [{ ...base, stage: 'RequestReceived', stageTimestamp: ts }, { ...base, stage: 'ResponseComplete', stageTimestamp: ts, responseStatus: { code: 201 } }] };
}

async function startPipeline(dataDir: string) {
  const [http, audit, query, grpc] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const env = {
    KC_OTLP_GRPC_ENDPOINT: `127.0.0.1:${grpc}`, KC_OTLP_HTTP_ENDPOINT: `127.0.0.1:${http}`, KC_AUDIT_WEBHOOK_ENDPOINT: `127.0.0.1:${audit}`,
    KC_QUERY_ENDPOINT: `127.0.0.1:${query}`, KC_DATA_DIR: dataDir, KC_SETTLE_AFTER: '1s',
  };
  const p = spawnCorrelate(['start'], { env });
  let err = '';
  p.child.stderr!.on('data', (d: Buffer) => (err = (err + d).slice(-20_000)));
  await waitFor('the pipeline to start', () => (err.includes('kube-correlate is running') ? true : undefined), 120_000).catch((e: Error) => {
    killGroup(p.child.pid, 'SIGKILL');
    throw new Error(`${e.message}; stderr:\n${err}`);
  });
  return { ...p, http: `http://127.0.0.1:${http}`, audit: `http://127.0.0.1:${audit}/`, stderr: () => err };
}

/** SIGTERM and wait: the pipeline settles and stores what is in flight. */
async function drain(p: Awaited<ReturnType<typeof startPipeline>>): Promise<void> {
  p.child.kill('SIGTERM');
  const r = await Promise.race([p.exited, new Promise<'timeout'>((res) => setTimeout(() => res('timeout'), 60_000))]);
  killGroup(p.child.pid, 'SIGKILL');
  if (r === 'timeout') throw new Error(`no exit within 60 s of SIGTERM; stderr:\n${p.stderr()}`);
  assert.is(r.code, 0, p.stderr());
}

async function post(url: string, body: Uint8Array | string, type: string): Promise<boolean> {
  try {
    const res = await fetch(url, { method: 'POST', headers: { 'content-type': type }, body, signal: AbortSignal.timeout(30_000) });
    await res.arrayBuffer();
    return res.status === 200;
  } catch {
    return false; // refused or cut off by the kill: not acknowledged
  }
}

test('SIGKILL under load: after a restart, every acknowledged span and audit event is stored', async () => {
  const dataDir = join(tmp.dir, 'load');
  const first = await startPipeline(dataDir);
  const ackedSpans: ReturnType<typeof request>[] = [];
  const ackedAudit: ReturnType<typeof request>[] = [];
  const N = 1500;
  let next = 0;
  let killed = false;
  const worker = async () => {
    while (next < N && !killed) {
      const r = request(1, next++);
      const [s, a] = await Promise.all([
        post(`${first.http}/v1/traces`, encodeTraceRequest(r.spans), 'application/x-protobuf'),
        post(first.audit, JSON.stringify(eventList(r.audit)), 'application/json'),
      ]);
      if (s) ackedSpans.push(r);
      if (a) ackedAudit.push(r);
    }
  };
  const workers = Array.from({ length: 8 }, worker);
  // Kill it mid-stream, with requests in flight and most traces not settled (settle_after 1 s).
  await waitFor('some requests acknowledged', () => (ackedSpans.length >= 400 ? true : undefined), 120_000);
  killGroup(first.child.pid, 'SIGKILL');
  killed = true;
  await Promise.all(workers);
  await first.exited;
  assert.ok(ackedSpans.length >= 400 && ackedSpans.length < N, `${ackedSpans.length} of ${N} acknowledged before the kill`);

  const second = await startPipeline(dataDir);
  assert.match(second.stderr(), /replayed the inbox/);
  await drain(second);

  const store = new TraceStore({ dir: dataDir, readonly: true });
  try {
    let missingSpans = 0;
    let missingAudit = 0;
    for (const r of ackedSpans) {
      const tree = store.getTrace(r.traceId);
      if (!tree || tree.spanCount !== r.spans.length) missingSpans++;
    }
    for (const r of ackedAudit) if (store.auditEvents(r.auditID).length !== 2) missingAudit++;
    assert.is(missingSpans, 0, `acknowledged traces missing or incomplete (of ${ackedSpans.length})`);
    assert.is(missingAudit, 0, `acknowledged audit requests missing (of ${ackedAudit.length})`);
    assert.is(store.inboxStats().rows, 0, 'the inbox is empty after the drain');
  } finally {
    store.close();
  }
});

test('SIGKILL with default settings: acknowledged audit events without spans are not lost (they used to wait 30 s in memory)', async () => {
  const dataDir = join(tmp.dir, 'audit-only');
  const first = await startPipeline(dataDir);
  const acked: ReturnType<typeof request>[] = [];
  for (let i = 0; i < 200; i++) {
    const r = request(2, i);
    if (await post(first.audit, JSON.stringify(eventList(r.audit)), 'application/json')) acked.push(r);
  }
  assert.is(acked.length, 200);
  killGroup(first.child.pid, 'SIGKILL');
  await first.exited;

  const second = await startPipeline(dataDir);
  await drain(second);
  const store = new TraceStore({ dir: dataDir, readonly: true });
  try {
    const missing = acked.filter((r) => store.auditEvents(r.auditID).length !== 2);
    assert.is(missing.length, 0, `${missing.length} of ${acked.length} acknowledged audit requests lost`);
  } finally {
    store.close();
  }
});

test.run();
