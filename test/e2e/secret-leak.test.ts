import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { REDACTED } from '@kube-correlate/audit';
import { unjoinedTraceId } from '@kube-correlate/correlator';
import { encodeTraceRequest } from '@kube-correlate/otlp';
import { TraceStore } from '@kube-correlate/store';
import { eventList, freePort, postJson, reported, spawnCorrelate, startPipeline, tempDir, waitFor, type TestPipeline } from '../harness/index.js';
import { startJaeger, type JaegerProcess } from '../harness/jaeger.js';
import { anyFileHolds, found, leaksUnder, needles, secretScenario, type SecretScenario } from '../harness/secrets.js';
import { killGroup } from '../harness/supervise.js';

/**
 * Issue 14, item 5: secrets are redacted by default before anything is stored or exported. A Secret
 * logged at RequestResponse level (data, stringData, the last-applied-configuration copy; as a create
 * and as a list), a TokenReview (spec.token) and a TokenRequest (status.token) go through
 * `correlate start` with the shipped embedded-jaeger.yaml into a real Jaeger: no secret value, as
 * written or base64-encoded, is in any file of the data directory (the database and its WAL, while
 * running and after the stop) nor in anything Jaeger stored, while a visible label of the same
 * events is found in both (the search finds what is there); each redaction is counted. A rule a user
 * adds (resource + paths) redacts too. (Measured before: data and stringData stored verbatim in
 * kube-correlate.db and its WAL and sent whole to Jaeger in k8s.audit.event.)
 */
let jaeger: JaegerProcess;
test.before(reported('start Jaeger', async () => {
  jaeger = await startJaeger();
}));
test.after(reported('stop Jaeger', async () => {
  await jaeger?.stop();
}));

async function send(otlpHttp: string, audit: string, s: SecretScenario): Promise<void> {
  for (const t of s.traces) {
    const res = await fetch(`${otlpHttp}/v1/traces`, { method: 'POST', headers: { 'content-type': 'application/x-protobuf' }, body: encodeTraceRequest(t.spans) });
    assert.is(res.status, 200, await res.text());
  }
  const r = await postJson(audit, eventList(s.events));
  assert.is(r.status, 200, JSON.stringify(r.body));
}

/** Everything Jaeger has for every service, over the last and next hour, as one JSON text (v1 API). */
async function everythingInJaeger(): Promise<string> {
  const q = jaeger.queryHttp;
  const services = ((await (await fetch(`${q}/api/services`)).json()) as { data: string[] | null }).data ?? [];
  const end = (Date.now() + 3_600_000) * 1000;
  const start = (Date.now() - 3_600_000) * 1000;
  let text = JSON.stringify(services);
  for (const service of services) {
    const res = await fetch(`${q}/api/traces?service=${encodeURIComponent(service)}&start=${start}&end=${end}&limit=10000`);
    text += await res.text();
  }
  return text;
}

async function jaegerTraceText(traceId: string): Promise<string | undefined> {
  const res = await fetch(`${jaeger.queryHttp}/api/v3/traces/${traceId}?raw_traces=true`, { signal: AbortSignal.timeout(10_000) });
  return res.status === 200 ? res.text() : undefined;
}

/** The samples of one metric in Prometheus text, by the value of `label`. */
function samples(text: string, name: string, label: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const m = new RegExp(`^${name}\\{[^}]*${label}="([^"]*)"[^}]*\\} (\\S+)$`).exec(line);
    if (m) out[m[1]!] = Number(m[2]);
  }
  return out;
}

