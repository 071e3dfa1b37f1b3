import { randomBytes, randomUUID } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { LAST_APPLIED_ANNOTATION, redactAuditEvent, type AuditEvent } from '@kube-correlate/audit';
import { SpanKind, type Span } from '@kube-correlate/otlp';

/**
 * Requests that carry secrets as a mistaken audit policy (RequestResponse for Secrets) logs them, for
 * leak tests: every secret value is a unique marker, so a test can look for it, as written and
 * base64-encoded, in any bytes (the data directory, Kafka's log segments, what Jaeger stored); a
 * visible marker (a label) must be found in the same bytes, so an empty or encoded search cannot
 * pass by accident.
 */
export interface SecretScenario {
  /** Spans of the requests that have them (the Secret create and get), by trace. */
  traces: Array<{ traceId: string; spans: Span[] }>;
  events: AuditEvent[];
  /** auditIDs: the Secret create (kubectl apply) and get have spans; the TokenReview and TokenRequest are audit-only. */
  ids: { create: string; get: string; tokenReview: string; tokenRequest: string };
  /** Every secret value, as written; `needles()` adds their base64. */
  secrets: string[];
  /** A label value that is no secret: it must be found wherever the events are. */
  visible: string;
  /** What the default rules redact in `events`, by rule (redactAuditEvent on the same events). */
  expectedRedactions(rules?: Parameters<typeof redactAuditEvent>[1]): Record<string, number>;
}

const hex = (bytes: number) => randomBytes(bytes).toString('hex');
const b64 = (s: string) => Buffer.from(s).toString('base64');

export function secretScenario(tag = 'kcleak'): SecretScenario {
  const run = hex(4);
  const secrets: string[] = [];
  const secret = (what: string) => {
    const s = `${tag}-${run}-${what}-${hex(6)}`;
    secrets.push(s);
    return s;
  };
  const visible = `${tag}-${run}-visible-${hex(6)}`;
  const now = Date.now();
  const ts = (ms: number) => new Date(now + ms).toISOString().replace('Z', '000Z');
  const ns = (ms: number) => (BigInt(now + ms) * 1_000_000n).toString();
  const ids = { create: randomUUID(), get: randomUUID(), tokenReview: randomUUID(), tokenRequest: randomUUID() };

  const applied = JSON.stringify({
    apiVersion: 'v1', kind: 'Secret', metadata: { name: 'db', namespace: 'prod' }, type: 'Opaque',
    data: { password: b64(secret('applied-data')) }, stringData: { 'api-key': secret('applied-stringdata') },
  }) + '\n';
  const secretObject = (withStringData: boolean) => ({
    kind: 'Secret', apiVersion: 'v1',
    metadata: { name: 'db', namespace: 'prod', uid: randomUUID(), labels: { 'kc-visible': visible }, annotations: { [LAST_APPLIED_ANNOTATION]: applied } },
    type: 'Opaque',
    data: { password: b64(secret('data')), 'tls.key': b64(secret('tls-key')) },
    ...(withStringData ? { stringData: { 'api-key': secret('stringdata') } } : {}),
  });

  const base = (auditID: string, verb: string, uri: string, objectRef: Record<string, string>, at: number) => ({
    kind: 'Event', apiVersion: 'audit.k8s.io/v1', level: 'RequestResponse', auditID, verb, requestURI: uri,
    user: { username: 'kubectl-user', groups: ['system:authenticated'] }, sourceIPs: ['10.0.0.1'], userAgent: 'kubectl/v1.34.1',
    objectRef: { apiVersion: 'v1', ...objectRef }, requestReceivedTimestamp: ts(at),
  });
  const createBody = secretObject(true);
  const getBody = { kind: 'SecretList', apiVersion: 'v1', metadata: { resourceVersion: '9' }, items: [secretObject(false)] };
  const events = [
    { ...base(ids.create, 'create', '/api/v1/namespaces/prod/secrets?fieldManager=kubectl-client-side-apply', { resource: 'secrets', namespace: 'prod', name: 'db' }, 0), stage: 'RequestReceived', stageTimestamp: ts(0), requestObject: createBody },
    { ...base(ids.create, 'create', '/api/v1/namespaces/prod/secrets?fieldManager=kubectl-client-side-apply', { resource: 'secrets', namespace: 'prod', name: 'db' }, 0), stage: 'ResponseComplete', stageTimestamp: ts(5), requestObject: createBody, responseObject: secretObject(false), responseStatus: { metadata: {}, code: 201 } },
    { ...base(ids.get, 'list', '/api/v1/namespaces/prod/secrets', { resource: 'secrets', namespace: 'prod' }, 10), stage: 'ResponseComplete', stageTimestamp: ts(12), responseObject: getBody, responseStatus: { metadata: {}, code: 200 } },
    {
      ...base(ids.tokenReview, 'create', '/apis/authentication.k8s.io/v1/tokenreviews', { resource: 'tokenreviews', apiGroup: 'authentication.k8s.io' }, 20), stage: 'ResponseComplete', stageTimestamp: ts(21),
      requestObject: { kind: 'TokenReview', apiVersion: 'authentication.k8s.io/v1', metadata: { creationTimestamp: null }, spec: { token: secret('tokenreview') } },
      responseObject: { kind: 'TokenReview', apiVersion: 'authentication.k8s.io/v1', metadata: {}, spec: { token: secret('tokenreview-echo') }, status: { authenticated: true, user: { username: visible } } },
      responseStatus: { metadata: {}, code: 201 },
    },
    {
      ...base(ids.tokenRequest, 'create', '/api/v1/namespaces/prod/serviceaccounts/builder/token', { resource: 'serviceaccounts', subresource: 'token', namespace: 'prod', name: 'builder' }, 30), stage: 'ResponseComplete', stageTimestamp: ts(31),
      requestObject: { kind: 'TokenRequest', apiVersion: 'authentication.k8s.io/v1', metadata: {}, spec: { audiences: ['https://kubernetes.default.svc'], expirationSeconds: 3600 } },
      responseObject: { kind: 'TokenRequest', apiVersion: 'authentication.k8s.io/v1', metadata: {}, spec: { audiences: ['https://kubernetes.default.svc'] }, status: { token: secret('tokenrequest'), expirationTimestamp: ts(3_600_000) } },
      responseStatus: { metadata: {}, code: 201 },
    },
  ] as AuditEvent[];

  const resource = { attributes: [{ key: 'service.name', value: { stringValue: 'apiserver' } }], droppedAttributesCount: 0, schemaUrl: '' };
  const scope = { name: 'k8s.io/apiserver', version: '', attributes: [], droppedAttributesCount: 0, schemaUrl: '' };
  const request = (auditID: string, route: string, at: number) => {
    const traceId = hex(16);
    const root = hex(8);
    const mk = (spanId: string, parent: string, name: string, kind: number, from: number, to: number): Span => ({
      traceId, spanId, parentSpanId: parent, traceState: '', flags: 1, name, kind,
      startTimeUnixNano: ns(at + from), endTimeUnixNano: ns(at + to),
      attributes: [{ key: 'audit-id', value: { stringValue: auditID } }], droppedAttributesCount: 0,
      events: [], droppedEventsCount: 0, links: [], droppedLinksCount: 0, status: { code: 0, message: '' }, resource, scope,
    });
    return { traceId, spans: [mk(root, '', route, SpanKind.SERVER, 0, 4), mk(hex(8), root, 'etcd', SpanKind.INTERNAL, 1, 3)] };
  };
  const traces = [request(ids.create, 'POST /api/v1/namespaces/{:namespace}/secrets', 0), request(ids.get, 'GET /api/v1/namespaces/{:namespace}/secrets', 10)];

  return {
    traces, events, ids, secrets, visible,
    expectedRedactions(rules) {
      const out: Record<string, number> = {};
      for (const e of events) for (const r of redactAuditEvent(e, rules).redactions) out[r.rule] = (out[r.rule] ?? 0) + 1;
      return out;
    },
  };
}

