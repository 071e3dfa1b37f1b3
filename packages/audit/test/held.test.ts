import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  auditEventJson, auditEventsConflict, canonicalJson, fullAuditEvent, isHeldAuditEvent, readAuditEventJson, readAuditEventValue, REDACTED,
  summarizeAudit, validateAuditEvent, redactAuditEvent, type AuditEvent, type HeldAuditEvent,
} from '../src/index.js';
import { v1Event } from './helpers.js';

/**
 * Audit events held as their JSON text (held.ts): the text is kept as it came only when it says
 * what the validated, redacted event says; otherwise what is held is that event stringified. Either
 * way the text parses to what validation and redaction made of the event.
 */

const MARK = 'kc-held-marker-7f31';

function held(text: string): { event: HeldAuditEvent; original: boolean } {
  const r = readAuditEventJson(text);
  if ('error' in r) throw new Error(r.message);
  return r;
}

/** What the re-serializing path (parse, validate, redact) makes of the text. */
function reference(text: string): AuditEvent {
  const v = validateAuditEvent(JSON.parse(text));
  if (typeof v === 'string') throw new Error(v);
  return redactAuditEvent(v).event;
}

const secretEvent = (data: unknown) => v1Event('held-secret', 'ResponseComplete', {
  level: 'RequestResponse',
  objectRef: { resource: 'secrets', namespace: 'd', name: 's', apiVersion: 'v1' },
  requestObject: { apiVersion: 'v1', kind: 'Secret', metadata: { name: 's' }, data },
});

test('an event that validation and redaction leave as it is: held as the very text it came in, whatever its spelling', () => {
  for (const text of [
    JSON.stringify(v1Event('held-1')),
    JSON.stringify(v1Event('held-2'), null, 2), // whitespace
    JSON.stringify(v1Event('held-3')).replace('kubectl', '\\u006bubectl').replace('/api', '\\/api'), // escapes (Go writes \u003c for <)
  ]) {
    const r = held(text);
    assert.ok(r.original, text);
    assert.is(auditEventJson(r.event), text, 'the same text');
    assert.equal(JSON.parse(auditEventJson(r.event)), reference(text), 'and it says what the event says');
    assert.equal(fullAuditEvent(r.event), reference(text));
  }
});

test('an event that validation normalizes, or redaction changes, or that names a key twice: held as the redacted event stringified', () => {
  const { kind: _k, ...noKind } = v1Event('held-4');
  const withNull = { ...v1Event('held-5'), userAgent: null };
  const v1beta1 = { ...v1Event('held-6'), apiVersion: 'audit.k8s.io/v1beta1', requestReceivedTimestamp: undefined, timestamp: '2026-11-21T05:49:15Z' };
  const redacted = JSON.stringify(secretEvent({ password: Buffer.from(`${MARK}-a`).toString('base64') }));
  // JSON.parse keeps the last of two keys: the first would carry a secret redaction never saw.
  const duplicateInside = JSON.stringify(secretEvent({ password: 'x' })).replace('"data":{', `"data":{"token":"${MARK}-b"},"data":{`);
  const duplicateTop = JSON.stringify(v1Event('held-7')).replace('"objectRef":', `"requestObject":{"data":{"k":"${MARK}-c"}},"requestObject":{"data":{}},"objectRef":`);
  for (const [what, text] of [['kind stamped', JSON.stringify(noKind)], ['null dropped', JSON.stringify(withNull)], ['v1beta1 timestamp', JSON.stringify(v1beta1)], ['redacted', redacted], ['duplicate key inside', duplicateInside], ['duplicate key at the top', duplicateTop]] as const) {
    const r = held(text);
    assert.not.ok(r.original, what);
    assert.is(auditEventJson(r.event), JSON.stringify(reference(text)), `${what}: the re-serialized event`);
    assert.not.ok(auditEventJson(r.event).includes(MARK), `${what}: no secret in the held text`);
  }
  assert.ok(auditEventJson(held(redacted).event).includes(REDACTED));
});

test('a held event carries the fields the join and the audit span read, and summarizes like the whole event', () => {
  const whole = v1Event('held-8', 'ResponseComplete', { responseStatus: { metadata: {}, code: 201 }, annotations: { a: 'b' } });
  const r = held(JSON.stringify(whole));
  assert.ok(isHeldAuditEvent(r.event));
  const s = summarizeAudit([r.event]);
  const w = summarizeAudit([whole as unknown as AuditEvent]);
  for (const k of ['auditID', 'verb', 'user', 'userAgent', 'objectRef', 'code', 'requestURI', 'level', 'stages', 'requestReceivedTimestamp'] as const) assert.equal(s[k], w[k], k);
  assert.is(JSON.stringify(r.event), JSON.stringify({ ...r.event }), 'the text is not an enumerable field');
  assert.not.ok('annotations' in r.event, 'what the join does not read is only in the text');
});

test('conflicts between held copies are decided on the whole events, as between parsed ones', () => {
  const a = v1Event('held-9');
  const b = { ...a, annotations: { extra: 'differs only in the text' } };
  const [ha, hb, ha2] = [held(JSON.stringify(a)).event, held(JSON.stringify(b)).event, held(JSON.stringify(a, null, 1)).event];
  assert.ok(auditEventsConflict(ha, hb), 'the held fields are equal, the events are not');
  assert.not.ok(auditEventsConflict(ha, ha2), 'the same event spelled otherwise');
  assert.is(auditEventsConflict(ha, hb), auditEventsConflict(a as unknown as AuditEvent, b as unknown as AuditEvent));
  assert.is(canonicalJson(fullAuditEvent(hb)), canonicalJson(reference(JSON.stringify(b))));
});

test('invalid text and invalid events are refused with a reason; a parsed value is held re-serialized', () => {
  const json = readAuditEventJson('{"auditID":');
  assert.ok('error' in json && json.error === 'invalid_json' && /invalid JSON/.test(json.message));
  const bad = readAuditEventJson(JSON.stringify({ ...v1Event('held-10'), stage: 'Nope' }));
  assert.ok('error' in bad && bad.error === 'invalid_event' && /stage/.test(bad.message));
  const v = readAuditEventValue(JSON.parse(JSON.stringify(v1Event('held-11'), null, 2)));
  assert.ok(!('error' in v) && !v.original && auditEventJson(v.event) === JSON.stringify(reference(JSON.stringify(v1Event('held-11')))));
});

test.run();
