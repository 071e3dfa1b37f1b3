import { readFileSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { type Catalogue, type Endpoint, type EndpointMatch, isCoverageEndpoint, loadCatalogueFile, mapAuditEvent, methodOfVerb } from '../src/index.js';
import { dataFile } from './shared-data.js';


interface SnoopEndpoint {
  endpoint: string;
  path: string;
  action: string | null;
}

const VERSIONS = ['1.33', '1.34', '1.35'];
const catalogues = new Map<string, Catalogue>();
function catalogue(v: string): Catalogue {
  let c = catalogues.get(v);
  if (c === undefined) catalogues.set(v, (c = loadCatalogueFile(dataFile(`openapi/swagger-v${v}.json`))));
  return c;
}

/**
 * The audit verb kube-apiserver records for a request to an endpoint (RequestInfo): the action,
 * except that create/update are `post`/`put` actions, watch paths give `watch`, connect follows the
 * HTTP method (GET and HEAD -> get, POST -> create, ..., OPTIONS -> ''), and non-resource requests
 * (no action: discovery, /version, /logs, OpenID) record the lower-cased method.
 */
function auditVerb(ep: Endpoint): string {
  switch (ep.action) {
    case 'post': return 'create';
    case 'put': return 'update';
    case 'watch': case 'watchlist': return 'watch';
    case 'get': case 'list': case 'patch': case 'delete': case 'deletecollection': return ep.action;
    case 'connect': return ({ GET: 'get', HEAD: 'get', POST: 'create', PUT: 'update', PATCH: 'patch', DELETE: 'delete', OPTIONS: '' } as const)[ep.method];
    case '': return ep.method.toLowerCase();
    default: throw new Error(`${ep.operationId}: unexpected action ${ep.action}`);
  }
}

function requestURI(path: string): string {
  return path.replaceAll('{namespace}', 'default').replaceAll('{name}', 'obj-1').replaceAll('{path}', 'a/b').replaceAll('{logpath}', 'a/b');
}

/**
 * Endpoints an audit event cannot be told apart from another: expected operationId and why.
 * kube-apiserver records a HEAD request as verb `get` (RequestInfo: `case MethodGet, MethodHead`),
 * so the six connect HEAD operations map to their GET twin. (APISnoop has the same limit.)
 */
const EXCEPTIONS: Readonly<Record<string, { expect: string; reason: string }>> = {
  connectCoreV1HeadNamespacedPodProxy: { expect: 'connectCoreV1GetNamespacedPodProxy', reason: 'HEAD is audited as verb get' },
  connectCoreV1HeadNamespacedPodProxyWithPath: { expect: 'connectCoreV1GetNamespacedPodProxyWithPath', reason: 'HEAD is audited as verb get' },
  connectCoreV1HeadNamespacedServiceProxy: { expect: 'connectCoreV1GetNamespacedServiceProxy', reason: 'HEAD is audited as verb get' },
  connectCoreV1HeadNamespacedServiceProxyWithPath: { expect: 'connectCoreV1GetNamespacedServiceProxyWithPath', reason: 'HEAD is audited as verb get' },
  connectCoreV1HeadNodeProxy: { expect: 'connectCoreV1GetNodeProxy', reason: 'HEAD is audited as verb get' },
  connectCoreV1HeadNodeProxyWithPath: { expect: 'connectCoreV1GetNodeProxyWithPath', reason: 'HEAD is audited as verb get' },
};

function describe(m: EndpointMatch): string {
  return m.type === 'endpoint' ? m.endpoint.operationId : `${m.type}: ${m.type === 'unmatched' ? m.reason : m.kind}`;
}

for (const v of VERSIONS) {
  test(`${v}: every APISnoop endpoint maps back from an audit event built from its path and action`, () => {
    const cat = catalogue(v);
    const snoop = (JSON.parse(readFileSync(dataFile(`apisnoop/coverage-${v}.0.json`), 'utf8')) as { endpoints: SnoopEndpoint[] }).endpoints;
    const failures: string[] = [];
    const usedExceptions = new Set<string>();
    for (const s of snoop) {
      const ep = cat.byOperationId(s.endpoint);
      if (ep === undefined) {
        failures.push(`${s.endpoint}: not in the catalogue`);
        continue;
      }
      const event = { requestURI: requestURI(s.path), verb: auditVerb(ep) };
      const m = mapAuditEvent(cat, event);
      const exception = EXCEPTIONS[s.endpoint];
      if (exception !== undefined) usedExceptions.add(s.endpoint);
      const want = exception?.expect ?? s.endpoint;
      if (m.type !== 'endpoint' || m.endpoint.operationId !== want) {
        failures.push(`${s.endpoint} (${event.verb} ${event.requestURI}): got ${describe(m)}, want ${want}`);
      }
    }
    assert.equal(failures, [], `${failures.length} failures:\n${failures.join('\n')}`);
    assert.equal([...usedExceptions].sort(), Object.keys(EXCEPTIONS).sort(), 'every exception is used');
  });

  test(`${v}: watch and watchlist operations (outside coverage) map from their /watch/ paths`, () => {
    const cat = catalogue(v);
    const watches = cat.endpoints.filter((e) => !isCoverageEndpoint(e));
    assert.ok(watches.length > 150);
    const failures = watches
      .map((ep) => ({ ep, m: mapAuditEvent(cat, { requestURI: requestURI(ep.path), verb: 'watch' }) }))
      .filter(({ ep, m }) => m.type !== 'endpoint' || m.endpoint !== ep)
      .map(({ ep, m }) => `${ep.operationId}: got ${describe(m)}`);
    assert.equal(failures, []);
  });
}

// -------------------------------------------------------------------------------------------------
// Unit cases on 1.35.

function op(requestURI: string, verb: string, objectRef?: { resource?: string; subresource?: string }): string {
  return describe(mapAuditEvent(catalogue('1.35'), objectRef === undefined ? { requestURI, verb } : { requestURI, verb, objectRef }));
}

test('verbs -> methods', () => {
  const verbs = ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete', 'deletecollection', '', 'head', 'options', 'post', 'put', 'proxy', 'bogus'];
  assert.equal(verbs.map(methodOfVerb), ['GET', 'GET', 'GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'DELETE', 'OPTIONS', 'HEAD', 'OPTIONS', 'POST', 'PUT', undefined, undefined]);
});

test('?watch=true on a collection maps to the list operation (as APISnoop); the query string is ignored', () => {
  assert.is(op('/api/v1/namespaces/default/pods?watch=true&resourceVersion=12&timeoutSeconds=300', 'watch'), 'listCoreV1NamespacedPod');
  assert.is(op('/api/v1/pods?allowWatchBookmarks=true&watch=1', 'watch'), 'listCoreV1PodForAllNamespaces');
  assert.is(op('/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases?watch=true', 'watch'), 'listCoordinationV1NamespacedLease');
  assert.is(op('/api/v1/namespaces/default/configmaps?fieldSelector=metadata.name%3Dkube-root-ca.crt&watch=true', 'watch'), 'listCoreV1NamespacedConfigMap');
  assert.is(op('/api/v1/namespaces/default/pods?limit=500', 'list'), 'listCoreV1NamespacedPod');
  assert.is(op('/api/v1/namespaces/default/pods/p1?resourceVersion=0', 'get'), 'readCoreV1NamespacedPod');
  const list = mapAuditEvent(catalogue('1.35'), { requestURI: '/api/v1/pods?watch=true', verb: 'watch' });
  assert.ok(list.type === 'endpoint' && isCoverageEndpoint(list.endpoint), 'a ?watch=true list counts as the list endpoint');
});

test('legacy /watch/ paths map to the watch operations, which are outside coverage', () => {
  assert.is(op('/api/v1/watch/namespaces/default/pods', 'watch'), 'watchCoreV1NamespacedPodList');
  assert.is(op('/api/v1/watch/namespaces/default/pods/p1', 'watch'), 'watchCoreV1NamespacedPod');
  assert.is(op('/api/v1/watch/pods?resourceVersion=5', 'watch'), 'watchCoreV1PodListForAllNamespaces');
  assert.is(op('/apis/apps/v1/watch/namespaces/default/deployments', 'watch'), 'watchAppsV1NamespacedDeploymentList');
  const m = mapAuditEvent(catalogue('1.35'), { requestURI: '/api/v1/watch/namespaces/default/pods', verb: 'watch' });
  assert.ok(m.type === 'endpoint' && !isCoverageEndpoint(m.endpoint));
});

test('subresources, namespaced and cluster-scoped forms', () => {
  assert.is(op('/api/v1/namespaces/default/pods/p1/status', 'patch'), 'patchCoreV1NamespacedPodStatus');
  assert.is(op('/api/v1/namespaces/default/pods/p1/status', 'update'), 'replaceCoreV1NamespacedPodStatus');
  assert.is(op('/apis/apps/v1/namespaces/default/deployments/web/scale', 'get'), 'readAppsV1NamespacedDeploymentScale');
  assert.is(op('/apis/apps/v1/namespaces/default/deployments/web/scale', 'update'), 'replaceAppsV1NamespacedDeploymentScale');
  assert.is(op('/apis/apps/v1/namespaces/default/deployments/web/scale', 'patch'), 'patchAppsV1NamespacedDeploymentScale');
  assert.is(op('/api/v1/nodes/node-1/status', 'patch'), 'patchCoreV1NodeStatus');
  assert.is(op('/api/v1/nodes/node-1', 'get'), 'readCoreV1Node');
  assert.is(op('/api/v1/namespaces/default/pods/p1/log?container=c&follow=true', 'get'), 'readCoreV1NamespacedPodLog');
  assert.is(op('/api/v1/namespaces/default/pods/p1/eviction', 'create'), 'createCoreV1NamespacedPodEviction');
  assert.is(op('/api/v1/namespaces/default/serviceaccounts/default/token', 'create'), 'createCoreV1NamespacedServiceAccountToken');
  assert.is(op('/api/v1/namespaces/kube-system', 'get'), 'readCoreV1Namespace');
  assert.is(op('/api/v1/namespaces/status', 'get'), 'readCoreV1Namespace', 'a namespace named status');
  assert.is(op('/api/v1/namespaces/kube-system/status', 'get'), 'readCoreV1NamespaceStatus');
  assert.is(op('/api/v1/namespaces/ns1/finalize', 'update'), 'replaceCoreV1NamespaceFinalize');
  assert.is(op('/api/v1/namespaces', 'create'), 'createCoreV1Namespace');
  assert.is(op('/apis/rbac.authorization.k8s.io/v1/clusterroles/admin', 'get'), 'readRbacAuthorizationV1ClusterRole');
  assert.is(op('/apis/authorization.k8s.io/v1/subjectaccessreviews', 'create'), 'createAuthorizationV1SubjectAccessReview');
});

test('delete vs deletecollection', () => {
  assert.is(op('/api/v1/namespaces/default/pods/p1', 'delete'), 'deleteCoreV1NamespacedPod');
  assert.is(op('/api/v1/namespaces/default/pods?labelSelector=app%3Dweb', 'deletecollection'), 'deleteCoreV1CollectionNamespacedPod');
  assert.is(op('/apis/storage.k8s.io/v1/storageclasses', 'deletecollection'), 'deleteStorageV1CollectionStorageClass');
});

test('connect: exec, attach, portforward and proxy with a path, by method', () => {
  assert.is(op('/api/v1/namespaces/default/pods/p1/exec?command=ls&stdout=true', 'create'), 'connectCoreV1PostNamespacedPodExec');
  assert.is(op('/api/v1/namespaces/default/pods/p1/exec?command=sh&stdin=true&tty=true', 'get'), 'connectCoreV1GetNamespacedPodExec');
  assert.is(op('/api/v1/namespaces/default/pods/p1/attach?stdout=true', 'create'), 'connectCoreV1PostNamespacedPodAttach');
  assert.is(op('/api/v1/namespaces/default/pods/p1/portforward?ports=8080', 'get'), 'connectCoreV1GetNamespacedPodPortforward');
  assert.is(op('/api/v1/namespaces/default/services/https:web:443/proxy/api/v1/x?y=1', 'get'), 'connectCoreV1GetNamespacedServiceProxyWithPath');
  assert.is(op('/api/v1/namespaces/default/services/web/proxy', 'get'), 'connectCoreV1GetNamespacedServiceProxy');
  assert.is(op('/api/v1/namespaces/default/services/web/proxy/', 'get'), 'connectCoreV1GetNamespacedServiceProxyWithPath', 'proxy/: the {path} form, empty path');
  assert.is(op('/api/v1/namespaces/default/pods/p1:8080/proxy/healthz', 'create'), 'connectCoreV1PostNamespacedPodProxyWithPath');
  assert.is(op('/api/v1/namespaces/default/pods/p1/proxy/a/b/c', 'delete'), 'connectCoreV1DeleteNamespacedPodProxyWithPath');
  assert.is(op('/api/v1/namespaces/default/pods/p1/proxy/a', 'patch'), 'connectCoreV1PatchNamespacedPodProxyWithPath');
  assert.is(op('/api/v1/namespaces/default/pods/p1/proxy', ''), 'connectCoreV1OptionsNamespacedPodProxy', 'OPTIONS is audited as verb ""');
  assert.is(op('/api/v1/nodes/node-1/proxy/metrics/cadvisor', 'get'), 'connectCoreV1GetNodeProxyWithPath');
  assert.is(op('/api/v1/nodes/node-1/proxy', 'update'), 'connectCoreV1PutNodeProxy');
});

test('discovery, /version, /logs and OpenID in the spec are endpoints', () => {
  assert.is(op('/api', 'get'), 'getCoreAPIVersions');
  assert.is(op('/api/v1', 'get'), 'getCoreV1APIResources');
  assert.is(op('/apis', 'get'), 'getAPIVersions');
  assert.is(op('/apis/apps', 'get'), 'getAppsAPIGroup');
  assert.is(op('/apis/apps/v1/', 'get'), 'getAppsV1APIResources');
  assert.is(op('/version?timeout=32s', 'get'), 'getCodeVersion');
  assert.is(op('/.well-known/openid-configuration', 'get'), 'getServiceAccountIssuerOpenIDConfiguration');
  assert.is(op('/openid/v1/jwks', 'get'), 'getServiceAccountIssuerOpenIDKeyset');
  assert.is(op('/logs/', 'get'), 'logFileListHandler');
  assert.is(op('/logs/kube-apiserver.log', 'get'), 'logFileHandler');
});

test('non-resource URLs', () => {
  const cases: [string, string][] = [
    ['/healthz', 'healthz'], ['/healthz/etcd', 'healthz'], ['/livez?verbose', 'livez'], ['/readyz/informer-sync', 'readyz'],
    ['/metrics', 'metrics'], ['/metrics/slis', 'metrics'], ['/openapi/v2?timeout=32s', 'openapi'],
    ['/openapi/v3/apis/apps/v1?hash=ABC', 'openapi'], ['/.well-known/oauth-authorization-server', 'well-known'],
    ['/apis/metrics.k8s.io/v1beta1', 'discovery'], ['/apis/cert-manager.io', 'discovery'], ['/api/v2', 'discovery'],
    ['/', 'root'], ['/debug/api_priority_and_fairness/dump_priority_levels', 'debug'],
  ];
  for (const [uri, kind] of cases) {
    assert.is(op(uri, 'get'), `non-resource: ${kind}`, uri);
  }
  assert.is(op('/healthz', 'head'), 'non-resource: healthz');
});

test('unmatched, with the reason', () => {
  assert.match(op('/apis/cert-manager.io/v1/namespaces/default/certificates?watch=true', 'watch'),
    /^unmatched: unknown API group\/version cert-manager\.io\/v1: not in the spec, likely a CRD or an aggregated API$/);
  assert.match(op('/apis/metrics.k8s.io/v1beta1/nodes', 'list'), /unknown API group\/version metrics\.k8s\.io\/v1beta1/);
  assert.match(op('/apis/batch/v2alpha1/namespaces/default/cronjobs', 'list'), /^unmatched: API version batch\/v2alpha1 not in the spec \(the group is/);
  assert.match(op('/api/v2/pods', 'list'), /^unmatched: unknown core API version v2/);
  assert.is(op('/api/v1/namespaces/default/foos/f1', 'get'), 'unmatched: path not in the spec: foos in core/v1');
  assert.is(op('/api/v1/namespaces/default/pods/p1/bogus', 'get', { resource: 'pods', subresource: 'bogus' }), 'unmatched: path not in the spec: pods/bogus in core/v1');
  assert.is(op('/apis/apps/v1/namespaces/default/deployments/web/bogus', 'get'), 'unmatched: path not in the spec: deployments/bogus in apps/v1');
  assert.is(op('/api/v1/namespaces/default/pods', 'update'),
    'unmatched: method PUT (verb update) not served at /api/v1/namespaces/{namespace}/pods (the spec has DELETE, GET, POST)');
  assert.match(op('/api/v1/namespaces/default/pods/p1/exec', 'patch'), /^unmatched: method PATCH \(verb patch\) not served at \/api\/v1\/namespaces\/\{namespace\}\/pods\/\{name\}\/exec/);
  assert.match(op('/api/v1/namespaces/default/pods/p1', ''), /^unmatched: method OPTIONS \(verb ''\) not served/);
  assert.match(op('/version', 'post'), /^unmatched: method POST \(verb post\) not served at \/version\//);
  assert.is(op('/api/v1/namespaces/default/pods', 'bogus'), 'unmatched: unknown audit verb "bogus"');
  assert.is(op('/foo/bar', 'get'), 'unmatched: path not in the spec: non-resource URL /foo');
  assert.is(op('', 'get'), 'unmatched: no requestURI');
});

test.run();