/** What a secret may look like in stored bytes: as written, and base64-encoded (Secret `data`). */
export function needles(secrets: readonly string[]): string[] {
  return secrets.flatMap((s) => [s, b64(s)]);
}

/** Which needles occur in `bytes` (searched as latin1, so any byte sequence is found as it is). */
export function found(bytes: Buffer | string, needlesToFind: readonly string[]): string[] {
  const text = typeof bytes === 'string' ? bytes : bytes.toString('latin1');
  return needlesToFind.filter((n) => text.includes(n));
}

/** Every regular file under `dir`, with its bytes (read as they are now: a database, its WAL, Kafka segments). */
export function filesUnder(dir: string): Array<{ path: string; bytes: Buffer }> {
  const out: Array<{ path: string; bytes: Buffer }> = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) {
        try {
          if (statSync(p).size > 0) out.push({ path: p, bytes: readFileSync(p) });
        } catch {
          // removed meanwhile (a WAL checkpointed away, a segment deleted)
        }
      }
    }
  };
  walk(dir);
  return out;
}

/** `{ file: [needles found] }` for the files under `dir` that hold any. */
export function leaksUnder(dir: string, secrets: readonly string[]): Record<string, string[]> {
  const n = needles(secrets);
  const out: Record<string, string[]> = {};
  for (const f of filesUnder(dir)) {
    const hit = found(f.bytes, n);
    if (hit.length) out[f.path] = hit;
  }
  return out;
}

/** Whether any file under `dir` holds `text` (the visible marker: the search can find what is there). */
export function anyFileHolds(dir: string, text: string): boolean {
  return filesUnder(dir).some((f) => f.bytes.includes(text));
}
