import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { TraceUpdate } from '@kube-correlate/correlator';
import { PipelineMetrics, silentLogger } from '@kube-correlate/telemetry';
import { createQueryApi, TraceStore } from '../src/index.js';
import { auditEvent, makeSpan, traceIdOf as tid } from '@kube-correlate/fixtures';

const dirs: string[] = [];
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'kc-store-'));
  dirs.push(d);
  return d;
};
test.after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

const update = (traceId: string, spans: TraceUpdate['spans'], auditEvents: TraceUpdate['auditEvents'] = [], auditIds: string[] = []): TraceUpdate => ({ traceId, spans, auditEvents, auditIds, reason: 'idle' });
const spans = [makeSpan({ trace: 1, id: 1, parent: 0, name: 'POST /x', kind: 2, duration: 9000 }), makeSpan({ trace: 1, id: 2, parent: 1, name: 'Create', auditId: 'a1' })];

test('stores a trace and builds its tree on read; survives close and reopen', () => {
  const dir = tmp();
  let s = new TraceStore({ dir });
  s.writeSync({ traces: [update(tid(1), spans, [auditEvent({ auditID: 'a1', stage: 'ResponseComplete' })], ['a1'])], unjoinedAuditEvents: [] });
  s.close();
  s.close(); // safe twice
  s = new TraceStore({ dir });
  const t = s.getTrace(tid(1));
  assert.ok(t);
  assert.is(t.root.name, 'POST /x');
  assert.is(t.root.audit?.code, 201);
  assert.is(s.getTrace(tid(2)), undefined);
  s.close();
  const ro = new TraceStore({ dir, readonly: true });
  assert.is(ro.getByAuditId('a1')?.traceId, tid(1));
  ro.close();
});

test('transaction(): writes inside it are committed together, or none of them when it throws (a batch of object-set requests is written so)', () => {
  const s = new TraceStore({ dir: tmp() });
  const other = [makeSpan({ trace: 2, id: 1, parent: 0, name: 'GET /y', kind: 2 })];
  assert.throws(() => s.transaction(() => {
    s.writeSync({ traces: [update(tid(1), spans)], unjoinedAuditEvents: [] });
    s.writeSync({ traces: [update(tid(2), other)], unjoinedAuditEvents: [] });
    throw new Error('the third write failed');
  }), /the third write failed/);
  assert.is(s.getTrace(tid(1)), undefined, 'the first write was rolled back with the batch');
  assert.is(s.getTrace(tid(2)), undefined);
  assert.is(s.transaction(() => {
    s.writeSync({ traces: [update(tid(1), spans)], unjoinedAuditEvents: [] });
    s.writeSync({ traces: [update(tid(2), other)], unjoinedAuditEvents: [] });
    return 'done';
  }), 'done');
  assert.ok(s.getTrace(tid(1)));
  assert.ok(s.getTrace(tid(2)));
  s.close();
});

test('split and redelivered updates merge to the same tree; duplicates are counted', async () => {
  const metrics = new PipelineMetrics();
  const a = new TraceStore({ dir: tmp(), metrics });
  a.writeSync({ traces: [update(tid(1), [spans[1]!], [], ['a1'])], unjoinedAuditEvents: [auditEvent({ auditID: 'a1', stage: 'RequestReceived' })] });
  a.writeSync({ traces: [update(tid(1), [spans[0]!, spans[1]!])], unjoinedAuditEvents: [] });
  a.writeSync({ traces: [update(tid(1), [], [auditEvent({ auditID: 'a1', stage: 'ResponseComplete' }), auditEvent({ auditID: 'a1', stage: 'RequestReceived' })], ['a1'])], unjoinedAuditEvents: [] });
  const b = new TraceStore({ dir: tmp() });
  b.writeSync({ traces: [update(tid(1), spans, [auditEvent({ auditID: 'a1', stage: 'RequestReceived' }), auditEvent({ auditID: 'a1', stage: 'ResponseComplete' })], ['a1'])], unjoinedAuditEvents: [] });
  assert.equal(a.getTrace(tid(1)), b.getTrace(tid(1)));
  assert.equal(a.counts(), { traces: 1, spans: 2, auditEvents: 2 });
  const m = (await metrics.registry.getMetricsAsJSON()).find((x) => x.name === 'kube_correlate_store_rows_total')!;
  const v = (table: string, outcome: string) => m.values.find((x) => x.labels.table === table && x.labels.outcome === outcome)?.value;
  assert.is(v('spans', 'duplicate'), 1);
  assert.is(v('audit_events', 'duplicate'), 1);
  a.close();
  b.close();
});

