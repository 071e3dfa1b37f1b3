import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  AuditFormatError,
  MAX_AUDIT_EVENT_DEPTH,
  MAX_AUDIT_ID_LENGTH,
  auditIDForSpans,
  isAuditEventError,
  parseAuditLine,
  parseAuditTimestamp,
  parseEventList,
  parseEventListJson,
  validateAuditEvent,
} from '../src/index.js';
import { v1Event } from './helpers.js';

/** Items as the webhook backend sends them: the list is encoded as a whole, items carry no kind/apiVersion. */
function item(auditID: string, stage = 'ResponseComplete', extra: Record<string, unknown> = {}): Record<string, unknown> {
  const { kind: _k, apiVersion: _a, ...rest } = v1Event(auditID, stage);
  return { ...rest, ...extra };
}

function throwsFormat(body: unknown, pattern: RegExp): void {
  try {
    parseEventList(body);
  } catch (err) {
    assert.instance(err, AuditFormatError);
    assert.match((err as Error).message, pattern);
    return;
  }
  assert.unreachable(`expected AuditFormatError for ${JSON.stringify(body)}`);
}

test('v1 EventList: every item becomes an event stamped with the list apiVersion', () => {
  const body = { kind: 'EventList', apiVersion: 'audit.k8s.io/v1', metadata: {}, items: [item('a1', 'RequestReceived'), item('a1'), item('a2')] };
  const { events, errors } = parseEventList(body);
  assert.equal(errors, []);
  assert.equal(events.map((e) => `${e.auditID}/${e.stage}`), ['a1/RequestReceived', 'a1/ResponseComplete', 'a2/ResponseComplete']);
  assert.is(events[0]!.apiVersion, 'audit.k8s.io/v1');
  assert.is(events[0]!.kind, 'Event');
  assert.is(events[0]!.objectRef?.name, 'cm1');
  // The caller's body is not modified.
  assert.is((body.items[0] as Record<string, unknown>).apiVersion, undefined);
});

test('v1beta1 EventList: deprecated second-precision fields fill missing microsecond timestamps, originals kept', () => {
  const old = item('b1', 'ResponseComplete', {
    requestReceivedTimestamp: undefined,
    stageTimestamp: null,
    timestamp: '2019-03-01T10:00:00Z',
    metadata: { creationTimestamp: '2019-03-01T10:00:01Z' },
    userAgent: undefined,
  });
  const current = item('b2', 'ResponseComplete', { timestamp: '2019-03-01T10:00:00Z', metadata: { creationTimestamp: '2019-03-01T10:00:01Z' } });
  const { events, errors } = parseEventList({ kind: 'EventList', apiVersion: 'audit.k8s.io/v1beta1', metadata: {}, items: [old, current] });
  assert.equal(errors, []);
  assert.is(events[0]!.apiVersion, 'audit.k8s.io/v1beta1');
  assert.is(events[0]!.requestReceivedTimestamp, '2019-03-01T10:00:00Z');
  assert.is(events[0]!.stageTimestamp, '2019-03-01T10:00:01Z');
  assert.is(events[0]!.timestamp, '2019-03-01T10:00:00Z');
  assert.equal(events[0]!.metadata, { creationTimestamp: '2019-03-01T10:00:01Z' });
  // Microsecond fields win when both are present.
  assert.is(events[1]!.requestReceivedTimestamp, '2026-11-21T05:49:15.123456Z');
  assert.is(events[1]!.stageTimestamp, '2026-11-21T05:49:15.223456Z');
});

test('v1 events do not fall back to v1beta1 fields', () => {
  const r = validateAuditEvent(v1Event('c1', 'ResponseComplete', { stageTimestamp: undefined, metadata: { creationTimestamp: '2019-03-01T10:00:01Z' } }));
  assert.is(r, 'stageTimestamp: missing');
});

test('items: null is an empty batch', () => {
  assert.equal(parseEventList({ kind: 'EventList', apiVersion: 'audit.k8s.io/v1', metadata: {}, items: null }), { events: [], errors: [] });
  assert.equal(parseEventList({ kind: 'EventList', apiVersion: 'audit.k8s.io/v1', items: [] }), { events: [], errors: [] });
});

