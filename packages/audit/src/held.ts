/**
 * Audit events held as their JSON text (the Kafka correlator, issue 15): an event read from Kafka
 * is kept as the text it came in (or, when validation or redaction changed it, the text of what
 * they made of it) plus its auditID and stage (the join's keys). The parsed event is garbage as
 * soon as it was read; the fields the audit span's attributes read are parsed from the text again
 * when first asked for (at settle), and the text goes out as it is (the audit span's
 * `k8s.audit.event`, the repartition message) instead of being stringified again.
 *
 * Measured (packages/correlator/bench/raw-spans.ts, on the recordings, heap per span held with the
 * audit events joined): 1,075 bytes held so, 1,133 parsed, 1,184 with the attribute fields kept as
 * objects beside the text. The parse at settle costs about what the stringify it replaces did.
 */
import { validateAuditEvent } from './event-list.js';
import type { AuditEvent } from './model.js';
import { DEFAULT_RULES, redactAuditEvent, type Redaction, type RedactionRules } from './redact.js';

const JSON_TEXT: unique symbol = Symbol('kube-correlate.auditEventJson');

/**
 * An audit event held as its JSON text (auditEventJson, fullAuditEvent) with its auditID and stage;
 * verb, requestURI, level, user, userAgent, objectRef, responseStatus and the two timestamps are
 * getters that parse the text on first use. Read-only, and no other field: JSON.stringify of one
 * says nothing (auditEventJson is its JSON).
 */
export interface HeldAuditEvent extends AuditEvent {
  readonly [JSON_TEXT]: string;
}

export function isHeldAuditEvent(e: AuditEvent): e is HeldAuditEvent {
  return typeof (e as Partial<HeldAuditEvent>)[JSON_TEXT] === 'string';
}

/** The event's JSON: a held event's text as held, any other event stringified. */
export function auditEventJson(e: AuditEvent): string {
  return isHeldAuditEvent(e) ? e[JSON_TEXT] : JSON.stringify(e);
}

/** The whole event: a held event's text parsed again (rare paths: conflicting duplicates), any other event as it is. */
export function fullAuditEvent(e: AuditEvent): AuditEvent {
  return isHeldAuditEvent(e) ? (JSON.parse(e[JSON_TEXT]) as AuditEvent) : e;
}

class Held {
  readonly [JSON_TEXT]: string;
  /** The text parsed, once a getter was used (at settle, just before the event is written and let go). */
  private whole: AuditEvent | undefined;
  constructor(readonly auditID: string, readonly stage: AuditEvent['stage'], json: string) {
    this[JSON_TEXT] = json;
  }
  private f(): AuditEvent {
    return (this.whole ??= JSON.parse(this[JSON_TEXT]) as AuditEvent);
  }
  get verb(): string { return this.f().verb; }
  get requestURI(): string { return this.f().requestURI; }
  get level(): string { return this.f().level; }
  get user(): AuditEvent['user'] { return this.f().user; }
  get userAgent(): string | undefined { return this.f().userAgent; }
  get objectRef(): AuditEvent['objectRef'] { return this.f().objectRef; }
  get responseStatus(): AuditEvent['responseStatus'] { return this.f().responseStatus; }
  get requestReceivedTimestamp(): string { return this.f().requestReceivedTimestamp; }
  get stageTimestamp(): string { return this.f().stageTimestamp; }
}

/** `event` as held: `json` must be its JSON text. */
export function holdAuditEvent(event: AuditEvent, json: string): HeldAuditEvent {
  return new Held(event.auditID, event.stage, json) as unknown as HeldAuditEvent;
}

export type ReadAuditEvent =
  | { event: HeldAuditEvent; redactions: Redaction[]; /** The text was kept as it came (else re-serialized). */ original: boolean }
  | { error: 'invalid_json' | 'invalid_event'; message: string };

/**
 * One audit event from its JSON text (a Kafka message): parsed, validated (validateAuditEvent),
 * redacted (redactAuditEvent), and held (holdAuditEvent). The text is kept as it came only when
 * it says exactly what the redacted event says: validation normalized nothing, redaction changed
 * nothing, and no object in it names a key twice (JSON.parse keeps the last of duplicate keys, so
 * the text could carry a value redaction never saw). Otherwise the held text is the redacted
 * event stringified, what a re-serializing reader would write.
 */
export function readAuditEventJson(text: string, rules: RedactionRules = DEFAULT_RULES): ReadAuditEvent {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return { error: 'invalid_json', message: `invalid JSON: ${(err as Error).message}` };
  }
  const event = validateAuditEvent(value);
  if (typeof event === 'string') return { error: 'invalid_event', message: event };
  const r = redactAuditEvent(event, rules);
  const original = r.event === event && sameFields(value as Record<string, unknown>, event) && jsonKeyCount(text) === valueKeyCount(value);
  return { event: holdAuditEvent(r.event, original ? text : JSON.stringify(r.event)), redactions: r.redactions, original };
}

/**
 * An already parsed audit event (a message that carried it inside other JSON) validated, redacted
 * and held, its text re-serialized.
 */
export function readAuditEventValue(value: unknown, rules: RedactionRules = DEFAULT_RULES): ReadAuditEvent {
  const event = validateAuditEvent(value);
  if (typeof event === 'string') return { error: 'invalid_event', message: event };
  const r = redactAuditEvent(event, rules);
  return { event: holdAuditEvent(r.event, JSON.stringify(r.event)), redactions: r.redactions, original: false };
}

/** Whether validation left the parsed value's top-level fields as they were (it copies the top level, changing nothing below). */
function sameFields(value: Record<string, unknown>, event: AuditEvent): boolean {
  let n = 0;
  for (const k in value) {
    if (event[k] !== value[k]) return false;
    n++;
  }
  return Object.keys(event).length === n;
}

/** Keys of every object in a parsed JSON value. */
function valueKeyCount(v: unknown): number {
  if (typeof v !== 'object' || v === null) return 0;
  let n = 0;
  if (Array.isArray(v)) {
    for (const x of v) n += valueKeyCount(x);
    return n;
  }
  for (const k in v) n += 1 + valueKeyCount((v as Record<string, unknown>)[k]);
  return n;
}

/**
 * Keys written in a JSON text (valid JSON: it parsed): strings followed by a colon. Outside a
 * string the next quote always opens one, so the scan jumps from string to string.
 */
function jsonKeyCount(text: string): number {
  let n = 0;
  let open = text.indexOf('"');
  while (open !== -1) {
    let close = open;
    for (;;) {
      close = text.indexOf('"', close + 1);
      if (close === -1) return -1;
      let b = close - 1;
      while (text.charCodeAt(b) === 92 /* \ */) b--;
      if ((close - 1 - b) % 2 === 0) break; // not escaped
    }
    let k = close + 1;
    let c = text.charCodeAt(k);
    while (c === 32 || c === 9 || c === 10 || c === 13) c = text.charCodeAt(++k);
    if (c === 58 /* : */) n++;
    open = text.indexOf('"', k);
  }
  return n;
}
