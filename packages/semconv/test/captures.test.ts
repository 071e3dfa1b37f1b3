import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  ANNOTATION_OBJSETID, ANNOTATION_SPAN, APISERVER_SERVICE, AUDIT_ANNOTATION_OBJSETID, AUDIT_ANNOTATION_TRACEPARENT, AUDIT_ID, auditIDForSpans,
  httpRequestInfo, isObjsetIdAuditAnnotation, SEMCONV, SERVICE_NAME,
} from '../src/index.js';

/**
 * The names we read, against the real kube-apiserver recordings (../shared/data/captures beside the
 * repository, or $KC_SHARED_DATA/captures; README there): OTLP/JSON as decoded by the upstream
 * opentelemetry-proto classes (otlp.jsonl), so no kube-correlate code stands between the wire and
 * the names; and the audit log.
 */
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..');
const CAPTURES = join(process.env['KC_SHARED_DATA'] ?? join(ROOT, '..', 'shared', 'data'), 'captures');
if (!existsSync(CAPTURES)) throw new Error(`the recordings are missing: ${CAPTURES} (set KC_SHARED_DATA)`);
const names = readdirSync(CAPTURES, { withFileTypes: true }).filter((d) => d.isDirectory() && existsSync(join(CAPTURES, d.name, 'otlp.jsonl'))).map((d) => d.name).sort();
if (names.length < 2) throw new Error(`expected the v1.34.4 and v1.37.2 recordings in ${CAPTURES}, found ${names.join(', ') || 'none'}`);

type AnyValue = { stringValue?: string; intValue?: string | number; boolValue?: boolean };
type KV = { key: string; value: AnyValue };
type Req = { resourceSpans?: Array<{ resource?: { attributes?: KV[] }; scopeSpans?: Array<{ spans?: Array<{ attributes?: KV[] }> }> }> };
type Meta = { annotations?: Record<string, string> };
type Event = { auditID: string; annotations?: Record<string, string>; responseObject?: { metadata?: Meta } };

const plain = (v: AnyValue): unknown => v.stringValue ?? (v.intValue !== undefined ? Number(v.intValue) : v.boolValue);

