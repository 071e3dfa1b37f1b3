/**
 * Audit event -> endpoint mapping benchmark (issue 6): the cost of building the 1.35 catalogue, and
 * of `mapAuditEvent` over a realistic mix of audit events, on one core.
 *
 * Workload: BENCH_N (default 500,000) events from a seeded generator, shaped like a busy cluster's
 * audit log: kubelet and controller gets/lists/watches of pods, configmaps, secrets, endpointslices;
 * node lease renewals (get + update); deployment and deployment status updates; pods/status and
 * nodes/status patches; events; SubjectAccess/TokenReviews; service, pod and node proxies; pods/exec;
 * legacy /watch/ paths; discovery; /healthz, /livez, /readyz, /metrics, /openapi/v2; and CRD
 * traffic (cert-manager, Argo, Prometheus operator) that is not in the spec. Query strings are
 * those real clients send (watch=true, resourceVersion, timeoutSeconds, fieldSelector, ...). The
 * events are generated before timing; each pass maps all of them.
 *
 * Prints the catalogue build time, events/s per pass (after a warm-up pass) and the result mix.
 * No assertions.
 *
 * Build and run: `npx tsc -b test && node test/dist/bench/apimapping.js`
 * Environment: BENCH_N (default 500000), BENCH_PASSES (default 5), KC_SHARED_DATA (default /work/shared/data).
 */
import { existsSync, readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type MappableAuditEvent, buildCatalogue, loadCatalogueFile, mapAuditEvent } from '@kube-correlate/apicoverage';

const N = Number(process.env['BENCH_N'] ?? 500_000);
const PASSES = Number(process.env['BENCH_PASSES'] ?? 5);
// test/dist/bench/apimapping.js -> /work/shared/data
const DATA_DIR = process.env['KC_SHARED_DATA'] ?? fileURLToPath(new URL('../../../../shared/data/', import.meta.url));
const SPEC = join(DATA_DIR, 'openapi', 'swagger-v1.35.json');
if (!existsSync(SPEC)) {
  console.error(`bench: ${SPEC} is missing (set KC_SHARED_DATA)`);
  process.exit(1);
}

// -------------------------------------------------------------------------------------------------
// Seeded generator.

