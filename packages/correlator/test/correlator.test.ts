import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { auditEvent, makeSpan } from '@kube-correlate/fixtures';
import { PipelineMetrics } from '@kube-correlate/telemetry';
import { Correlator, StoreUnavailableError, type CorrelatorOutput, type InboxStore } from '../src/index.js';

/**
 * The embedded driver (correlator.ts) over an in-process fake of the store: an OK means durable
 * (the inbox, one commit for concurrent requests), a restart replays what was acknowledged and not
 * stored, a poison item is set aside and the rest goes on, a store that cannot write refuses
 * retryably and recovers by itself, and stop ends within its timeout.
 */
class FakeStore implements InboxStore {
  inbox = new Map<number, { kind: 1 | 2; data: Uint8Array }>();
  seq = 0;
  appendCalls = 0;
  written: CorrelatorOutput[] = [];
  quarantined: Array<{ what: string; reason: string; data?: Uint8Array }> = [];
  /** Makes the next writes (or appends) throw this. */
  failWrites: unknown;
  failAppends: unknown;
  /** A trace id whose write throws a non-retryable error (poison). */
  poison = '';
  /** Calls in order: `append`, or `write <spans and audit events written> <inbox rows left>`. */
  log: string[] = [];

  appendInbox(rows: ReadonlyArray<{ kind: 1 | 2; data: Uint8Array }>): number[] {
    this.appendCalls++;
    this.log.push('append');
    if (this.failAppends) throw this.failAppends;
    return rows.map((r) => {
      this.inbox.set(++this.seq, r);
      return this.seq;
    });
  }
  inboxRows(fromSeq: number, limit: number) {
    return [...this.inbox].filter(([s]) => s >= fromSeq).slice(0, limit).map(([seq, r]) => ({ seq, ...r }));
  }
  inboxData(seq: number) {
    return this.inbox.get(seq)?.data;
  }
  writeSync(output: CorrelatorOutput, opts: { inboxBefore?: number } = {}): void {
    if (this.failWrites) throw this.failWrites;
    if (this.poison && output.traces.some((t) => t.traceId === this.poison)) throw new RangeError('Maximum call stack size exceeded');
    this.written.push(output);
    if (opts.inboxBefore !== undefined) for (const s of [...this.inbox.keys()]) if (s < opts.inboxBefore) this.inbox.delete(s);
    const items = output.traces.reduce((n, t) => n + t.spans.length + t.auditEvents.length, 0) + output.unjoinedAuditEvents.length;
    this.log.push(`write ${items} ${this.inbox.size}`);
  }
  quarantine(what: string, reason: string, _summary: string, data?: Uint8Array): void {
    this.quarantined.push({ what, reason, ...(data ? { data } : {}) });
  }
  spans(): string[] {
    return this.written.flatMap((o) => o.traces.flatMap((t) => t.spans.map((s) => `${s.traceId}/${s.spanId}`))).sort();
  }
  audits(): string[] {
    return this.written.flatMap((o) => [...o.traces.flatMap((t) => t.auditEvents), ...o.unjoinedAuditEvents].map((e) => `${e.auditID}/${e.stage}`)).sort();
  }
}

function driver(store: FakeStore, clock: { t: number }, opts: Partial<ConstructorParameters<typeof Correlator>[0]> = {}) {
  return new Correlator({ store, settleAfterMs: 100, pendingAuditTtlMs: 1000, now: () => clock.t, retryPauseMs: 10, metrics: new PipelineMetrics(), ...opts });
}

const spans = (trace: number, n = 2) => Array.from({ length: n }, (_, i) => makeSpan({ trace, id: i + 1, parent: i ? 1 : 0, name: `s${i}`, ...(i === 1 ? { auditId: `a${trace}` } : {}) }));
const audit = (trace: number) => [auditEvent({ auditID: `a${trace}`, stage: 'RequestReceived' }), auditEvent({ auditID: `a${trace}`, stage: 'ResponseComplete' })];

