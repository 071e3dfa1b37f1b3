import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { EXPORT_PATH } from '@kube-correlate/collector';
import { auditEvent, makeSpan } from '@kube-correlate/fixtures';
import { encodeTraceRequest } from '@kube-correlate/otlp';
import { eventList, freePort, metricValue, postJson, ROOT, runCli, spawnCorrelate, startPipeline, tempDir, waitFor, waitForTree } from '../harness/index.js';
import { killGroup } from '../harness/supervise.js';

/**
 * Issue 14, item 4: `processors.memory_limiter` in the OpenTelemetry Collector's keys. Above its soft
 * limit (limit - spike) every receiver refuses retryably, OTLP/gRPC with UNAVAILABLE (RetryInfo and
 * retry-after), OTLP/HTTP and the audit webhook with 503 + Retry-After, counted as
 * `receiver_refused_total{reason="memory_limit"}`; below it again they accept, and what is then sent
 * is stored. On real sockets; the in-process test sets the resident memory the limiter samples, the
 * process test runs `correlate start` with a limit its real RSS is above. Bad limits are config errors
 * naming the key.
 */
const MiB = 1024 * 1024;

function grpcExport(client: grpc.Client, body: Buffer): Promise<{ code: number; details: string; metadata?: grpc.Metadata }> {
  return new Promise((resolve) => {
    client.makeUnaryRequest(EXPORT_PATH, (b: Buffer) => b, (b: Buffer) => b, body, (err) =>
      resolve(err ? { code: err.code, details: err.details, metadata: err.metadata } : { code: 0, details: '' }),
    );
  });
}

test('above the soft limit every receiver refuses retryably and counts it; below it they accept again and nothing is lost', async () => {
  const real = process.memoryUsage.rss;
  let rss = 100 * MiB;
  process.memoryUsage.rss = () => rss;
  const p = await startPipeline({
    pendingAuditTtl: '300ms',
    processors: { yaml: '  memory_limiter: { check_interval: 50ms, limit_mib: 1000, spike_limit_mib: 100 }\n', traces: ['memory_limiter'], logs: ['memory_limiter'] },
  });
  const client = new grpc.Client(p.grpc, grpc.credentials.createInsecure());
  try {
    const usage = () => metricValue(p.metrics, 'kube_correlate_memory_limiter_usage_bytes');
    assert.is(await metricValue(p.metrics, 'kube_correlate_memory_limiter_limit_bytes'), 1000 * MiB);
    rss = 950 * MiB; // soft limit: 900 MiB
    await waitFor('the limiter to sample 950 MiB', async () => ((await usage()) === 950 * MiB ? true : undefined));

    const spans = (n: number) => [makeSpan({ trace: 0x3e3000 + n, id: 1, name: `GET ${n}`, kind: 2 })];
    const g = await grpcExport(client, Buffer.from(encodeTraceRequest(spans(1))));
    assert.is(g.code, grpc.status.UNAVAILABLE, g.details);
    assert.match(g.details, /memory limit: memory usage 950 MiB is above the soft limit of 900 MiB/);
    assert.ok(g.metadata?.get('retry-after')[0], 'retry-after on gRPC');
    assert.ok(g.metadata?.get('grpc-status-details-bin')[0], 'RetryInfo on gRPC');

    const h = await fetch(`${p.http}/v1/traces`, { method: 'POST', headers: { 'content-type': 'application/x-protobuf' }, body: encodeTraceRequest(spans(2)) });
    assert.is(h.status, 503, await h.text());
    assert.ok(Number(h.headers.get('retry-after')) >= 1, 'Retry-After on OTLP/HTTP');

    const auditID = '3e300000-0000-4000-8000-000000000001';
    const events = eventList([auditEvent({ auditID, stage: 'ResponseComplete' })]);
    const a = await postJson(p.audit, events);
    assert.is(a.status, 503, JSON.stringify(a.body));
    assert.ok(Number(a.headers.get('retry-after')) >= 1, 'Retry-After on the audit webhook');

    const refused = await p.metrics.receiverRefused.get();
    const byReceiver: Record<string, number> = Object.fromEntries(refused.values.filter((v) => v.labels.reason === 'memory_limit').map((v) => [String(v.labels.receiver), v.value]));
    assert.equal(byReceiver, { otlp: 2, k8saudit: 1 }, 'every refusal counted as memory_limit, by receiver (otlp: gRPC and HTTP)');
    assert.is(p.pipeline.store!.getTrace(spans(1)[0]!.traceId), undefined, 'nothing refused was stored');

    rss = 800 * MiB;
    await waitFor('the limiter to sample 800 MiB', async () => ((await usage()) === 800 * MiB ? true : undefined));
    assert.is((await grpcExport(client, Buffer.from(encodeTraceRequest(spans(1))))).code, grpc.status.OK);
    assert.is((await fetch(`${p.http}/v1/traces`, { method: 'POST', headers: { 'content-type': 'application/x-protobuf' }, body: encodeTraceRequest(spans(2)) })).status, 200);
    assert.is((await postJson(p.audit, events)).status, 200);
    await waitForTree(p.query, spans(1)[0]!.traceId, 1, false);
    await waitForTree(p.query, spans(2)[0]!.traceId, 1, false);
    await waitFor('the audit event stored', async () => ((await fetch(`${p.query}/api/v1/audit/${auditID}`)).ok ? true : undefined));
  } finally {
    process.memoryUsage.rss = real;
    client.close();
    await p.stop();
  }
});