/** The stored events are whole (objects kept, keys kept), with the secret values replaced. */
function assertStoredRedacted(dir: string, s: SecretScenario): void {
  const store = new TraceStore({ dir, readonly: true });
  try {
    for (const [what, id] of Object.entries(s.ids)) {
      const events = store.auditEvents(id);
      assert.ok(events.length > 0, `${what}: stored`);
      const text = JSON.stringify(events);
      assert.ok(text.includes(REDACTED), `${what}: stored with the redaction marker`);
      assert.equal(found(text, needles(s.secrets)), [], what);
    }
    const create = store.auditEvents(s.ids.create).find((e) => e.stage === 'ResponseComplete')!;
    assert.equal(Object.keys((create.requestObject as { data: object }).data), ['password', 'tls.key'], 'a redacted map keeps its keys');
    assert.is((create.requestObject as { metadata: { labels: Record<string, string> } }).metadata.labels['kc-visible'], s.visible, 'the rest of the object is kept');
  } finally {
    store.close();
  }
}

test('correlate start (embedded-jaeger.yaml as shipped): no secret in the data directory or in Jaeger; redactions counted', async () => {
  const s = secretScenario();
  const data = tempDir('kc-leak-');
  const [grpc, http, audit, query] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const env = {
    KC_OTLP_GRPC_ENDPOINT: `127.0.0.1:${grpc}`, KC_OTLP_HTTP_ENDPOINT: `127.0.0.1:${http}`, KC_AUDIT_WEBHOOK_ENDPOINT: `127.0.0.1:${audit}`,
    KC_QUERY_ENDPOINT: `127.0.0.1:${query}`, KC_DATA_DIR: data.dir, KC_SETTLE_AFTER: '200ms', JAEGER_OTLP_ENDPOINT: jaeger.otlpGrpc,
    KC_WAIT_FOR_AUDIT: '2s', KC_OBJSET_SETTLE_AFTER: '300ms', KC_OBJSET_WAIT_FOR_OWNERS: '2s',
  };
  const p = spawnCorrelate(['start', '--config', 'collector-config/embedded-jaeger.yaml'], { env });
  let err = '';
  p.child.stderr!.on('data', (d: Buffer) => (err = (err + d).slice(-50_000)));
  try {
    await waitFor('the pipeline to start', () => (err.includes('kube-correlate is running') ? true : undefined), 120_000);
    await send(`http://127.0.0.1:${http}`, `http://127.0.0.1:${audit}/`, s);

    // Stored: each request's audit (audit-only ones after pending_audit_ttl, 30 s in the shipped config).
    const q = `http://127.0.0.1:${query}`;
    for (const id of Object.values(s.ids)) {
      const tree = await waitFor(`audit ${id} stored`, async () => {
        const res = await fetch(`${q}/api/v1/audit/${id}`);
        return res.ok ? res.text() : undefined;
      }, 90_000);
      assert.equal(found(tree, needles(s.secrets)), [], `query API answer for ${id}`);
    }

    // Exported: the two traces with their audit spans, the two audit-only traces.
    const exported = [...s.traces.map((t) => t.traceId), unjoinedTraceId(s.ids.tokenReview), unjoinedTraceId(s.ids.tokenRequest)];
    for (const traceId of exported) {
      const text = await waitFor(`trace ${traceId} in Jaeger with its audit`, async () => {
        const t = await jaegerTraceText(traceId);
        return t && t.includes('k8s.audit.event') ? t : undefined;
      }, 60_000);
      assert.ok(text.includes(REDACTED), `trace ${traceId}: the audit events went to Jaeger redacted`);
    }
    const inJaeger = await everythingInJaeger();
    assert.ok(inJaeger.includes(s.visible), 'the visible label is in what Jaeger stored (the search finds what is there)');
    assert.equal(found(inJaeger, needles(s.secrets)), [], 'no secret in anything Jaeger stored');

    // Counted, by rule: exactly what the default rules find in these events.
    const metrics = await (await fetch(`${q}/metrics`)).text();
    const counted = samples(metrics, 'kube_correlate_audit_redactions_total', 'rule');
    assert.equal(counted, s.expectedRedactions());
    assert.ok(counted['secret']! >= 8 && counted['tokenreview'] === 2 && counted['tokenrequest'] === 1, JSON.stringify(counted));

    // The data directory while running (the database and its WAL) ...
    assert.ok(anyFileHolds(data.dir, s.visible), 'the visible label is in the data directory');
    assert.equal(leaksUnder(data.dir, s.secrets), {}, 'no secret in the data directory while running');
    p.child.kill('SIGTERM');
    const code = await Promise.race([p.exited, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 60_000))]);
    assert.not.equal(code, 'timeout', 'exited after SIGTERM');
    // ... and after the stop (checkpointed).
    assert.ok(anyFileHolds(data.dir, s.visible));
    assert.equal(leaksUnder(data.dir, s.secrets), {}, 'no secret in the data directory after the stop');
    assertStoredRedacted(data.dir, s);
  } catch (e) {
    throw new Error(`${(e as Error).message}\nstderr tail:\n${err.slice(-4000)}`);
  } finally {
    killGroup(p.child.pid, 'SIGKILL');
    data.cleanup();
  }
});