for (const name of names) {
  const t = suite(`capture ${name}`);
  const requests = readFileSync(join(CAPTURES, name, 'otlp.jsonl'), 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as Req);
  const resources = requests.flatMap((r) => r.resourceSpans ?? []);
  const spans = resources.flatMap((r) => (r.scopeSpans ?? []).flatMap((s) => s.spans ?? [])).map((s) => Object.fromEntries((s.attributes ?? []).map((kv) => [kv.key, plain(kv.value)])));
  const events = readFileSync(join(CAPTURES, name, 'audit.log'), 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as Event);
  const facts = JSON.parse(readFileSync(join(CAPTURES, name, 'facts.json'), 'utf8')) as { clientAuditID: string };

  t('kube-apiserver names its service SERVICE_NAME = APISERVER_SERVICE', () => {
    const services = new Set(resources.map((r) => r.resource?.attributes?.find((kv) => kv.key === SERVICE_NAME)?.value.stringValue));
    assert.equal([...services], [APISERVER_SERVICE]);
  });

  t('spans carry AUDIT_ID: the audited requests\' IDs, in their 64-byte form (auditIDForSpans)', () => {
    const onSpans = new Set(spans.map((a) => a[AUDIT_ID]).filter((v): v is string => typeof v === 'string'));
    assert.ok(onSpans.size > 100, `${onSpans.size} distinct ${AUDIT_ID} values`);
    const audited = new Set(events.map((e) => auditIDForSpans(e.auditID)));
    // The audit policy leaves some requests out (their spans still carry an ID): the rest join.
    const joined = [...onSpans].filter((id) => audited.has(id));
    assert.ok(joined.length > 100, `${joined.length} of ${onSpans.size} ${AUDIT_ID} values name an audited request`);
    assert.ok(facts.clientAuditID.length > 64);
    assert.ok(onSpans.has(auditIDForSpans(facts.clientAuditID)), 'the long client-chosen Audit-ID, truncated');
    assert.not.ok(onSpans.has(facts.clientAuditID));
  });

  t('HTTP server spans are read through SEMCONV under either generation', () => {
    const withId = spans.filter((a) => a[AUDIT_ID] !== undefined);
    const read = withId.map((a) => httpRequestInfo(a)).filter((i) => i !== undefined);
    assert.ok(read.length > 100, `${read.length} HTTP spans read`);
    for (const i of read.slice(0, 200)) {
      assert.type(i.method, 'string');
      assert.type(i.statusCode, 'number');
    }
    const keys = new Set(spans.flatMap((a) => Object.keys(a)));
    const newNames = keys.has(SEMCONV.method[0]);
    // One generation per recording: v1.37 the new names, v1.34 the old ones, and the reader knows both.
    for (const field of ['method', 'statusCode', 'path', 'scheme', 'userAgent'] as const) {
      const [current, old] = SEMCONV[field];
      if (newNames) assert.ok(keys.has(current), `${name}: ${current}`);
      else if (field !== 'userAgent') assert.ok(keys.has(old!), `${name}: ${old}`);
    }
  });

  t('objects carry ANNOTATION_SPAN and ANNOTATION_OBJSETID, written by the webhook', () => {
    const annotated = events.map((e) => e.responseObject?.metadata?.annotations).filter((a): a is Record<string, string> => !!a);
    assert.ok(annotated.some((a) => a[ANNOTATION_SPAN] !== undefined), ANNOTATION_SPAN);
    assert.ok(annotated.some((a) => a[ANNOTATION_OBJSETID] !== undefined), ANNOTATION_OBJSETID);
  });

  t('audit annotations `<webhook>/objectSetID` and `<webhook>/traceparent`; the objset one is what isObjsetIdAuditAnnotation accepts', () => {
    const keys = new Set(events.flatMap((e) => Object.keys(e.annotations ?? {})));
    const objset = [...keys].filter((k) => k.endsWith(`/${AUDIT_ANNOTATION_OBJSETID}`));
    assert.ok(objset.length > 0, AUDIT_ANNOTATION_OBJSETID);
    assert.ok([...keys].some((k) => k.endsWith(`/${AUDIT_ANNOTATION_TRACEPARENT}`)), AUDIT_ANNOTATION_TRACEPARENT);
    for (const k of objset) assert.ok(isObjsetIdAuditAnnotation(k), k);
    assert.not.ok([...keys].some((k) => isObjsetIdAuditAnnotation(k) && !objset.includes(k)), 'nothing else is taken for an object-set id');
    // The set id a request was given is the one its object ends up with.
    const both = events.filter((e) => e.responseObject?.metadata?.annotations?.[ANNOTATION_OBJSETID] && objset.some((k) => e.annotations?.[k]));
    assert.ok(both.length > 0);
    for (const e of both) assert.is(objset.map((k) => e.annotations?.[k]).find(Boolean), e.responseObject!.metadata!.annotations![ANNOTATION_OBJSETID], e.auditID);
  });

  t.run();
}

const names0 = suite('names');
names0('isObjsetIdAuditAnnotation: the object annotation key, any webhook\'s key, the bare key', () => {
  assert.ok(isObjsetIdAuditAnnotation(ANNOTATION_OBJSETID));
  assert.ok(isObjsetIdAuditAnnotation(`objset.kube-correlate.io/${AUDIT_ANNOTATION_OBJSETID}`));
  assert.ok(isObjsetIdAuditAnnotation(AUDIT_ANNOTATION_OBJSETID));
  assert.not.ok(isObjsetIdAuditAnnotation(`objset.kube-correlate.io/${AUDIT_ANNOTATION_TRACEPARENT}`));
  assert.not.ok(isObjsetIdAuditAnnotation('x/objectsetid'));
});
names0.run();