test('an OK means the inbox has it: concurrent requests share one commit', async () => {
  const store = new FakeStore();
  const c = driver(store, { t: 0 });
  await c.start();
  await Promise.all(Array.from({ length: 20 }, (_, i) => c.consumeSpans(spans(i + 1))));
  assert.is(store.appendCalls, 1, 'one commit for the 20 requests that arrived together');
  assert.is(store.inbox.size, 20, 'each acknowledged request is in the inbox before the answer');
  assert.is(store.written.length, 0, 'nothing settled yet');
  await c.stop();
});

test('a crash loses nothing acknowledged: the next start replays the inbox; what it stored leaves the inbox', async () => {
  const store = new FakeStore();
  const clock = { t: 0 };
  const first = driver(store, clock);
  await first.start();
  for (let i = 1; i <= 5; i++) await first.consumeSpans(spans(i));
  for (let i = 1; i <= 3; i++) await first.consumeAuditEvents(audit(i));
  await first.consumeAuditEvents([auditEvent({ auditID: 'alone', stage: 'ResponseComplete' })]); // no spans ever
  clock.t = 150;
  await first.tick(); // traces 1-5 settle and are written; the audit-only request still waits
  const before = store.spans().length;
  assert.is(before, 10);
  // SIGKILL: the driver is gone without stop(); a new one on the same store.
  const second = driver(store, clock);
  await second.start();
  await second.stop();
  assert.equal(store.audits().filter((a) => a.startsWith('alone')), ['alone/ResponseComplete'], 'the audit-only request, acknowledged before the crash, is stored');
  assert.is(new Set(store.spans()).size, 10, 'every span stored (replays are duplicates, merged by the store\'s keys)');
  assert.is(store.inbox.size, 0, 'the inbox is empty once everything is stored');
});

test('the inbox keeps a row until everything it held is stored', async () => {
  const store = new FakeStore();
  const clock = { t: 0 };
  const c = driver(store, clock);
  await c.start();
  // One request with spans of two traces; only trace 1's audit comes, and trace 2 keeps getting spans.
  await c.consumeSpans([...spans(1), ...spans(2)]);
  clock.t = 90;
  await c.consumeSpans([makeSpan({ trace: 2, id: 9, parent: 1, name: 'late' })]);
  clock.t = 150;
  await c.tick();
  assert.equal([...new Set(store.written.flatMap((o) => o.traces.map((t) => t.traceId)))].length, 1, 'trace 1 settled, trace 2 not yet');
  assert.is(store.inbox.size, 2, 'the first row still holds trace 2');
  clock.t = 300;
  await c.tick();
  assert.is(store.inbox.size, 0);
  await c.stop();
});

test('a poison item is set aside with the bytes it came from; the rest is stored and the inbox moves on', async () => {
  const store = new FakeStore();
  const clock = { t: 0 };
  const c = driver(store, clock);
  await c.start();
  await c.consumeSpans(spans(1));
  await c.consumeSpans(spans(2));
  await c.consumeSpans(spans(3));
  store.poison = spans(2)[0]!.traceId;
  clock.t = 150;
  await c.tick();
  assert.equal(store.quarantined.map((q) => q.what), ['trace']);
  assert.match(store.quarantined[0]!.reason, 'Maximum call stack');
  assert.ok(store.quarantined[0]!.data && store.quarantined[0]!.data.length > 4, 'the received bytes are kept');
  assert.equal([...new Set(store.spans().map((s) => s.split('/')[0]))].sort(), [spans(1)[0]!.traceId, spans(3)[0]!.traceId].sort());
  assert.is(store.inbox.size, 0, 'the poison does not hold the inbox back');
  await c.consumeSpans(spans(4));
  clock.t = 300;
  await c.tick();
  assert.ok(store.spans().some((s) => s.startsWith(spans(4)[0]!.traceId)), 'later data is stored');
  await c.stop();
});

