/**
 * Admission webhook benchmark (issue 5): what one review costs over HTTPS, against the decision
 * alone.
 *
 * Workload: N (default 20,000) AdmissionReviews of a realistic Deployment CREATE (kubectl apply:
 * last-applied-configuration annotation, managedFields, two containers with probes and resources;
 * about 3 KB on the wire), each with its own request uid and W3C traceparent, POSTed to /mutate of a
 * WebhookServer on 127.0.0.1 (self-signed certificate from the openssl CLI) over HTTPS keep-alive,
 * at concurrency 1 and 16 (one socket per concurrent client, like kube-apiserver's pooled
 * connections), client and server in this one process. A warm-up precedes each run. Then the
 * in-process cost of mutate() alone, and of parse + mutate + serialize, as the reference.
 *
 * Prints a table on stdout; no assertions (only a count of unexpected responses). Stops itself
 * after 90 s whatever happens.
 *
 * Build and run: `npx tsc -b && node test/dist/bench/webhook.js`
 * Environment: BENCH_N (default 20000), BENCH_WARMUP (default 2000), BENCH_CONCURRENCY (default 1,16).
 */
import { spawnSync } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebhookServer, mutate, parseAdmissionReviewJson } from '@kube-correlate/webhook';
import { stats, type Stats } from './stats.js';

const N = Number(process.env['BENCH_N'] ?? 20_000);
const WARMUP = Number(process.env['BENCH_WARMUP'] ?? 2_000);
const CONCURRENCY = (process.env['BENCH_CONCURRENCY'] ?? '1,16').split(',').map(Number);
const WATCHDOG_MS = 90_000;

const watchdog = setTimeout(() => {
  console.error('bench: watchdog: stopping after 90 s');
  process.exit(1);
}, WATCHDOG_MS);
watchdog.unref();

// ---------------------------------------------------------------------------------------------
// The review: kubectl apply of Deployment default/web, as kube-apiserver sends it to the webhook.

function deploymentReview(): string {
  const manifest = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'web', namespace: 'default', labels: { app: 'web', tier: 'frontend', 'app.kubernetes.io/part-of': 'shop' } },
    spec: {
      replicas: 3,
      selector: { matchLabels: { app: 'web' } },
      template: {
        metadata: { labels: { app: 'web', tier: 'frontend' } },
        spec: {
          containers: [
            {
              name: 'web', image: 'registry.example.com/shop/web:1.27.3',
              ports: [{ containerPort: 8080, name: 'http' }],
              env: [{ name: 'LOG_LEVEL', value: 'info' }, { name: 'UPSTREAM', value: 'http://api.shop.svc:8080' }],
              resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: { cpu: '500m', memory: '256Mi' } },
              readinessProbe: { httpGet: { path: '/ready', port: 'http' }, periodSeconds: 5 },
              livenessProbe: { httpGet: { path: '/live', port: 'http' }, periodSeconds: 10, failureThreshold: 3 },
            },
            { name: 'log-shipper', image: 'registry.example.com/infra/shipper:2.1.0', resources: { requests: { cpu: '20m', memory: '32Mi' } } },
          ],
        },
      },
    },
  };
  const object = {
    ...manifest,
    metadata: {
      ...manifest.metadata,
      annotations: { 'kubectl.kubernetes.io/last-applied-configuration': JSON.stringify(manifest) + '\n' },
      managedFields: [{
        manager: 'kubectl-client-side-apply', operation: 'Update', apiVersion: 'apps/v1', time: '2025-11-21T10:15:00Z', fieldsType: 'FieldsV1',
        fieldsV1: { 'f:metadata': { 'f:annotations': { '.': {}, 'f:kubectl.kubernetes.io/last-applied-configuration': {} }, 'f:labels': { '.': {}, 'f:app': {}, 'f:tier': {} } }, 'f:spec': { 'f:replicas': {}, 'f:selector': {}, 'f:template': { 'f:metadata': { 'f:labels': {} }, 'f:spec': { 'f:containers': {} } } } },
      }],
    },
  };
  return JSON.stringify({
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: '__UID__',
      kind: { group: 'apps', version: 'v1', kind: 'Deployment' },
      resource: { group: 'apps', version: 'v1', resource: 'deployments' },
      requestKind: { group: 'apps', version: 'v1', kind: 'Deployment' },
      requestResource: { group: 'apps', version: 'v1', resource: 'deployments' },
      name: 'web', namespace: 'default', operation: 'CREATE',
      userInfo: { username: 'kubernetes-admin', groups: ['kubeadm:cluster-admins', 'system:authenticated'] },
      object, oldObject: null, dryRun: false,
      options: { kind: 'CreateOptions', apiVersion: 'meta.k8s.io/v1', fieldManager: 'kubectl-client-side-apply', fieldValidation: 'Strict' },
    },
  });
}

const [bodyHead, bodyTail] = deploymentReview().split('__UID__') as [string, string];
const newTraceparent = (): string => `00-${randomBytes(16).toString('hex')}-${randomBytes(8).toString('hex')}-01`;