test('an audit stage stored twice with different content: the stored copy stays, the conflict is counted', async () => {
  const metrics = new PipelineMetrics();
  const s = new TraceStore({ dir: tmp(), metrics });
  const real = auditEvent({ auditID: 'c1', stage: 'ResponseComplete' });
  s.writeSync({ traces: [], unjoinedAuditEvents: [real] });
  s.writeSync({ traces: [], unjoinedAuditEvents: [{ ...real }] });
  s.writeSync({ traces: [], unjoinedAuditEvents: [{ ...real, user: { username: 'mallory' } }] });
  const m = (await metrics.registry.getMetricsAsJSON()).find((x) => x.name === 'kube_correlate_store_rows_total')!;
  const v = (outcome: string) => m.values.find((x) => x.labels.table === 'audit_events' && x.labels.outcome === outcome)?.value ?? 0;
  assert.is(v('duplicate'), 2);
  assert.is(v('conflict'), 1, 'only the copy that differs is a conflict');
  assert.is(s.getByAuditId('c1')?.root.audit?.user, 'alice');
  s.close();
});

test('an audit request without spans is found by auditID as a one-node tree', () => {
  const s = new TraceStore({ dir: tmp() });
  s.writeSync({ traces: [], unjoinedAuditEvents: [auditEvent({ auditID: 'solo', stage: 'RequestReceived' }), auditEvent({ auditID: 'solo', stage: 'ResponseComplete' })] });
  const t = s.getByAuditId('solo');
  assert.ok(t);
  assert.is(t.traceId, '');
  assert.is(t.root.synthetic, true);
  assert.is(t.root.audit?.auditID, 'solo');
  assert.is(t.root.durationNanos, 20_000_000);
  assert.is(s.getByAuditId('nope'), undefined);
  s.close();
});

test('query API answers trees, 404, 400 and metrics', async () => {
  const metrics = new PipelineMetrics();
  const s = new TraceStore({ dir: tmp(), metrics });
  s.writeSync({ traces: [update(tid(1), spans, [auditEvent({ auditID: 'a1', stage: 'ResponseComplete' })], ['a1'])], unjoinedAuditEvents: [] });
  const server = createQueryApi({ store: s, metrics, logger: silentLogger() });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  try {
    const ok = await fetch(`${base}/api/v1/traces/${tid(1).toUpperCase()}`);
    assert.is(ok.status, 200);
    assert.is(((await ok.json()) as { root: { name: string } }).root.name, 'POST /x');
    assert.is((await fetch(`${base}/api/v1/traces/${tid(5)}`)).status, 404);
    const bad = await fetch(`${base}/api/v1/traces/xyz`);
    assert.is(bad.status, 400);
    assert.match(((await bad.json()) as { error: string }).error, '32 hex');
    assert.is((await fetch(`${base}/api/v1/audit/a1`)).status, 200);
    assert.is((await fetch(`${base}/api/v1/audit/%E0%A4%A`)).status, 400, 'malformed percent-encoding');
    const list = (await (await fetch(`${base}/api/v1/traces?limit=5`)).json()) as { traces: Array<{ traceId: string }> };
    assert.equal(list.traces.map((t) => t.traceId), [tid(1)]);
    assert.is((await fetch(`${base}/api/v1/traces?limit=0`)).status, 400);
    assert.is((await fetch(`${base}/api/v1/traces/${tid(1)}`, { method: 'DELETE' })).status, 405);
    const text = await (await fetch(`${base}/metrics`)).text();
    assert.match(text, /kube_correlate_query_requests_total\{route="trace",code="200"\} 1/);
  } finally {
    server.close();
    s.close();
  }
});

test('a long auditID is stored under its truncated form and found by either form', () => {
  const long = 'client-chosen-' + 'y'.repeat(90);
  const s = new TraceStore({ dir: tmp() });
  const sp = makeSpan({ trace: 3, id: 1, name: 'POST /x', kind: 2, auditId: long.slice(0, 64) });
  s.writeSync({ traces: [update(tid(3), [sp], [], [long.slice(0, 64)])], unjoinedAuditEvents: [auditEvent({ auditID: long, stage: 'ResponseComplete' })] });
  assert.is(s.getTrace(tid(3))?.root.audit?.auditID, long, 'the audit keeps the full ID');
  assert.is(s.getByAuditId(long)?.traceId, tid(3));
  assert.is(s.getByAuditId(long.slice(0, 64))?.traceId, tid(3));
  s.close();
});

test('checkpointInBackground: commits leave the WAL to the worker thread (no checkpoint at SQLite\'s 1000 pages), which copies it whole', async () => {
  const dir = tmp();
  // Checkpoints only when asked, so what the WAL holds is known.
  const s = new TraceStore({ dir, checkpointInBackground: { intervalMs: 3_600_000, restartFrames: 1_000_000 } });
  const big = (trace: number, id: number) => ({ ...makeSpan({ trace, id, parent: 0, name: 'x' }), attributes: [{ key: 'pad', value: { stringValue: 'p'.repeat(4000 + id) } }] });
  // 12 commits of ~150 pages each: past 1000 pages, SQLite's own checkpoint would have run and the WAL restarted.
  for (let t = 1; t <= 12; t++) s.writeSync({ traces: [update(tid(t), Array.from({ length: 150 }, (_, i) => big(t, i + 1)))], unjoinedAuditEvents: [] });
  const first = await s.walCheckpointer!.checkpoint();
  assert.ok(first.log >= 1500, `the WAL holds every commit: ${first.log} frames`);
  assert.is(first.checkpointed, first.log, 'the worker copied all of it');
  s.writeSync({ traces: [update(tid(13), [big(13, 1)])], unjoinedAuditEvents: [] });
  const second = await s.walCheckpointer!.checkpoint();
  assert.ok(second.log < first.log, `the next commit restarted the WAL: ${second.log} frames`);
  assert.is(second.mode, 'PASSIVE');
  s.close();
  const again = new TraceStore({ dir, readonly: true });
  assert.is(again.counts().spans, 12 * 150 + 1, 'everything is there after close');
  again.close();
});