test('a rule a user adds (resource + paths) redacts too, beside the defaults, counted under its name', async () => {
  const s = secretScenario('kcrule');
  const dbPassword = `kcrule-db-password-${Date.now().toString(36)}`;
  const userPassword = `kcrule-user-password-${Date.now().toString(36)}`;
  s.secrets.push(dbPassword, userPassword);
  const id = '0db00000-0000-4000-8000-000000000001';
  s.events.push({
    kind: 'Event', apiVersion: 'audit.k8s.io/v1', level: 'Request', auditID: id, stage: 'ResponseComplete', verb: 'create',
    requestURI: '/apis/example.com/v1/namespaces/prod/databases', user: { username: 'u' },
    objectRef: { resource: 'databases', apiGroup: 'example.com', apiVersion: 'v1', namespace: 'prod', name: 'orders' },
    requestObject: { apiVersion: 'example.com/v1', kind: 'Database', metadata: { name: 'orders', labels: { 'kc-visible': s.visible } }, spec: { password: dbPassword, users: [{ name: 'app', password: userPassword }] } },
    requestReceivedTimestamp: new Date().toISOString(), stageTimestamp: new Date().toISOString(), responseStatus: { metadata: {}, code: 201 },
  } as never);
  const rule = { name: 'db-password', resource: 'databases', group: 'example.com', paths: ['spec.password', 'spec.users[*].password'] };
  let p: TestPipeline | undefined;
  try {
    p = await startPipeline({ pendingAuditTtl: '300ms', processors: { yaml: `  k8saudit_redaction:\n    rules: [${JSON.stringify(rule)}]\n` } });
    await send(p.http, p.audit, s);
    for (const a of [id, ...Object.values(s.ids)]) await waitFor(`audit ${a} stored`, async () => ((await fetch(`${p!.query}/api/v1/audit/${a}`)).ok ? true : undefined));
    await p.pipeline.shutdown();
    assert.ok(anyFileHolds(p.dataDir, s.visible));
    assert.equal(leaksUnder(p.dataDir, s.secrets), {}, 'neither the user rule\'s values nor the defaults\' are stored');
    assertStoredRedacted(p.dataDir, s);
    const store = new TraceStore({ dir: p.dataDir, readonly: true });
    try {
      const [db] = store.auditEvents(id);
      assert.equal((db!.requestObject as { spec: unknown }).spec, { password: REDACTED, users: [{ name: 'app', password: REDACTED }] });
    } finally {
      store.close();
    }
    const byRule = Object.fromEntries((await p.metrics.auditRedactions.get()).values.map((v) => [v.labels.rule, v.value]));
    assert.is(byRule['db-password'], 2, 'spec.password and one user\'s password');
    assert.ok(byRule['secret']! > 0 && byRule['tokenreview']! > 0, 'the default rules still apply');
  } finally {
    await p?.stop();
  }
});

test.run();