test('a full disk: retryable refusals while the store cannot write, nothing acknowledged lost, recovery by itself', async () => {
  const store = new FakeStore();
  const clock = { t: 0 };
  const c = driver(store, clock);
  await c.start();
  await c.consumeSpans(spans(1));
  store.failWrites = Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' });
  clock.t = 150;
  await c.tick();
  assert.match(c.refusing() ?? '', 'full');
  await c.consumeSpans(spans(2)).then(() => assert.unreachable('refused'), (e: Error) => assert.instance(e, StoreUnavailableError));
  store.failAppends = store.failWrites;
  store.failWrites = undefined;
  // An append that fails is refused too (the inbox is on the same disk).
  clock.t = 200;
  await c.tick();
  assert.is(c.refusing(), undefined, 'a write succeeded: accepting again');
  await c.consumeSpans(spans(3)).then(() => assert.unreachable('refused'), (e: Error) => assert.instance(e, StoreUnavailableError));
  store.failAppends = undefined;
  await c.consumeSpans(spans(4));
  clock.t = 400;
  await c.stop();
  const traces = new Set(store.spans().map((s) => s.split('/')[0]));
  assert.ok(traces.has(spans(1)[0]!.traceId) && traces.has(spans(4)[0]!.traceId), 'what was acknowledged is stored');
  assert.not.ok(traces.has(spans(2)[0]!.traceId) || traces.has(spans(3)[0]!.traceId), 'what was refused is not (the sender retries it)');
});

test('a large settle is written in slices with the event loop turning between them; only the last releases the inbox', async () => {
  const store = new FakeStore();
  const clock = { t: 0 };
  const c = driver(store, clock, { writeSliceItems: 10 });
  await c.start();
  // 12 traces of 3 spans, one of 15 (bigger than a slice: written alone), 2 unjoined audit events.
  await Promise.all([...Array.from({ length: 12 }, (_, i) => c.consumeSpans(spans(i + 1, 3))), c.consumeSpans(spans(50, 15)), c.consumeAuditEvents(audit(99))]);
  const rows = store.inbox.size;
  assert.is(rows, 14);
  store.log = [];
  clock.t = 2000;
  const settling = c.tick();
  // Arrives while the settle is being written: its commit must not wait for all of it.
  const late = c.consumeSpans(spans(60));
  await Promise.all([settling, late]);
  const writes = store.log.filter((l) => l.startsWith('write'));
  const sizes = writes.map((l) => Number(l.split(' ')[1]));
  assert.ok(writes.length >= 5, `written in slices: ${store.log.join(', ')}`);
  assert.is(sizes.reduce((a, b) => a + b, 0), 12 * 3 + 15 + 2, 'every span and audit event, once');
  for (const n of sizes) assert.ok(n <= 10 || n === 15, `a slice holds at most 10 items, or one trace: ${n}`);
  const appendAt = store.log.indexOf('append');
  assert.ok(appendAt > 0 && appendAt < store.log.length - 1, `the late request was committed between two slices: ${store.log.join(', ')}`);
  for (const w of writes.slice(0, -1)) assert.ok(Number(w.split(' ')[2]) >= rows, `no slice but the last frees inbox rows: ${w}`);
  assert.is(store.inbox.size, 1, 'after the last slice only the late request is left');
  await c.stop();
});

test('stop ends within its timeout when the store keeps failing; the inbox keeps the data', async () => {
  const store = new FakeStore();
  const c = new Correlator({ store, settleAfterMs: 100, retryPauseMs: 10, metrics: new PipelineMetrics() });
  await c.start();
  await c.consumeSpans(spans(1));
  store.failWrites = Object.assign(new Error('disk I/O error'), { code: 'SQLITE_IOERR_WRITE' });
  const t0 = Date.now();
  await c.stop(300);
  assert.ok(Date.now() - t0 < 30_000, 'stop returned (a liveness bound, not a timing)');
  assert.is(store.inbox.size, 1, 'the acknowledged request stays in the inbox for the next start');
});

test.run();