test('bodies that are not an EventList throw AuditFormatError saying what was expected and what came', () => {
  throwsFormat(null, /expected an audit\.k8s\.io EventList object, got null/);
  throwsFormat('{"kind":"EventList"}', /EventList object, got the string/);
  throwsFormat([item('x')], /EventList object, got an array \(1 items\)/);
  throwsFormat(42, /got the number 42/);
  throwsFormat({ kind: 'Event', apiVersion: 'audit.k8s.io/v1' }, /expected kind "EventList", got the string "Event" \(a single Event/);
  throwsFormat({ apiVersion: 'audit.k8s.io/v1', items: [] }, /expected kind "EventList", got nothing/);
  throwsFormat({ kind: 'EventList', apiVersion: 'audit.k8s.io/v1alpha1', items: [] }, /expected apiVersion audit\.k8s\.io\/v1 or audit\.k8s\.io\/v1beta1, got the string "audit\.k8s\.io\/v1alpha1"/);
  throwsFormat({ kind: 'EventList', items: [] }, /expected apiVersion .* got nothing/);
  throwsFormat({ kind: 'EventList', apiVersion: 'audit.k8s.io/v1', items: { a: 1 } }, /expected "items" to be an array, got an object/);
  throwsFormat({ kind: 'EventList', apiVersion: 'audit.k8s.io/v1' }, /expected "items" to be an array, got nothing/);
});

test('parseEventListJson: invalid JSON is a format error, valid JSON is parsed', () => {
  assert.throws(() => parseEventListJson('{"kind":'), (e: unknown) => e instanceof AuditFormatError && /invalid JSON/.test((e as Error).message));
  const body = JSON.stringify({ kind: 'EventList', apiVersion: 'audit.k8s.io/v1', metadata: {}, items: [item('j1')] });
  assert.is(parseEventListJson(new TextEncoder().encode(body)).events[0]!.auditID, 'j1');
});

test('mixed valid and invalid items: good ones kept, bad ones reported with their index', () => {
  const items = [
    item('ok0'),
    item('bad1', 'ResponseComplete', { auditID: undefined }),
    item('ok2', 'RequestReceived'),
    item('bad3', 'Finished'),
    item('bad4', 'ResponseComplete', { stageTimestamp: '2026-11-21 05:49:15' }),
    'not an event',
    item('bad6', 'ResponseComplete', { requestReceivedTimestamp: '2026-02-30T00:00:00.000000Z' }),
    item('ok7', 'Panic'),
    item('bad8', 'ResponseComplete', { auditID: '' }),
    item('bad9', 'ResponseComplete', { user: 'admin' }),
    item('bad10', 'ResponseComplete', { apiVersion: 'audit.k8s.io/v2' }),
  ];
  const { events, errors } = parseEventList({ kind: 'EventList', apiVersion: 'audit.k8s.io/v1', metadata: {}, items });
  assert.equal(events.map((e) => e.auditID), ['ok0', 'ok2', 'ok7']);
  assert.equal(errors.map((e) => e.index), [1, 3, 4, 5, 6, 8, 9, 10]);
  const reasons = errors.map((e) => e.reason);
  assert.is(reasons[0], 'auditID: missing');
  assert.match(reasons[1]!, /^stage: expected one of RequestReceived, ResponseStarted, ResponseComplete, Panic, got the string "Finished"$/);
  assert.match(reasons[2]!, /^stageTimestamp: the string "2026-11-21 05:49:15" is not an RFC 3339 timestamp$/);
  assert.match(reasons[3]!, /^event: expected an object, got the string/);
  assert.match(reasons[4]!, /^requestReceivedTimestamp: .* is not an RFC 3339 timestamp$/);
  assert.is(reasons[5], 'auditID: empty');
  assert.match(reasons[6]!, /^user: expected an object/);
  assert.match(reasons[7]!, /^apiVersion: expected one of/);
  for (const r of reasons) assert.not.match(r, /\n/);
});

test('validateAuditEvent: required fields and the types of optional fields read downstream', () => {
  assert.type(validateAuditEvent(v1Event('v1')), 'object');
  assert.is(validateAuditEvent(v1Event('v2', 'ResponseComplete', { verb: undefined })), 'verb: missing');
  assert.is(validateAuditEvent(v1Event('v3', 'ResponseComplete', { requestURI: 5 })), 'requestURI: expected a string, got the number 5');
  assert.is(validateAuditEvent(v1Event('v4', 'ResponseComplete', { level: undefined })), 'level: missing');
  assert.is(validateAuditEvent(v1Event('v5', 'ResponseComplete', { kind: 'Policy' })), 'kind: expected "Event", got the string "Policy"');
  assert.match(validateAuditEvent(v1Event('v6', 'ResponseComplete', { responseStatus: { code: '200' } })) as string, /^responseStatus\.code: expected an integer/);
  assert.match(validateAuditEvent(v1Event('v7', 'ResponseComplete', { sourceIPs: '1.2.3.4' })) as string, /^sourceIPs: expected an array of strings/);
  assert.match(validateAuditEvent(v1Event('v8', 'ResponseComplete', { annotations: { a: 1 } })) as string, /^annotations\["a"\]: expected a string/);
  // null optional fields are dropped so readers see one shape; unknown fields are kept.
  const e = validateAuditEvent(v1Event('v9', 'ResponseComplete', { objectRef: null, somethingNew: { x: 1 } }));
  assert.type(e, 'object');
  assert.ok(!('objectRef' in (e as object)));
  assert.equal((e as Record<string, unknown>).somethingNew, { x: 1 });
  // A standalone event without apiVersion is accepted and left without one.
  const { kind: _k, apiVersion: _a, ...bare } = v1Event('v10');
  assert.is((validateAuditEvent(bare) as Record<string, unknown>).apiVersion, undefined);
});

test(`auditID: up to ${MAX_AUDIT_ID_LENGTH} characters (what the query API accepts), longer is an item error naming the length`, () => {
  const max = 'a'.repeat(MAX_AUDIT_ID_LENGTH);
  const r = parseEventList({ kind: 'EventList', apiVersion: 'audit.k8s.io/v1', items: [item(max), item(`${max}b`), item('é'.repeat(MAX_AUDIT_ID_LENGTH))] });
  assert.equal(r.events.map((e) => e.auditID.length), [MAX_AUDIT_ID_LENGTH, MAX_AUDIT_ID_LENGTH]);
  assert.equal(r.errors, [{ index: 1, reason: `auditID: ${MAX_AUDIT_ID_LENGTH + 1} characters, longer than the limit of ${MAX_AUDIT_ID_LENGTH}` }]);
  const line = parseAuditLine(JSON.stringify(v1Event('z'.repeat(10_000), 'ResponseComplete')), 7);
  assert.ok(isAuditEventError(line));
  assert.match((line as { reason: string }).reason, /^auditID: 10000 characters, longer than the limit of 1024$/);
});

test('parseAuditTimestamp: microseconds, offsets, and what is not RFC 3339', () => {
  assert.is(parseAuditTimestamp('1970-01-01T00:00:00Z'), 0n);
  assert.is(parseAuditTimestamp('2026-11-21T05:49:15.123456Z'), BigInt(Date.UTC(2026, 10, 21, 5, 49, 15)) * 1_000_000n + 123_456_000n);
  assert.is(parseAuditTimestamp('2026-11-21T06:49:15.123456+01:00'), parseAuditTimestamp('2026-11-21T05:49:15.123456Z'));
  assert.is(parseAuditTimestamp('2024-02-29T00:00:00Z'), BigInt(Date.UTC(2024, 1, 29)) * 1_000_000n);
  for (const bad of ['2023-02-29T00:00:00Z', '2026-13-01T00:00:00Z', '2026-11-21T24:00:00Z', '2026-11-21T05:49:60Z', '2026-11-21T05:49:15', '2026-11-21', '1732168155', '2026-11-21T05:49:15.Z']) {
    assert.is(parseAuditTimestamp(bad), undefined, bad);
  }
});

test('parseAuditLine: events, JSON errors with the line number, legacy format', () => {
  const ok = parseAuditLine(JSON.stringify(v1Event('l1')), 7);
  assert.ok(!isAuditEventError(ok));
  const bad = parseAuditLine('{"kind":"Event",', 12);
  assert.ok(isAuditEventError(bad));
  assert.is((bad as { index: number }).index, 12);
  assert.match((bad as { reason: string }).reason, /^invalid JSON: /);
  const invalid = parseAuditLine(JSON.stringify(v1Event('l2', 'Done')), 3);
  assert.equal(invalid, { index: 3, reason: 'stage: expected one of RequestReceived, ResponseStarted, ResponseComplete, Panic, got the string "Done"' });
  const legacy = parseAuditLine('2017-09-05T17:34:14.123456789Z AUDIT: id="a0" stage="ResponseComplete" ip="1.2.3.4" method="get"', 1);
  assert.match((legacy as { reason: string }).reason, /--audit-log-format=json/);
});

test('auditIDForSpans: the first 64 bytes, as kube-apiserver puts on spans', () => {
  assert.is(auditIDForSpans('d2a97a82-f39e-41d0-8b31-dd74f42ac7fe'), 'd2a97a82-f39e-41d0-8b31-dd74f42ac7fe');
  assert.is(auditIDForSpans('x'.repeat(100)), 'x'.repeat(64));
});

/** JSON text of a value of `levels` nested objects and arrays (alternating, starting with an object). */
function nestedText(levels: number): string {
  let open = '';
  let close = '';
  for (let i = 0; i < levels; i++) {
    open += i % 2 ? '[' : '{"a":';
    close = (i % 2 ? ']' : '}') + close;
  }
  return `${open}1${close}`;
}

test(`nesting: an event ${MAX_AUDIT_EVENT_DEPTH} levels deep is kept, one more is an item error; the rest of the batch is kept`, () => {
  assert.is(MAX_AUDIT_EVENT_DEPTH, 1000);
  // The event is level 1: its requestObject may hold MAX - 1 levels.
  const atLimit = JSON.parse(nestedText(MAX_AUDIT_EVENT_DEPTH - 1));
  const over = JSON.parse(nestedText(MAX_AUDIT_EVENT_DEPTH));
  const { events, errors } = parseEventList({
    kind: 'EventList', apiVersion: 'audit.k8s.io/v1',
    items: [item('ok', 'ResponseComplete', { requestObject: atLimit }), item('deep', 'ResponseComplete', { responseObject: over }), item('unknown field', 'ResponseComplete', { extra: [over] }), item('after')],
  });
  assert.equal(events.map((e) => e.auditID), ['ok', 'after']);
  assert.equal(errors, [
    { index: 1, reason: `responseObject: objects and arrays nested deeper than ${MAX_AUDIT_EVENT_DEPTH} levels (counting the event as 1)` },
    { index: 2, reason: `extra: objects and arrays nested deeper than ${MAX_AUDIT_EVENT_DEPTH} levels (counting the event as 1)` },
  ]);
  // What was kept survives what the pipeline does with it next.
  assert.ok(JSON.stringify(events[0]).length > 0);
});

test('nesting: 100,000 levels in a webhook body or a log line are refused without a stack overflow', () => {
  const deep = nestedText(100_000);
  const body = `{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[${JSON.stringify(item('deep')).slice(0, -1)},"requestObject":${deep}},${JSON.stringify(item('next'))}]}`;
  const { events, errors } = parseEventListJson(body);
  assert.equal(events.map((e) => e.auditID), ['next']);
  assert.equal(errors.map((e) => [e.index, e.reason.split(':')[0]]), [[0, 'requestObject']]);
  const line = `${JSON.stringify(v1Event('deep')).slice(0, -1)},"responseObject":${deep}}`;
  const r = parseAuditLine(line, 7);
  assert.ok(isAuditEventError(r));
  assert.equal(r, { index: 7, reason: `responseObject: objects and arrays nested deeper than ${MAX_AUDIT_EVENT_DEPTH} levels (counting the event as 1)` });
});

test('reasons stay short whatever the keys: a 1 MiB annotation key or field name is cut to 60 characters', () => {
  const big = 'k'.repeat(1 << 20);
  const deep = JSON.parse(nestedText(MAX_AUDIT_EVENT_DEPTH));
  const { errors } = parseEventList({ kind: 'EventList', apiVersion: 'audit.k8s.io/v1', items: [item('a', 'ResponseComplete', { annotations: { [big]: 1 } }), item('b', 'ResponseComplete', { [big]: deep })] });
  assert.equal(errors, [
    { index: 0, reason: `annotations["${'k'.repeat(57)}..."]: expected a string, got the number 1` },
    { index: 1, reason: `"${'k'.repeat(57)}...": objects and arrays nested deeper than ${MAX_AUDIT_EVENT_DEPTH} levels (counting the event as 1)` },
  ]);
});

test.run();