test('a long WAL: the background checkpoint is a RESTART, so that the next commit starts the WAL over', async () => {
  const dir = tmp();
  const s = new TraceStore({ dir, checkpointInBackground: { intervalMs: 3_600_000, restartFrames: 100 } });
  const big = (trace: number, id: number) => ({ ...makeSpan({ trace, id, parent: 0, name: 'x' }), attributes: [{ key: 'pad', value: { stringValue: 'p'.repeat(4000) } }] });
  s.writeSync({ traces: [update(tid(1), [big(1, 1)])], unjoinedAuditEvents: [] });
  const short = await s.walCheckpointer!.checkpoint();
  assert.ok(short.log < 100, `${short.log} frames`);
  assert.is(short.mode, 'PASSIVE', 'a short WAL is checkpointed without holding commits back');
  for (let t = 2; t <= 4; t++) s.writeSync({ traces: [update(tid(t), Array.from({ length: 50 }, (_, i) => big(t, i + 1)))], unjoinedAuditEvents: [] });
  const long = await s.walCheckpointer!.checkpoint();
  assert.ok(long.log >= 100, `${long.log} frames`);
  assert.is(long.mode, 'RESTART');
  assert.is(long.checkpointed, long.log);
  s.close();
});

test('shutdown() resolves once the checkpoint thread closed its connection too: nothing has the files open, the WAL is gone, every span is in the database', async () => {
  const dir = tmp();
  const s = new TraceStore({ dir, checkpointInBackground: { intervalMs: 3_600_000, restartFrames: 1_000_000 } });
  s.writeSync({ traces: [update(tid(1), Array.from({ length: 20 }, (_, i) => makeSpan({ trace: 1, id: i + 1, parent: 0, name: 'x' })))], unjoinedAuditEvents: [] });
  await s.walCheckpointer!.checkpoint(); // the thread's connection is open
  assert.ok(s.walCheckpointer!.running);
  await s.shutdown();
  assert.is(s.walCheckpointer!.running, false, 'the thread ended before shutdown() resolved');
  // SQLite removes the WAL and shared-memory files when the last connection to the database closes.
  const left = readdirSync(dir).filter((f) => f.endsWith('-wal') || f.endsWith('-shm'));
  assert.equal(left, [], 'no connection left open after shutdown()');
  await s.shutdown(); // safe twice
  const again = new TraceStore({ dir, readonly: true });
  assert.is(again.counts().spans, 20);
  again.close();
});

test('a store of schema 5 (spans WITHOUT ROWID) is rebuilt with spans in a rowid table: its spans kept, still one row per (trace, span)', async () => {
  const dir = tmp();
  const { default: Database } = await import('better-sqlite3');
  const old = new Database(join(dir, 'kube-correlate.db'));
  old.exec('CREATE TABLE spans (trace_id TEXT NOT NULL, span_id TEXT NOT NULL, parent_span_id TEXT NOT NULL, start_ns TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (trace_id, span_id)) WITHOUT ROWID');
  const insert = old.prepare('INSERT INTO spans VALUES (?, ?, ?, ?, ?)');
  for (const sp of spans) insert.run(sp.traceId, sp.spanId, sp.parentSpanId, sp.startTimeUnixNano, JSON.stringify(sp));
  old.pragma('user_version = 5');
  old.close();
  const s = new TraceStore({ dir });
  const db = (s as unknown as { db: InstanceType<typeof Database> }).db;
  const sql = (db.prepare("SELECT sql FROM sqlite_master WHERE name = 'spans'").get() as { sql: string }).sql;
  assert.not.match(sql, /WITHOUT ROWID/i);
  assert.is(s.counts().spans, 2, 'the spans stored before are there');
  s.writeSync({ traces: [update(tid(1), spans)], unjoinedAuditEvents: [] });
  assert.is(s.counts().spans, 2, 'a span written again is not a second row');
  assert.is(s.getTrace(tid(1))?.spanCount, 2);
  s.close();
});

test('a store written by a newer schema is refused with a clear message', () => {
  const dir = tmp();
  const s = new TraceStore({ dir });
  (s as unknown as { db: { pragma(x: string): void } }).db.pragma('user_version = 99');
  s.close();
  assert.throws(() => new TraceStore({ dir }), /schema version 99 is newer/);
});

test.run();
