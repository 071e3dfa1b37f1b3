import { createHash } from 'node:crypto';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  auditIDForSpans, auditSpanId, lateAuditSpanId, objectRequestSpanId, objectSetChainSpanId, objectSetRootSpanId, objectSetSpanId, objectSetTraceId,
  objectSetWindowStart, objectSpanId, unjoinedTraceId,
} from '../src/index.js';

/**
 * Every derived id against the documented input string, hashed here with node:crypto directly, and
 * against the value it has always had (ids are written to Jaeger and to Kafka: a change would split
 * a request's or a set's spans between an old and a new trace).
 */
const sha = (text: string, bytes: number) => createHash('sha256').update(text).digest('hex').slice(0, bytes * 2);

const AUDIT = '0a3e1b5c-6a1f-4d7e-9f65-1f1d3f0e2a11';
// The 87-character Audit-ID a client chose in the v1.37.2 recording: spans carry its first 64 bytes.
const LONG = 'client-chosen-audit-id-6d5d8f8b089989b0e32ddddd6275c87a21f96b771a3600caa445c375a08eab88';
const SET = '591491bc-3e0f-4c7b-8f1e-2b6f7a9d0c42';
const WINDOW = Date.parse('2026-12-02T16:00:00.000Z');

test('auditIDForSpans: the ID when it fits in 64 bytes, else its first 64 bytes', () => {
  assert.is(auditIDForSpans(AUDIT), AUDIT);
  assert.is(auditIDForSpans(LONG), LONG.slice(0, 64));
  assert.is(auditIDForSpans('x'.repeat(64)), 'x'.repeat(64));
  // 63 ASCII bytes then a 2-byte character: the cut falls inside it, which decodes as U+FFFD (3 bytes).
  assert.is(Buffer.byteLength(auditIDForSpans(`${'x'.repeat(63)}é`)), 63 + 3);
});

test('auditSpanId = 8 bytes of sha256("audit-span/<64-byte auditID>")', () => {
  assert.is(auditSpanId(AUDIT), sha(`audit-span/${AUDIT}`, 8));
  assert.is(auditSpanId(AUDIT), '7c62ffca613d2446');
  assert.is(auditSpanId(LONG), sha(`audit-span/${LONG.slice(0, 64)}`, 8));
  assert.is(auditSpanId(LONG), 'f67af06a214187c7');
  assert.is(auditSpanId(LONG), auditSpanId(LONG.slice(0, 64)), 'the full and the truncated form give the same span');
});

test('lateAuditSpanId = 8 bytes of sha256("audit-span/<auditID>/<stages sorted, comma-separated>")', () => {
  const id = lateAuditSpanId(AUDIT, ['ResponseStarted', 'ResponseComplete']);
  assert.is(id, sha(`audit-span/${AUDIT}/ResponseComplete,ResponseStarted`, 8));
  assert.is(id, '86088b238cce69d7');
  assert.is(lateAuditSpanId(AUDIT, ['ResponseComplete', 'ResponseStarted']), id, 'order of stages does not matter');
  assert.is.not(id, auditSpanId(AUDIT));
});

test('unjoinedTraceId = 16 bytes of sha256("audit-trace/<auditID>")', () => {
  assert.is(unjoinedTraceId(AUDIT), sha(`audit-trace/${AUDIT}`, 16));
  assert.is(unjoinedTraceId(AUDIT), '315118c4aeb420494153443d630231ed');
  assert.is(unjoinedTraceId(LONG), sha(`audit-trace/${LONG.slice(0, 64)}`, 16));
});

test('objectSetWindowStart: epoch-aligned windows', () => {
  assert.is(objectSetWindowStart(WINDOW + 59 * 60_000, 3_600_000), WINDOW);
  assert.is(objectSetWindowStart(WINDOW + 3_600_000, 3_600_000), WINDOW + 3_600_000);
  assert.is(objectSetWindowStart(WINDOW + 7 * 60_000, 5 * 60_000), WINDOW + 5 * 60_000);
});

test('objectSetTraceId = 16 bytes of sha256("objset/<set>/<window start, RFC 3339 ms>[/<part>]")', () => {
  assert.is(objectSetTraceId(SET, WINDOW), sha(`objset/${SET}/2026-12-02T16:00:00.000Z`, 16));
  assert.is(objectSetTraceId(SET, WINDOW), 'a2419cfca18479dac91c5b77d9477ffb');
  assert.is(objectSetTraceId(SET, WINDOW, 0), objectSetTraceId(SET, WINDOW), 'part 0 is the window itself');
  assert.is(objectSetTraceId(SET, WINDOW, 2), sha(`objset/${SET}/2026-12-02T16:00:00.000Z/2`, 16));
  assert.is(objectSetTraceId(SET, WINDOW, 2), '72fd46517b685c49ca13aeff9fdfd7c9');
});

test('object-set span ids = 8 bytes of sha256 of their parts joined by NUL', () => {
  assert.is(objectSetSpanId(SET, 'set'), sha(`${SET}\u0000set`, 8));
  assert.is(objectSetRootSpanId(SET), '11492504b088eff8');
  assert.is(objectSetRootSpanId(SET, WINDOW), sha(`${SET}\u0000set\u00002026-12-02T16:00:00.000Z`, 8));
  assert.is(objectSetRootSpanId(SET, WINDOW), '20573625c788fa9a');
  assert.is(objectSetRootSpanId(SET, WINDOW, 2), sha(`${SET}\u0000set\u00002026-12-02T16:00:00.000Z\u00002`, 8));
  assert.is(objectSetRootSpanId(SET, WINDOW, 2), '91758dec3ce2934a');
  assert.is(objectSpanId(SET, 'uid-1'), sha(`${SET}\u0000object\u0000uid-1`, 8));
  assert.is(objectSpanId(SET, 'uid-1'), '70fbdc967faf4bf7');
  assert.is(objectRequestSpanId(SET, 'uid-1', AUDIT), sha(`${SET}\u0000request\u0000uid-1\u0000${AUDIT}`, 8));
  assert.is(objectRequestSpanId(SET, 'uid-1', AUDIT), '712cf10638686212');
  const other = 'ab'.repeat(16);
  assert.is(objectSetChainSpanId(SET, 'next', other), sha(`${SET}\u0000next\u0000${other}`, 8));
  assert.is(objectSetChainSpanId(SET, 'next', other), '0c2bb2450048f972');
  assert.is(objectSetChainSpanId(SET, 'previous', other), sha(`${SET}\u0000previous\u0000${other}`, 8));
});

test('ids are lowercase hex of OTLP length, never all zero', () => {
  const ids8 = [auditSpanId(AUDIT), lateAuditSpanId(AUDIT, ['Panic']), objectSetRootSpanId(SET, WINDOW), objectSpanId(SET, 'u'), objectRequestSpanId(SET, 'u', AUDIT)];
  const ids16 = [unjoinedTraceId(AUDIT), objectSetTraceId(SET, WINDOW, 1)];
  for (const id of ids8) assert.match(id, /^(?!0+$)[0-9a-f]{16}$/);
  for (const id of ids16) assert.match(id, /^(?!0+$)[0-9a-f]{32}$/);
});

test.run();
