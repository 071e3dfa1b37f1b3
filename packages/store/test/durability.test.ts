import { chmodSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Correlator, StoreUnavailableError } from '@kube-correlate/correlator';
import { auditEvent, generateDeploymentScenario, makeSpan } from '@kube-correlate/fixtures';
import { PipelineMetrics, silentLogger } from '@kube-correlate/telemetry';
import { StoreMaintenance, TraceStore } from '../src/index.js';

/**
 * The embedded driver over the real store: the inbox, a size cap that fills (SQLITE_FULL: retryable
 * refusals, nothing acknowledged lost, recovery once there is room), and retention by age and size.
 */
const dirs: string[] = [];
test.after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
const newDir = () => {
  const d = mkdtempSync(join(tmpdir(), 'kc-durability-'));
  dirs.push(d);
  return d;
};

const bigSpan = (trace: number, id: number) => ({ ...makeSpan({ trace, id, name: `s${id}` }), attributes: [{ key: 'payload', value: { stringValue: 'x'.repeat(4000) } }] });

test('a store at its size cap refuses retryably, loses nothing acknowledged, and takes data again once there is room', async () => {
  const dir = newDir();
  const store = new TraceStore({ dir, maxSizeBytes: 1024 * 1024 });
  const clock = { t: 0 };
  const c = new Correlator({ store, settleAfterMs: 10, now: () => clock.t, retryPauseMs: 1, metrics: new PipelineMetrics() });
  await c.start();
  const acked: number[] = [];
  let refused = 0;
  for (let i = 1; i <= 400 && refused === 0; i++) {
    try {
      await c.consumeSpans([bigSpan(i, 1), bigSpan(i, 2)]);
      acked.push(i);
    } catch (err) {
      assert.instance(err, StoreUnavailableError);
      refused++;
    }
    clock.t += 20;
    await c.tick();
  }
  assert.ok(refused > 0, 'the cap was reached and data refused');
  assert.ok(acked.length > 10);
  // Room again (an operator raised max_size, or retention ran): the next write goes through.
  store.setMaxSize(64 * 1024 * 1024);
  clock.t += 1000;
  await c.tick();
  assert.is(c.refusing(), undefined, 'accepting again');
  await c.consumeSpans([bigSpan(9999, 1)]);
  clock.t += 1000;
  await c.stop();
  for (const i of acked) assert.ok(store.getTrace(makeSpan({ trace: i, id: 1, name: '' }).traceId)?.spanCount === 2, `acknowledged trace ${i} stored whole`);
  assert.is(store.inboxStats().rows, 0);
  store.close();
});

test('retention by age deletes old traces and audit requests with what derives from them, and nothing else', () => {
  const dir = newDir();
  let now = 1_000_000_000_000;
  const metrics = new PipelineMetrics();
  const store = new TraceStore({ dir, now: () => now, metrics, exportQueue: true });
  const old = generateDeploymentScenario({ seed: 1, name: 'old' });
  const write = (s: typeof old) => store.writeSync({
    traces: s.requests.map((r) => ({ traceId: r.traceId, spans: r.spans, auditEvents: r.auditEvents, auditIds: [r.auditID], reason: 'idle' as const })),
    unjoinedAuditEvents: [],
  });
  // updated_at is the write's wall-clock time: age it by writing "earlier".
  const realNow = Date.now;
  Date.now = () => now;
  try {
    write(old);
    store.writeSync({ traces: [], unjoinedAuditEvents: [auditEvent({ auditID: 'old-alone', stage: 'ResponseComplete' })] });
    now += 10 * 24 * 3600_000;
    const fresh = generateDeploymentScenario({ seed: 2, name: 'fresh' });
    write(fresh);
    store.appendInbox([{ kind: 1, data: new Uint8Array([1, 2, 3]) }]);
    const r = store.applyRetention({ maxAgeMs: 7 * 24 * 3600_000 });
    assert.ok(r.traces >= old.requests.length, `old traces deleted (${r.traces})`);
    assert.ok(r.auditRequests >= old.requests.length + 1);
    for (const q of old.requests) assert.is(store.getTrace(q.traceId), undefined);
    assert.is(store.auditEvents('old-alone').length, 0);
    assert.is(store.findObjects('deployment', 'default', 'old').length, 0, 'objects nothing refers to any more');
    for (const q of fresh.requests) assert.ok(store.getTrace(q.traceId), 'fresh traces kept');
    assert.ok(store.getObjectSet(fresh.deploymentUid), 'the fresh object set is whole');
    assert.is(store.inboxStats().rows, 1, 'the inbox is never touched');
  } finally {
    Date.now = realNow;
    store.close();
  }
});

test('retention by size keeps the store under its target, oldest first', () => {
  const dir = newDir();
  const store = new TraceStore({ dir });
  for (let i = 1; i <= 200; i++) store.writeSync({ traces: [{ traceId: makeSpan({ trace: i, id: 1, name: '' }).traceId, spans: [bigSpan(i, 1), bigSpan(i, 2)], auditEvents: [], auditIds: [], reason: 'idle' }], unjoinedAuditEvents: [] });
  const before = store.size().usedBytes;
  const payload = store.payloadBytes();
  assert.ok(payload > 200 * 2 * 4000, `the data is counted (${payload} bytes)`);
  const target = Math.floor(before / 2);
  const r = store.applyRetention({ targetBytes: target });
  assert.ok(r.bySize && r.traces > 0);
  // Pages free only as they empty; the data itself is what shrinks to the target's share.
  assert.ok(store.payloadBytes() <= payload / 2 + 1, `${store.payloadBytes()} <= ${payload / 2}`);
  assert.ok(r.traces < 200, 'not everything');
  assert.is(store.getTrace(makeSpan({ trace: 1, id: 1, name: '' }).traceId), undefined, 'the oldest went');
  assert.ok(store.getTrace(makeSpan({ trace: 200, id: 1, name: '' }).traceId), 'the newest stayed');
  store.close();
});

test('StoreMaintenance runs retention and reports the size; a failure is logged, never thrown', () => {
  const dir = newDir();
  const store = new TraceStore({ dir });
  const metrics = new PipelineMetrics();
  const m = new StoreMaintenance({ store, metrics, logger: silentLogger(), maxAgeMs: 0, maxSizeBytes: 10 * 1024 * 1024, intervalMs: 3_600_000 });
  m.run();
  store.close();
  m.run(); // the store is closed: logged, not thrown
  m.stop();
});

test('the data directory is 0700 and the database files 0600, also when they existed with other modes', () => {
  const dir = newDir();
  chmodSync(dir, 0o755);
  const store = new TraceStore({ dir });
  store.writeSync({ traces: [{ traceId: makeSpan({ trace: 1, id: 1, name: '' }).traceId, spans: [bigSpan(1, 1)], auditEvents: [], auditIds: [], reason: 'idle' }], unjoinedAuditEvents: [] });
  const mode = (p: string) => statSync(p).mode & 0o777;
  assert.is(mode(dir), 0o700);
  for (const f of readdirSync(dir)) assert.is(mode(join(dir, f)), 0o600, `${f} is 0600`);
  assert.ok(readdirSync(dir).some((f) => f.endsWith('-wal')), 'the WAL file is there (and checked)');
  store.close();
  chmodSync(join(dir, 'kube-correlate.db'), 0o644);
  new TraceStore({ dir }).close();
  assert.is(mode(join(dir, 'kube-correlate.db')), 0o600, 'tightened on open');
});

test.run();