// ---------------------------------------------------------------------------------------------
// Measurement


function post(agent: Agent, port: number): Promise<{ ok: boolean }> {
  const body = bodyHead + randomUUID() + bodyTail;
  return new Promise((resolve, reject) => {
    const req = request({
      host: '127.0.0.1', port, method: 'POST', path: '/mutate', agent,
      headers: { 'content-type': 'application/json', accept: 'application/json', 'content-length': Buffer.byteLength(body), traceparent: newTraceparent() },
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ ok: res.statusCode === 200 && text.includes('"patchType":"JSONPatch"') }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function run(port: number, ca: string, concurrency: number, n: number): Promise<{ latencyMs: Float64Array; seconds: number; bad: number }> {
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency, ca });
  const latencyMs = new Float64Array(n);
  let next = 0;
  let bad = 0;
  const t0 = process.hrtime.bigint();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    for (let i = next++; i < n; i = next++) {
      const t = process.hrtime.bigint();
      const r = await post(agent, port);
      latencyMs[i] = Number(process.hrtime.bigint() - t) / 1e6;
      if (!r.ok) bad++;
    }
  }));
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  agent.destroy();
  return { latencyMs, seconds, bad };
}

function inProcess(n: number): { mutateUs: Stats; fullUs: Stats } {
  const text = bodyHead + randomUUID() + bodyTail;
  const review = parseAdmissionReviewJson(text);
  const headers = Array.from({ length: 1024 }, () => ({ traceparent: newTraceparent() }));
  for (let i = 0; i < 5000; i++) JSON.stringify(mutate(parseAdmissionReviewJson(text), headers[i % 1024]!).review); // warm-up
  const m = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const t = process.hrtime.bigint();
    mutate(review, headers[i % 1024]!);
    m[i] = Number(process.hrtime.bigint() - t) / 1e3;
  }
  const f = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const t = process.hrtime.bigint();
    JSON.stringify(mutate(parseAdmissionReviewJson(text), headers[i % 1024]!).review);
    f[i] = Number(process.hrtime.bigint() - t) / 1e3;
  }
  return { mutateUs: stats(m)!, fullUs: stats(f)! };
}

// ---------------------------------------------------------------------------------------------

const dir = mkdtempSync(join(tmpdir(), 'kc-webhook-bench-'));
try {
  const certFile = join(dir, 'tls.crt');
  const keyFile = join(dir, 'tls.key');
  const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', keyFile, '-out', certFile,
    '-days', '1', '-subj', '/CN=kube-correlate-webhook-bench', '-addext', 'subjectAltName=IP:127.0.0.1'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) throw new Error(`openssl is required for the webhook bench: ${r.error?.message ?? r.stderr}`);
  const ca = readFileSync(certFile, 'utf8');

  const server = new WebhookServer({ certFile, keyFile, port: 0, host: '127.0.0.1', defaultMetrics: false });
  const { port } = await server.start();
  const size = Buffer.byteLength(bodyHead + randomUUID() + bodyTail);
  console.error(`bench: ${N} reviews of ${size} B per concurrency level ${CONCURRENCY.join(', ')} (warm-up ${WARMUP}); node ${process.version}, ${cpus().length}× ${cpus()[0]?.model ?? '?'}, load ${loadavg()[0]!.toFixed(2)}`);

  const rows: string[] = [];
  for (const c of CONCURRENCY) {
    await run(port, ca, c, WARMUP);
    const res = await run(port, ca, c, N);
    const s = stats(res.latencyMs)!;
    rows.push(`| HTTPS keep-alive, concurrency ${c} | ${s.p50.toFixed(3)} ms | ${s.p99.toFixed(3)} ms | ${s.max.toFixed(2)} ms | ${Math.round(N / res.seconds).toLocaleString('en-US')} |${res.bad ? ` ${res.bad} unexpected responses` : ''}`);
    console.error(`bench: concurrency ${c} done in ${res.seconds.toFixed(1)} s`);
  }
  await server.close();
  const ref = inProcess(N);
  rows.push(`| mutate() alone, in process | ${ref.mutateUs.p50.toFixed(1)} µs | ${ref.mutateUs.p99.toFixed(1)} µs | ${ref.mutateUs.max.toFixed(0)} µs | ${Math.round(1e6 / ref.mutateUs.p50).toLocaleString('en-US')} (1/p50) |`);
  rows.push(`| parse + mutate() + serialize, in process | ${ref.fullUs.p50.toFixed(1)} µs | ${ref.fullUs.p99.toFixed(1)} µs | ${ref.fullUs.max.toFixed(0)} µs | ${Math.round(1e6 / ref.fullUs.p50).toLocaleString('en-US')} (1/p50) |`);

  console.log(`\nAdmission webhook: ${N} Deployment CREATE reviews of ${size} B, client and server in one process\n`);
  console.log('| path | p50 | p99 | max | reviews/s |');
  console.log('|---|---:|---:|---:|---:|');
  for (const row of rows) console.log(row);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
