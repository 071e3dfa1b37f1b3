import { readFileSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { AuditEvent } from '@kube-correlate/audit';
import {
  APISNOOP_INELIGIBLE_ENDPOINTS,
  APISNOOP_KEYS,
  CSV_COLUMNS,
  CoverageCollector,
  EXTRA_KEY,
  StageDeduper,
  buildCatalogue,
  coverageReport,
  csvField,
  formatCsv,
  formatHtml,
  formatJson,
  formatReport,
  formatTable,
  identify,
  parseIneligibleEndpoints,
  releaseOf,
  renderTable,
  type CoverageReport,
} from '../src/index.js';
import { dataFile } from './shared-data.js';


// -------------------------------------------------------------------------------------------------
// A small handmade spec: stable core and apps, a beta and an alpha endpoint, a watch operation,
// two endpoints on APISnoop's ineligible list, a deprecated one, a discovery-style one.

function op(operationId: string, tag: string, action: string | undefined, gvk: [string, string, string] | undefined, description: string) {
  return {
    operationId,
    tags: [tag],
    description,
    ...(action ? { 'x-kubernetes-action': action } : {}),
    ...(gvk ? { 'x-kubernetes-group-version-kind': { group: gvk[0], version: gvk[1], kind: gvk[2] } } : {}),
  };
}
const POD: [string, string, string] = ['', 'v1', 'Pod'];
const DEPLOY: [string, string, string] = ['apps', 'v1', 'Deployment'];
const SPEC = {
  swagger: '2.0',
  info: { title: 'Kubernetes', version: 'v1.35.0' },
  paths: {
    '/api/v1/namespaces/{namespace}/pods': {
      get: op('listCoreV1NamespacedPod', 'core_v1', 'list', POD, 'list or watch objects of kind Pod'),
      post: op('createCoreV1NamespacedPod', 'core_v1', 'post', POD, 'create a Pod'),
    },
    '/api/v1/namespaces/{namespace}/pods/{name}': {
      get: op('readCoreV1NamespacedPod', 'core_v1', 'get', POD, 'read the specified Pod'),
      delete: op('deleteCoreV1NamespacedPod', 'core_v1', 'delete', POD, 'delete a Pod'),
      patch: op('patchCoreV1NamespacedPod', 'core_v1', 'patch', POD, 'partially update the specified Pod, "quoted", with commas\nand a second line'),
    },
    '/api/v1/watch/namespaces/{namespace}/pods': {
      get: op('watchCoreV1NamespacedPodList', 'core_v1', 'watchlist', POD, 'watch individual changes to a list of Pod. deprecated: use the watch parameter'),
    },
    '/api/v1/componentstatuses': {
      get: op('listCoreV1ComponentStatus', 'core_v1', 'list', ['', 'v1', 'ComponentStatus'], 'list objects of kind ComponentStatus'),
    },
    '/api/v1/namespaces/{namespace}/bindings': {
      post: op('createCoreV1NamespacedBinding', 'core_v1', 'post', ['', 'v1', 'Binding'], 'create a Binding'),
    },
    '/api/v1/namespaces/{namespace}/replicationcontrollers/{name}/scale': {
      get: op('readCoreV1NamespacedReplicationControllerScale', 'core_v1', 'get', ['autoscaling', 'v1', 'Scale'], 'read scale of the specified ReplicationController (Deprecated in a made-up future)'),
    },
    '/apis/apps/v1/namespaces/{namespace}/deployments': {
      get: op('listAppsV1NamespacedDeployment', 'apps_v1', 'list', DEPLOY, 'list or watch objects of kind Deployment'),
      post: op('createAppsV1NamespacedDeployment', 'apps_v1', 'post', DEPLOY, 'create a Deployment'),
    },
    '/apis/apps/v1/': { get: op('getAppsV1APIResources', 'apps_v1', undefined, undefined, 'get available resources') },
    '/apis/flowcontrol.apiserver.k8s.io/v1beta3/flowschemas': {
      get: op('listFlowcontrolApiserverV1beta3FlowSchema', 'flowcontrolApiserver_v1beta3', 'list', ['flowcontrol.apiserver.k8s.io', 'v1beta3', 'FlowSchema'], 'list or watch objects of kind FlowSchema'),
    },
    '/apis/resource.k8s.io/v1alpha3/deviceclasses': {
      get: op('listResourceV1alpha3DeviceClass', 'resource_v1alpha3', 'list', ['resource.k8s.io', 'v1alpha3', 'DeviceClass'], 'list or watch objects of kind DeviceClass'),
    },
    '/version/': { get: op('getCodeVersion', 'version', undefined, undefined, 'get the version information for this server') },
  },
};

const CONF = '[sig-node] Pods should be submitted and removed [NodeConformance] [Conformance]';
const PLAIN = '[sig-node] Pods should get a host IP, with "quotes", and commas';
const E2E = 'e2e.test/v1.35.0 (linux/amd64) kubernetes/abc';
const UA = {
  e2eConf: `${E2E} -- ${CONF}`,
  e2ePlain: `${E2E} -- ${PLAIN}`,
  e2eNone: E2E,
  kubectl: 'kubectl/v1.35.0 (linux/amd64) kubernetes/abc',
  kcm: 'kube-controller-manager/v1.35.0 (linux/amd64) kubernetes/abc/system:serviceaccount:kube-system:deployment-controller',
  kubelet: 'kubelet/v1.35.0 (linux/amd64) kubernetes/abc',
  curl: 'curl/8.5.0',
};

let n = 0;
function ev(userAgent: string, verb: string, requestURI: string, opts: { stage?: AuditEvent['stage']; auditID?: string; user?: string } = {}): AuditEvent {
  return {
    kind: 'Event',
    apiVersion: 'audit.k8s.io/v1',
    level: 'Metadata',
    auditID: opts.auditID ?? `a-${++n}`,
    stage: opts.stage ?? 'ResponseComplete',
    requestURI,
    verb,
    user: { username: opts.user ?? 'kubernetes-admin' },
    userAgent,
    requestReceivedTimestamp: '2026-11-21T05:49:15.123456Z',
    stageTimestamp: '2026-11-21T05:49:15.223456Z',
  };
}
function times(k: number, f: () => AuditEvent): AuditEvent[] {
  return Array.from({ length: k }, f);
}

function events(): AuditEvent[] {
  return [
    // One request, two stages: counted once.
    ev(UA.e2eConf, 'list', '/api/v1/namespaces/e2e-1/pods', { auditID: 'x-1', stage: 'RequestReceived' }),
    ev(UA.e2eConf, 'list', '/api/v1/namespaces/e2e-1/pods', { auditID: 'x-1', stage: 'ResponseComplete' }),
    ev(UA.e2eConf, 'create', '/api/v1/namespaces/e2e-1/pods'),
    ev(UA.e2ePlain, 'get', '/api/v1/namespaces/e2e-1/pods/p'),
    ev(UA.e2eNone, 'get', '/version/'),
    ...times(3, () => ev(UA.kubectl, 'get', '/api/v1/namespaces/default/pods/p')),
    ...times(2, () => ev(UA.kubectl, 'list', '/apis/apps/v1/namespaces/default/deployments')),
    ev(UA.kubectl, 'list', '/apis/flowcontrol.apiserver.k8s.io/v1beta3/flowschemas'),
    ...times(5, () => ev(UA.kcm, 'list', '/apis/apps/v1/namespaces/default/deployments?limit=500', { user: 'system:serviceaccount:kube-system:deployment-controller' })),
    ev(UA.kcm, 'create', '/apis/apps/v1/namespaces/default/deployments', { user: 'system:serviceaccount:kube-system:deployment-controller' }),
    ev(UA.kcm, 'get', '/api/v1/namespaces/default/replicationcontrollers/rc/scale', { user: 'system:serviceaccount:kube-system:deployment-controller' }),
    ...times(4, () => ev(UA.kubelet, 'get', '/healthz', { user: 'system:node:n1' })),
    ev(UA.kubelet, 'get', '/readyz', { user: 'system:node:n1' }),
    ev(UA.kubelet, 'watch', '/api/v1/watch/namespaces/default/pods', { user: 'system:node:n1' }),
    ev(UA.kubelet, 'list', '/api/v1/componentstatuses', { user: 'system:node:n1' }),
    ...times(2, () => ev(UA.curl, 'get', '/apis/cert-manager.io/v1/namespaces/x/certificates/y')),
  ];
}

const catalogue = buildCatalogue(SPEC);
const NOW = new Date('2026-11-21T10:00:00Z');
function report(extra: Parameters<typeof coverageReport>[2] = {}): CoverageReport {
  return coverageReport(catalogue, events(), { release: '1.35.0', spec: 'swagger.json', sources: ['audit.log'], now: NOW, ...extra });
}
const byId = (r: CoverageReport, id: string) => r.endpoints.find((e) => e.endpoint.operationId === id)!;

test('per endpoint: hits, e2e and usage hits, identities, tests, tested and conf_tested', () => {
  const r = report();
  const list = byId(r, 'listCoreV1NamespacedPod');
  assert.is(list.hits, 1, 'two stages of one request count once');
  assert.is(list.tested, true);
  assert.is(list.conf_tested, true);
  assert.equal(list.tests, [CONF]);
  assert.equal(list.identities, [{ key: 'e2e.test', hits: 1 }]);

  const read = byId(r, 'readCoreV1NamespacedPod');
  assert.is(read.hits, 4);
  assert.is(read.e2eHits, 1);
  assert.is(read.usageHits, 3);
  assert.is(read.tested, true);
  assert.is(read.conf_tested, false, 'a test without [Conformance]');
  assert.equal(read.tests, [PLAIN]);
  assert.equal(read.identities, [{ key: 'kubectl', hits: 3 }, { key: 'e2e.test', hits: 1 }]);

  const version = byId(r, 'getCodeVersion');
  assert.is(version.tested, true, 'e2e.test without a test name still tests (APISnoop)');
  assert.is(version.conf_tested, false);
  assert.equal(version.tests, ['']);

  const deploys = byId(r, 'listAppsV1NamespacedDeployment');
  assert.is(deploys.hits, 7);
  assert.is(deploys.tested, false);
  assert.equal(deploys.identities, [{ key: 'kube-controller-manager/deployment-controller', hits: 5 }, { key: 'kubectl', hits: 2 }]);

  const untouched = byId(r, 'deleteCoreV1NamespacedPod');
  assert.equal([untouched.hits, untouched.tested, untouched.conf_tested, untouched.tests, untouched.identities], [0, false, false, [], []]);
  assert.not.ok(r.endpoints.some((e) => e.endpoint.action === 'watchlist'), 'watch operations are not coverage endpoints');
});

test('summary: coverage endpoints, levels, conformance eligibility, request counts', () => {
  const s = report().summary;
  assert.is(s.totalEndpoints, 14);
  assert.equal(s.byLevel, {
    stable: { total: 12, hit: 8, tested: 4, confTested: 2 },
    beta: { total: 1, hit: 1, tested: 0, confTested: 0 },
    alpha: { total: 1, hit: 0, tested: 0, confTested: 0 },
  });
  assert.is(s.hitEndpoints, 9);
  assert.is(s.testedEndpoints, 4);
  assert.is(s.confTestedEndpoints, 2);
  // Hit by clients, not tested: listAppsV1NamespacedDeployment, createAppsV1NamespacedDeployment,
  // the RC scale, listCoreV1ComponentStatus, the beta FlowSchema list.
  assert.is(s.hitUntestedEndpoints, 5);
  // 12 stable - ComponentStatus, Binding (ineligible list) - the deprecated RC scale.
  assert.is(s.eligibleEndpoints, 9);
  assert.is(s.testedEligibleEndpoints, 2);
  assert.is(s.newEligibleEndpoints, null);
  assert.is(s.newTestedEligibleEndpoints, null);
  assert.is(s.requests, 26);
  assert.is(s.duplicateStages, 1);
  assert.is(s.nonResourceRequests, 5);
  assert.is(s.unmatchedRequests, 2);
  assert.is(s.excludedRequests, 1);
  assert.is(s.endpointRequests, 18);
  assert.is(s.unparseable, 0);
});

test('eligibility: stable, not deprecated, not on the ineligible list; reasons; a given list and previous release', () => {
  const r = report();
  assert.is(byId(r, 'listCoreV1ComponentStatus').eligible, false);
  assert.match(byId(r, 'listCoreV1ComponentStatus').ineligibleReason, /pending deprecation/);
  assert.match(byId(r, 'createCoreV1NamespacedBinding').ineligibleReason, /deprecated in 1\.7/);
  assert.match(byId(r, 'readCoreV1NamespacedReplicationControllerScale').ineligibleReason, /^deprecated/);
  assert.is(byId(r, 'listFlowcontrolApiserverV1beta3FlowSchema').ineligibleReason, 'beta endpoint');
  assert.is(byId(r, 'getAppsV1APIResources').eligible, true);
  assert.is(byId(r, 'getAppsV1APIResources').ineligibleReason, '');

  const mine = report({ ineligible: [{ endpoint: 'getCodeVersion', reason: 'mine' }] });
  assert.is(mine.summary.eligibleEndpoints, 10, 'ComponentStatus and Binding eligible again, getCodeVersion not');
  assert.is(byId(mine, 'getCodeVersion').ineligibleReason, 'ineligible: mine');

  const prev = report({ previousEndpoints: ['listCoreV1NamespacedPod', 'readCoreV1NamespacedPod', 'deleteCoreV1NamespacedPod', 'patchCoreV1NamespacedPod', 'getCodeVersion', 'getAppsV1APIResources'] });
  // New eligible: createCoreV1NamespacedPod (conformance-tested), list/create deployments.
  assert.is(prev.summary.newEligibleEndpoints, 3);
  assert.is(prev.summary.newTestedEligibleEndpoints, 1);

  assert.is(APISNOOP_INELIGIBLE_ENDPOINTS.length, 101);
  const shipped = parseIneligibleEndpoints(JSON.parse(readFileSync(dataFile('apisnoop/ineligible_endpoints.json'), 'utf8')));
  assert.equal(
    [...APISNOOP_INELIGIBLE_ENDPOINTS].map((i) => `${i.endpoint}|${i.reason}|${i.link}`).sort(),
    shipped.map((i) => `${i.endpoint}|${i.reason}|${i.link}`).sort(),
    'the built-in list is APISnoop ineligible_endpoints.json',
  );
  assert.throws(() => parseIneligibleEndpoints({}), /JSON array/);
  assert.throws(() => parseIneligibleEndpoints([{ reason: 'x' }]), /item 0/);
});

test('untested stable endpoints ranked by use from clients other than e2e.test', () => {
  const r = report();
  assert.equal(
    r.untestedStableByUsage.map((e) => [e.endpoint.operationId, e.usageHits]),
    [
      ['listAppsV1NamespacedDeployment', 7],
      ['readCoreV1NamespacedPod', 3],
      ['createAppsV1NamespacedDeployment', 1],
      ['listCoreV1ComponentStatus', 1],
      ['readCoreV1NamespacedReplicationControllerScale', 1],
    ],
    'stable, no conformance test, used; e2e-tested-but-not-conformance readCoreV1NamespacedPod included',
  );
});

test('per identity: requests, endpoints, stable/beta/alpha split, categories', () => {
  const r = report();
  assert.equal(
    r.identities.map((i) => [i.key, i.requests]),
    [
      ['kubectl', 6],
      ['kube-controller-manager/deployment-controller', 7],
      ['kubelet', 7],
      ['e2e.test', 4],
      ['curl', 2],
    ].sort((a, b) => (b[1] as number) - (a[1] as number) || String(a[0]).localeCompare(String(b[0]))),
  );
  const kubectl = r.identities.find((i) => i.key === 'kubectl')!;
  assert.equal(kubectl.endpoints, [{ endpoint: 'readCoreV1NamespacedPod', hits: 3 }, { endpoint: 'listAppsV1NamespacedDeployment', hits: 2 }, { endpoint: 'listFlowcontrolApiserverV1beta3FlowSchema', hits: 1 }]);
  assert.equal(kubectl.levels, { stable: { endpoints: 2, hits: 5 }, beta: { endpoints: 1, hits: 1 }, alpha: { endpoints: 0, hits: 0 } });
  assert.equal(kubectl.categories, [{ category: 'core', hits: 3 }, { category: 'apps', hits: 2 }, { category: 'flowcontrolApiserver', hits: 1 }]);
  assert.equal(kubectl.versions, ['v1.35.0']);
  const kubelet = r.identities.find((i) => i.key === 'kubelet')!;
  assert.equal([kubelet.requests, kubelet.endpointRequests, kubelet.nonResource, kubelet.excluded, kubelet.unmatched], [7, 1, 5, 1, 0]);
  assert.equal(kubelet.users, ['system:node:n1']);
  const e2e = r.identities.find((i) => i.key === 'e2e.test')!;
  assert.is(e2e.tests, 3, 'the conformance test, the plain one, and no test name');
  assert.equal(r.tests, [{ test: '', conformance: false }, { test: PLAIN, conformance: false }, { test: CONF, conformance: true }].sort((a, b) => a.test.localeCompare(b.test)));
});

test('non-resource, unmatched (with reasons and samples), watch endpoints, unparseable lines', () => {
  const c = new CoverageCollector(catalogue);
  for (const e of events()) c.addEvent(e);
  c.addUnparseable('audit.log:7: invalid JSON');
  const r = c.report({ now: NOW });
  assert.equal(r.nonResource, { total: 5, byKind: [{ kind: 'healthz', requests: 4 }, { kind: 'readyz', requests: 1 }] });
  assert.is(r.unmatched.total, 2);
  assert.is(r.unmatched.byReason.length, 1);
  assert.match(r.unmatched.byReason[0]!.reason, /cert-manager\.io\/v1/);
  assert.equal(r.unmatched.byReason[0]!.samples, ['get /apis/cert-manager.io/v1/namespaces/x/certificates/y (curl)', 'get /apis/cert-manager.io/v1/namespaces/x/certificates/y (curl)']);
  assert.equal(r.excluded, { total: 1, byEndpoint: [{ endpoint: 'watchCoreV1NamespacedPodList', requests: 1 }] });
  assert.equal(r.unparseable, { total: 1, samples: ['audit.log:7: invalid JSON'] });
  assert.is(r.summary.unparseable, 1);
  assert.is(r.meta.release, '');
  assert.is(r.meta.releaseDate, '2026-11-21T10:00:00');
});

test('add(): already mapped requests, and a collector without mapper refuses addEvent', () => {
  const c = new CoverageCollector({ coverageEndpoints: () => catalogue.coverageEndpoints() });
  const ep = catalogue.byOperationId('deleteCoreV1NamespacedPod')!;
  c.add({ type: 'endpoint', endpoint: ep }, identify({ userAgent: UA.e2eConf, user: {} }));
  c.add({ type: 'non-resource', kind: 'metrics' }, identify({ userAgent: 'prometheus/2.53.0', user: {} }));
  const r = c.report();
  assert.is(byId(r, 'deleteCoreV1NamespacedPod').conf_tested, true);
  assert.equal(r.nonResource.byKind, [{ kind: 'metrics', requests: 1 }]);
  assert.throws(() => c.addEvent(ev(UA.kubectl, 'get', '/version/')), /Catalogue or an event mapper/);
});

test('stages: counted once in file order (interleaved) and in store order (together, by stage name)', () => {
  const d = new StageDeduper();
  const seq = (id: string, stage: AuditEvent['stage']) => d.first({ auditID: id, stage });
  // File: a watch (RequestReceived, ResponseStarted ... ResponseComplete) with others in between.
  assert.equal(
    [seq('w', 'RequestReceived'), seq('a', 'RequestReceived'), seq('w', 'ResponseStarted'), seq('a', 'ResponseComplete'), seq('b', 'ResponseComplete'), seq('w', 'ResponseComplete')],
    [true, true, false, false, true, false],
  );
  assert.is(d.inFlight, 0);
  // Store: ordered by (audit_id, stage): Panic < RequestReceived < ResponseComplete < ResponseStarted.
  const s = new StageDeduper();
  const st = (id: string, stage: AuditEvent['stage']) => s.first({ auditID: id, stage });
  assert.equal([st('a', 'RequestReceived'), st('a', 'ResponseComplete'), st('a', 'ResponseStarted'), st('b', 'ResponseComplete'), st('c', 'Panic'), st('c', 'RequestReceived')], [true, false, false, true, true, false]);
  assert.is(s.inFlight, 0);
  // No audit ID: every event counts.
  assert.equal([st('', 'ResponseComplete'), st('', 'ResponseComplete')], [true, true]);
});

test('releaseOf', () => {
  assert.equal(['v1.35.0', '1.35', 'v1.35.0-alpha.1.2+abc', 'unversioned', ''].map(releaseOf), ['1.35.0', '1.35.0', '1.35.0', '', '']);
});

// -------------------------------------------------------------------------------------------------
// Formats.

/** RFC 4180 parser for the test: quoted fields, doubled quotes, CRLF records. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else field += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') {
      row.push(field);
      field = '';
    } else if (ch === '\r' && text[i + 1] === '\n') {
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
      i++;
    } else field += ch;
  }
  assert.is(field, '', 'the text ends with CRLF');
  return rows;
}

test('csv: RFC 4180 quoting, CRLF, one row per coverage endpoint', () => {
  assert.is(csvField('plain'), 'plain');
  assert.is(csvField('a,b'), '"a,b"');
  assert.is(csvField('say "hi"'), '"say ""hi"""');
  assert.is(csvField('two\nlines'), '"two\nlines"');
  assert.is(csvField('cr\rhere'), '"cr\rhere"');
  assert.is(csvField(12), '12');
  assert.is(csvField(true), 'true');
  const text = formatCsv(report());
  assert.ok(text.endsWith('\r\n'));
  assert.not.ok(/[^\r]\n(?![^"]*")/.test(text.split('"').filter((_, i) => i % 2 === 0).join('')), 'line ends outside quotes are CRLF');
  const rows = parseCsv(text);
  assert.equal(rows[0], [...CSV_COLUMNS]);
  assert.is(rows.length, 1 + 14);
  assert.ok(rows.every((r) => r.length === CSV_COLUMNS.length), 'every row has every column');
  const col = (name: (typeof CSV_COLUMNS)[number]) => CSV_COLUMNS.indexOf(name);
  const patch = rows.find((r) => r[0] === 'patchCoreV1NamespacedPod')!;
  assert.is(patch[col('description')], 'partially update the specified Pod, "quoted", with commas\nand a second line');
  const read = rows.find((r) => r[0] === 'readCoreV1NamespacedPod')!;
  assert.equal([read[col('hits')], read[col('usage_hits')], read[col('e2e_hits')], read[col('tested')], read[col('conf_tested')], read[col('top_identities')]], ['4', '3', '1', 'true', 'false', 'kubectl=3;e2e.test=1']);
  assert.ok(text.includes('"partially update the specified Pod, ""quoted"", with commas\nand a second line"'));
});

test('json: APISnoop coverage shape, keys in its order, plus kube-correlate', () => {
  const apisnoop = JSON.parse(readFileSync(dataFile('apisnoop/coverage-1.35.0.json'), 'utf8')) as Record<string, unknown> & { endpoints: Array<Record<string, unknown>>; tests: Array<Record<string, unknown>> };
  const ours = JSON.parse(formatJson(report())) as Record<string, unknown> & { endpoints: Array<Record<string, unknown>>; tests: Array<Record<string, unknown>> };
  assert.equal(Object.keys(apisnoop), [...APISNOOP_KEYS]);
  assert.equal(Object.keys(ours), [...APISNOOP_KEYS, EXTRA_KEY]);
  assert.equal(Object.keys(ours.endpoints[0]!), Object.keys(apisnoop.endpoints[0]!), 'endpoint keys and order');
  assert.equal(Object.keys(ours.tests[0]!).sort(), Object.keys(apisnoop.tests[0]!).sort(), 'test keys');
  for (const k of APISNOOP_KEYS) {
    const a = apisnoop[k];
    const o = ours[k];
    if (k.startsWith('new ')) assert.ok(o === null, `${k} is null without a previous release`);
    else assert.is(Array.isArray(o) ? 'array' : typeof o, Array.isArray(a) ? 'array' : typeof a, `type of ${k}`);
  }
  assert.is(ours['total endpoints'], 14);
  assert.is(ours['tested endpoints'], 4);
  assert.is(ours['total conformance eligible endpoints'], 9);
  assert.is(ours['tested conformance eligible endpoints'], 2);
  assert.is(ours['release'], '1.35.0');
  assert.is(ours['release_date'], '2026-11-21T10:00:00');
  assert.equal(ours['sources'], ['audit.log']);
  const version = ours.endpoints.find((e) => e['endpoint'] === 'getCodeVersion')!;
  const snoopVersion = apisnoop.endpoints.find((e) => e['endpoint'] === 'getCodeVersion')!;
  for (const k of ['kind', 'group', 'version', 'action']) assert.is(version[k], snoopVersion[k], `${k} of an endpoint without GVK (${String(snoopVersion[k])})`);
  const list = ours.endpoints.find((e) => e['endpoint'] === 'listCoreV1NamespacedPod')!;
  assert.equal(list, {
    kind: 'Pod',
    path: '/api/v1/namespaces/{namespace}/pods',
    group: '',
    level: 'stable',
    tests: [CONF],
    action: 'list',
    tested: true,
    release: '1.35.0',
    version: 'v1',
    category: 'core',
    endpoint: 'listCoreV1NamespacedPod',
    conf_tested: true,
    description: 'list or watch objects of kind Pod',
  });
  const conf = ours.tests.find((t) => t['test'] === CONF)!;
  assert.equal(conf, { file: null, test: CONF, release: '1.35.0', testname: null, conformance_test: true, promotion_release: null });
  const extra = ours[EXTRA_KEY] as Record<string, unknown>;
  assert.ok(['identities', 'unmatched', 'nonResource', 'summary', 'endpoints', 'untestedStableByUsage'].every((k) => k in extra));
  assert.is((extra['identities'] as unknown[]).length, 5);
  const withPrev = JSON.parse(formatJson(report({ previousEndpoints: [] }))) as Record<string, unknown>;
  assert.is(withPrev['new conformance eligible endpoints'], 9);
  assert.is(withPrev['new tested conformance eligible endpoints'], 2);
});

test('table: aligned columns, the sections', () => {
  const t = renderTable([{ title: 'name' }, { title: 'n', align: 'right' }], [['a', 1], ['longer', 1234]]);
  assert.is(t, 'name       n\n------  ----\na          1\nlonger  1234\n');
  const cut = renderTable([{ title: 'x', max: 5 }], [['abcdefgh']]);
  assert.ok(cut.includes('abcd…'));
  const text = formatTable(report());
  assert.match(text, /^API coverage of Kubernetes 1\.35\.0 \(spec swagger\.json\)/);
  assert.match(text, /requests: 26 \(endpoint 18, non-resource 5, unmatched 2, watch endpoints 1\)/);
  assert.match(text, /conformance eligible endpoints: 9, conformance-tested 2 \(22\.2%\)/);
  const lines = text.split('\n');
  const header = lines.findIndex((l) => l.startsWith('level'));
  const levelRows = lines.slice(header, header + 6);
  assert.ok(levelRows.every((l) => l.length === levelRows[0]!.length), `level table aligned:\n${levelRows.join('\n')}`);
  assert.match(text, /stable\s+12\s+8\s+66\.7%\s+4\s+33\.3%\s+2\s+16\.7%/);
  assert.match(text, /1\s+listAppsV1NamespacedDeployment\s+7\s+no\s+yes\s+kube-controller-manager\/deployment-controller \(5\), kubectl \(2\)/);
  assert.match(text, /kube-controller-manager\/deployment-controller\s+7\s+3\s+3\s+0\s+0\s+0\s+0/);
  assert.match(text, /healthz\s+4/);
  assert.match(text, /unmatched requests: 2/);
  assert.is(formatReport(report(), 'table'), text);
});

test('html: one self-contained file, a leaf per coverage endpoint, escaped data', () => {
  const evil = `${E2E} -- </script><script>alert(1)</script> [Conformance]`;
  const r = coverageReport(catalogue, [...events(), ev(evil, 'delete', '/api/v1/namespaces/e2e-1/pods/p')], { release: '1.35.0', now: NOW });
  const html = formatHtml(r);
  assert.ok(html.startsWith('<!DOCTYPE html>'));
  assert.not.ok(/<script[^>]*\bsrc=/i.test(html), 'no external script');
  assert.not.ok(/<link[^>]*href="(?!data:)/i.test(html), 'no external stylesheet or icon');
  assert.not.ok(/(?:src|href)\s*=\s*["']?https?:/i.test(html), 'nothing fetched');
  assert.not.ok(/@import|url\(/i.test(html), 'no CSS fetches');
  assert.is((html.match(/<script/g) ?? []).length, 2, 'the data and the script only: the test name did not open a script');
  assert.not.ok(html.includes('</script><script>alert(1)'), 'the test name is escaped');
  // The leaves are made by the page's script from the data: one per coverage endpoint.
  const data = JSON.parse(/<script type="application\/json" id="coverage-data">([\s\S]*?)<\/script>/.exec(html)![1]!) as { endpoints: Array<{ id: string; conf: boolean }>; identities: Array<{ key: string }> };
  assert.is(data.endpoints.length, 14);
  assert.ok(data.endpoints.find((e) => e.id === 'deleteCoreV1NamespacedPod')!.conf);
  assert.equal(data.identities.map((i) => i.key).sort(), ['curl', 'e2e.test', 'kube-controller-manager/deployment-controller', 'kubectl', 'kubelet']);
  assert.ok(html.includes("setAttribute('data-endpoint'"));
  assert.ok(html.includes('<select id="identity">'));
});

test.run();