let seed = 0x6a09e667;
function rnd(): number {
  // mulberry32
  seed = (seed + 0x6d2b79f5) | 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
const int = (n: number): number => Math.floor(rnd() * n);

const NAMESPACES = ['default', 'kube-system', 'monitoring', 'cert-manager', 'argocd', ...Array.from({ length: 25 }, (_, i) => `team-${i}`)];
const NODES = Array.from({ length: 100 }, (_, i) => `ip-10-0-${i >> 4}-${(i * 37) % 250}.eu-west-1.compute.internal`);
const pod = (): string => `web-${int(400).toString(36)}-7d9f8c${int(1000)}-x${int(99999).toString(36)}`;
const deploy = (): string => `app-${int(300)}`;
const rv = (): number => 1_000_000 + int(9_000_000);
const watchQ = (): string => `allowWatchBookmarks=true&resourceVersion=${rv()}&timeout=${5 + int(5)}m${int(60)}s&timeoutSeconds=${300 + int(300)}&watch=true`;

type Gen = () => MappableAuditEvent;
/** [weight, generator]: the mix, in percent. */
const MIX: [number, Gen][] = [
  // kubelet / controllers reading
  [9, () => ({ verb: 'get', requestURI: `/api/v1/namespaces/${pick(NAMESPACES)}/pods/${pod()}` })],
  [5, () => ({ verb: 'get', requestURI: `/api/v1/namespaces/${pick(NAMESPACES)}/configmaps/kube-root-ca.crt` })],
  [2, () => ({ verb: 'get', requestURI: `/api/v1/namespaces/${pick(NAMESPACES)}/secrets/sh.helm.release.v1.app-${int(50)}.v${int(9)}` })],
  [4, () => ({ verb: 'list', requestURI: `/api/v1/pods?fieldSelector=spec.nodeName%3D${pick(NODES)}&limit=500&resourceVersion=0` })],
  [2, () => ({ verb: 'list', requestURI: `/apis/apps/v1/namespaces/${pick(NAMESPACES)}/deployments?limit=500` })],
  // watches (?watch=true lists) and a few legacy /watch/ paths
  [6, () => ({ verb: 'watch', requestURI: `/api/v1/namespaces/${pick(NAMESPACES)}/configmaps?fieldSelector=metadata.name%3Dkube-root-ca.crt&${watchQ()}` })],
  [4, () => ({ verb: 'watch', requestURI: `/api/v1/pods?fieldSelector=spec.nodeName%3D${pick(NODES)}&${watchQ()}` })],
  [2, () => ({ verb: 'watch', requestURI: `/apis/discovery.k8s.io/v1/endpointslices?labelSelector=service.kubernetes.io%2Fheadless&${watchQ()}` })],
  [1, () => ({ verb: 'watch', requestURI: `/api/v1/watch/namespaces/${pick(NAMESPACES)}/pods?resourceVersion=${rv()}` })],
  // node leases: get + update every 10 s per node, leader election leases
  [10, () => ({ verb: 'update', requestURI: `/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/${pick(NODES)}?timeout=10s` })],
  [4, () => ({ verb: 'get', requestURI: `/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/${pick(NODES)}?timeout=10s` })],
  [3, () => ({ verb: 'update', requestURI: `/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/${pick(['kube-controller-manager', 'kube-scheduler', 'cert-manager-controller'])}?timeout=5s` })],
  // writes
  [4, () => ({ verb: 'update', requestURI: `/apis/apps/v1/namespaces/${pick(NAMESPACES)}/deployments/${deploy()}` })],
  [3, () => ({ verb: 'update', requestURI: `/apis/apps/v1/namespaces/${pick(NAMESPACES)}/deployments/${deploy()}/status` })],
  [1, () => ({ verb: 'patch', requestURI: `/apis/apps/v1/namespaces/${pick(NAMESPACES)}/deployments/${deploy()}/scale` })],
  [7, () => ({ verb: 'patch', requestURI: `/api/v1/namespaces/${pick(NAMESPACES)}/pods/${pod()}/status` })],
  [4, () => ({ verb: 'patch', requestURI: `/api/v1/nodes/${pick(NODES)}/status?timeout=10s` })],
  [3, () => ({ verb: 'create', requestURI: `/apis/events.k8s.io/v1/namespaces/${pick(NAMESPACES)}/events` })],
  [1, () => ({ verb: 'create', requestURI: `/api/v1/namespaces/${pick(NAMESPACES)}/pods/${pod()}/binding` })],
  [1, () => ({ verb: 'delete', requestURI: `/api/v1/namespaces/${pick(NAMESPACES)}/pods/${pod()}` })],
  [2, () => ({ verb: 'create', requestURI: '/apis/authorization.k8s.io/v1/subjectaccessreviews' })],
  [1, () => ({ verb: 'create', requestURI: '/apis/authentication.k8s.io/v1/tokenreviews' })],
  [1, () => ({ verb: 'create', requestURI: `/api/v1/namespaces/${pick(NAMESPACES)}/serviceaccounts/default/token` })],
  // proxies, exec
  [1, () => ({ verb: 'get', requestURI: `/api/v1/namespaces/monitoring/services/https:prometheus-k8s:9091/proxy/api/v1/query?query=up` })],
  [1, () => ({ verb: 'get', requestURI: `/api/v1/nodes/${pick(NODES)}/proxy/metrics/cadvisor` })],
  [0.5, () => ({ verb: 'get', requestURI: `/api/v1/namespaces/${pick(NAMESPACES)}/pods/${pod()}:8080/proxy/healthz` })],
  [0.5, () => ({ verb: 'create', requestURI: `/api/v1/namespaces/${pick(NAMESPACES)}/pods/${pod()}/exec?command=sh&container=app&stdin=true&stdout=true&tty=true` })],
  // non-resource and discovery
  [3, () => ({ verb: 'get', requestURI: pick(['/healthz', '/livez', '/readyz', '/readyz?verbose', '/healthz/etcd']) })],
  [1, () => ({ verb: 'get', requestURI: '/metrics' })],
  [0.5, () => ({ verb: 'get', requestURI: '/openapi/v2?timeout=32s' })],
  [2, () => ({ verb: 'get', requestURI: pick(['/api', '/apis', '/api/v1?timeout=32s', '/apis/apps/v1', '/version', '/apis/metrics.k8s.io/v1beta1']) })],
  // CRDs (not in the spec)
  [3, () => ({ verb: 'watch', requestURI: `/apis/cert-manager.io/v1/namespaces/${pick(NAMESPACES)}/certificates?${watchQ()}` })],
  [2, () => ({ verb: 'get', requestURI: `/apis/argoproj.io/v1alpha1/namespaces/argocd/applications/app-${int(200)}` })],
  [1, () => ({ verb: 'patch', requestURI: `/apis/monitoring.coreos.com/v1/namespaces/monitoring/prometheuses/k8s/status` })],
];

const total = MIX.reduce((s, [w]) => s + w, 0);
const cumulative: number[] = [];
let acc = 0;
for (const [w] of MIX) cumulative.push((acc += w / total));
function generate(): MappableAuditEvent {
  const r = rnd();
  let i = 0;
  while (i < cumulative.length - 1 && r >= cumulative[i]!) i++;
  return MIX[i]![1]();
}

// -------------------------------------------------------------------------------------------------

const t0 = performance.now();
const catalogue = loadCatalogueFile(SPEC);
const buildMs = performance.now() - t0;
// A second build: the first one includes JIT warm-up.
const t1 = performance.now();
loadCatalogueFile(SPEC);
const rebuildMs = performance.now() - t1;

const spec: unknown = JSON.parse(readFileSync(SPEC, 'utf8'));
const t2 = performance.now();
buildCatalogue(spec);
const compileMs = performance.now() - t2;

const events: MappableAuditEvent[] = new Array<MappableAuditEvent>(N);
for (let i = 0; i < N; i++) events[i] = generate();

const counts = { endpoint: 0, 'non-resource': 0, unmatched: 0 };
function pass(): number {
  counts.endpoint = 0;
  counts['non-resource'] = 0;
  counts.unmatched = 0;
  const start = process.hrtime.bigint();
  for (let i = 0; i < N; i++) counts[mapAuditEvent(catalogue, events[i]!).type]++;
  return Number(process.hrtime.bigint() - start) / 1e9;
}

console.log(`apimapping bench: Node ${process.version}, ${cpus()[0]?.model ?? '?'} (${cpus().length} cores), one core used`);
console.log(`catalogue 1.35: ${catalogue.endpoints.length} operations (${catalogue.coverageEndpoints().length} coverage endpoints); `
  + `build from file (read + JSON.parse + compile) ${buildMs.toFixed(1)} ms, again ${rebuildMs.toFixed(1)} ms; `
  + `buildCatalogue on the parsed document ${compileMs.toFixed(1)} ms`);
pass(); // warm-up
const rates: number[] = [];
for (let p = 1; p <= PASSES; p++) {
  const s = pass();
  rates.push(N / s);
  console.log(`pass ${p}: ${N.toLocaleString('en-US')} events in ${(s * 1000).toFixed(0)} ms = ${Math.round(N / s).toLocaleString('en-US')} events/s`);
}
rates.sort((a, b) => a - b);
console.log(`\n| events | passes | median events/s | best events/s | target |\n|---:|---:|---:|---:|---:|\n| ${N.toLocaleString('en-US')} | ${PASSES} | ${Math.round(rates[rates.length >> 1]!).toLocaleString('en-US')} | ${Math.round(rates[rates.length - 1]!).toLocaleString('en-US')} | 200,000 |\n`);
console.log(`mix: ${counts.endpoint} endpoint, ${counts['non-resource']} non-resource, ${counts.unmatched} unmatched`);
const reasons = new Map<string, number>();
const kinds = new Map<string, number>();
for (const e of events) {
  const m = mapAuditEvent(catalogue, e);
  if (m.type === 'unmatched') reasons.set(m.reason, (reasons.get(m.reason) ?? 0) + 1);
  else if (m.type === 'non-resource') kinds.set(m.kind, (kinds.get(m.kind) ?? 0) + 1);
}
console.log(`non-resource kinds: ${[...kinds].map(([k, n]) => `${k} ${n}`).join(', ')}`);
for (const [r, n] of reasons) console.log(`unmatched ${n}: ${r}`);