test('correlate start with a limit below its real resident memory refuses with 503 + Retry-After and says so; the metrics show why', async () => {
  const tmp = tempDir('kc-memlimit-');
  const config = join(tmp.dir, 'tiny.yaml');
  const shipped = readFileSync(join(ROOT, 'collector-config/embedded.yaml'), 'utf8');
  const tiny = shipped.replace('    limit_percentage: 80\n    spike_limit_percentage: 20\n', '    limit_mib: 8\n    spike_limit_mib: 2\n');
  assert.is.not(tiny, shipped, 'the shipped memory_limiter was found');
  writeFileSync(config, tiny);
  const [grpcPort, http, audit, query] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const env = {
    KC_OTLP_GRPC_ENDPOINT: `127.0.0.1:${grpcPort}`, KC_OTLP_HTTP_ENDPOINT: `127.0.0.1:${http}`, KC_AUDIT_WEBHOOK_ENDPOINT: `127.0.0.1:${audit}`,
    KC_QUERY_ENDPOINT: `127.0.0.1:${query}`, KC_DATA_DIR: join(tmp.dir, 'data'),
  };
  const p = spawnCorrelate(['start', '--config', config], { env });
  let err = '';
  p.child.stderr!.on('data', (d: Buffer) => (err = (err + d).slice(-50_000)));
  try {
    await waitFor('the pipeline to start', () => (err.includes('kube-correlate is running') ? true : undefined), 120_000);
    const a = await postJson(`http://127.0.0.1:${audit}/`, eventList([auditEvent({ auditID: '3e300000-0000-4000-8000-000000000002', stage: 'ResponseComplete' })]));
    assert.is(a.status, 503);
    assert.is(a.headers.get('retry-after'), '2', 'twice check_interval (1s)');
    const h = await fetch(`http://127.0.0.1:${http}/v1/traces`, { method: 'POST', headers: { 'content-type': 'application/x-protobuf' }, body: encodeTraceRequest([makeSpan({ trace: 0x3e4, id: 1, name: 'x' })]) });
    assert.is(h.status, 503);
    assert.match(err, /memory usage above the soft limit: refusing new data/);
    const metrics = await (await fetch(`http://127.0.0.1:${query}/metrics`)).text();
    assert.match(metrics, /^kube_correlate_memory_limiter_limit_bytes 8388608$/m);
    const used = Number(/^kube_correlate_memory_limiter_usage_bytes (\S+)$/m.exec(metrics)?.[1]);
    assert.ok(used > 8 * MiB, `usage ${used} above the limit`);
    assert.match(metrics, /kube_correlate_receiver_refused_total\{receiver="k8saudit",reason="memory_limit"\} 1/);
  } catch (e) {
    throw new Error(`${(e as Error).message}\nstderr tail:\n${err.slice(-3000)}`);
  } finally {
    p.child.kill('SIGTERM');
    await Promise.race([p.exited, new Promise((r) => setTimeout(r, 30_000))]);
    killGroup(p.child.pid, 'SIGKILL');
    tmp.cleanup();
  }
});

test('bad memory_limiter settings stop correlate start with a clear error naming the key', async () => {
  const tmp = tempDir('kc-memlimit-bad-');
  try {
    const shipped = readFileSync(join(ROOT, 'collector-config/embedded.yaml'), 'utf8');
    const cases: Array<[string, RegExp]> = [
      ['    limit_mib: 512\n    spike_limit_mib: 512\n', /processors\.memory_limiter\.spike_limit_mib: must be below limit_mib \(512\)/],
      ['    limit_percentage: 80\n    spike_limit_percentage: 90\n', /processors\.memory_limiter\.spike_limit_percentage: must be below limit_percentage \(80\)/],
      ['    check_interval: 0s\n', /processors\.memory_limiter: set limit_mib \(MiB of resident memory\) or limit_percentage/],
    ];
    for (const [i, [keys, message]] of cases.entries()) {
      const file = join(tmp.dir, `bad-${i}.yaml`);
      writeFileSync(file, shipped.replace('    check_interval: 1s\n    limit_percentage: 80\n    spike_limit_percentage: 20\n', keys));
      const r = await runCli(['start', '--config', file], { env: { KC_DATA_DIR: join(tmp.dir, 'data') } });
      assert.is.not(r.code, 0, keys);
      assert.match(r.stderr, message);
      assert.match(r.stderr, file, 'names the file');
    }
  } finally {
    tmp.cleanup();
  }
});

test.run();
