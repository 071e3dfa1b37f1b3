import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { buildCatalogue, groupVersionOfPath, isCoverageEndpoint, levelOf, loadCatalogueFile } from '../src/index.js';
import { dataFile } from './shared-data.js';


/** An endpoint of APISnoop's published coverage-<release>.json. */
interface SnoopEndpoint {
  endpoint: string;
  path: string;
  kind: string | null;
  group: string | null;
  version: string | null;
  level: string;
  category: string;
  action: string | null;
  description: string | null;
}

interface SnoopCoverage {
  'total endpoints': number;
  endpoints: SnoopEndpoint[];
}

const VERSIONS = ['1.33', '1.34', '1.35'];

for (const v of VERSIONS) {
  test(`${v}: coverage endpoints = APISnoop's total endpoints, same operationIds`, () => {
    const cat = loadCatalogueFile(dataFile(`openapi/swagger-v${v}.json`));
    const snoop = JSON.parse(readFileSync(dataFile(`apisnoop/coverage-${v}.0.json`), 'utf8')) as SnoopCoverage;
    const ours = cat.coverageEndpoints();
    assert.is(ours.length, snoop['total endpoints']);
    assert.is(ours.length, snoop.endpoints.length);
    const theirs = new Set(snoop.endpoints.map((e) => e.endpoint));
    const ourIds = new Set(ours.map((e) => e.operationId));
    assert.equal([...ourIds].filter((id) => !theirs.has(id)), [], 'ours, not APISnoop\'s');
    assert.equal([...theirs].filter((id) => !ourIds.has(id)), [], 'APISnoop\'s, not ours');
    // Every operation is in `endpoints`; only watch/watchlist are left out of coverage.
    assert.ok(cat.endpoints.length > ours.length);
    assert.equal([...new Set(cat.endpoints.filter((e) => !isCoverageEndpoint(e)).map((e) => e.action))].sort(), ['watch', 'watchlist']);
  });

  test(`${v}: level, category, kind, group, version, action, path, description equal APISnoop's`, () => {
    const cat = loadCatalogueFile(dataFile(`openapi/swagger-v${v}.json`));
    const snoop = JSON.parse(readFileSync(dataFile(`apisnoop/coverage-${v}.0.json`), 'utf8')) as SnoopCoverage;
    const mismatches: string[] = [];
    let noGvk = 0;
    for (const s of snoop.endpoints) {
      const ep = cat.byOperationId(s.endpoint);
      if (ep === undefined) {
        mismatches.push(`${s.endpoint}: not in the catalogue`);
        continue;
      }
      // APISnoop leaves kind/group/version null when the operation has no
      // x-kubernetes-group-version-kind (discovery, /version, /logs, OpenID): we give kind '' and
      // take group/version from the path.
      const pathGv = groupVersionOfPath(s.path);
      if (s.kind === null) noGvk++;
      const expected: Record<string, string> = {
        level: s.level,
        category: s.category,
        kind: s.kind ?? '',
        group: s.group ?? (s.kind === null ? pathGv.group : '<null group with a kind>'),
        version: s.version ?? (s.kind === null ? pathGv.version : '<null version with a kind>'),
        action: s.action ?? '',
        path: s.path,
        description: s.description ?? '',
      };
      for (const [field, want] of Object.entries(expected)) {
        const got = ep[field as keyof typeof ep];
        if (got !== want) mismatches.push(`${s.endpoint}.${field}: ours ${JSON.stringify(got)}, APISnoop ${JSON.stringify(want)}`);
      }
    }
    assert.ok(noGvk > 60 && noGvk < 70, `${noGvk} endpoints without a kind`);
    assert.equal(mismatches, [], `${mismatches.length} mismatches:\n${mismatches.join('\n')}`);
  });
}

// -------------------------------------------------------------------------------------------------
// Derivation rules on a small document.

const SMALL = {
  swagger: '2.0',
  paths: {
    '/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale': {
      parameters: [{ name: 'name', in: 'path' }],
      get: {
        operationId: 'readAppsV1NamespacedDeploymentScale', tags: ['apps_v1'], description: 'read scale of the specified Deployment',
        'x-kubernetes-action': 'get', 'x-kubernetes-group-version-kind': { group: 'autoscaling', version: 'v1', kind: 'Scale' },
      },
    },
    '/apis/rbac.authorization.k8s.io/v1/watch/clusterroles': {
      get: {
        operationId: 'watchRbacAuthorizationV1ClusterRoleList', tags: ['rbacAuthorization_v1'], description: 'watch',
        'x-kubernetes-action': 'watchlist', 'x-kubernetes-group-version-kind': { group: 'rbac.authorization.k8s.io', version: 'v1', kind: 'ClusterRole' },
      },
    },
    '/apis/resource.k8s.io/v1alpha3/': { get: { operationId: 'getResourceV1alpha3APIResources', tags: ['resource_v1alpha3'], description: 'get available resources' } },
    '/apis/storage.k8s.io/v1beta1/': { get: { operationId: 'getStorageV1beta1APIResources', tags: ['storage_v1beta1'] } },
    '/.well-known/openid-configuration/': { get: { operationId: 'getServiceAccountIssuerOpenIDConfiguration', tags: ['WellKnown'] } },
    '/logs/{logpath}': { get: { operationId: 'logFileHandler', tags: ['logs'] } },
  },
};

test('derivation: gvk, tag category, path level, APISnoop\'s beta OpenID, defaults', () => {
  const cat = buildCatalogue(SMALL);
  assert.is(cat.endpoints.length, 6);
  assert.equal(cat.byOperationId('readAppsV1NamespacedDeploymentScale'), {
    operationId: 'readAppsV1NamespacedDeploymentScale',
    path: '/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale',
    method: 'GET',
    action: 'get',
    group: 'autoscaling', // from the gvk, as APISnoop: not the path's apps
    version: 'v1',
    kind: 'Scale',
    level: 'stable',
    category: 'apps',
    description: 'read scale of the specified Deployment',
  });
  const watch = cat.byOperationId('watchRbacAuthorizationV1ClusterRoleList')!;
  assert.is(watch.category, 'rbacAuthorization');
  assert.not.ok(isCoverageEndpoint(watch));
  assert.is(cat.coverageEndpoints().length, 5);
  const alpha = cat.byOperationId('getResourceV1alpha3APIResources')!;
  assert.equal([alpha.level, alpha.group, alpha.version, alpha.kind, alpha.action], ['alpha', 'resource.k8s.io', 'v1alpha3', '', '']);
  assert.is(cat.byOperationId('getStorageV1beta1APIResources')!.description, '');
  assert.is(cat.byOperationId('getStorageV1beta1APIResources')!.level, 'beta');
  const oidc = cat.byOperationId('getServiceAccountIssuerOpenIDConfiguration')!;
  assert.equal([oidc.level, oidc.category, oidc.group, oidc.version], ['beta', 'WellKnown', '', '']);
  assert.is(cat.byOperationId('logFileHandler')!.level, 'stable');
  assert.is(cat.byOperationId('nope'), undefined);
  assert.ok(cat.groupVersions.has('apis/apps/v1'));
  assert.ok(cat.groups.has('rbac.authorization.k8s.io'));
  assert.not.ok(cat.groupVersions.has('apis/storage.k8s.io/v1beta1'), 'a discovery path alone does not make a served group/version');
});

test('levelOf and groupVersionOfPath', () => {
  assert.equal(['v1', 'v2beta1', 'v1alpha3', '/apis/x/v1beta2/foo'].map(levelOf), ['stable', 'beta', 'alpha', 'beta']);
  assert.equal(groupVersionOfPath('/api/v1/pods'), { group: '', version: 'v1' });
  assert.equal(groupVersionOfPath('/apis/apps/'), { group: 'apps', version: '' });
  assert.equal(groupVersionOfPath('/version/'), { group: '', version: '' });
});

test('refuses what is not a Kubernetes OpenAPI v2 document', () => {
  assert.throws(() => buildCatalogue(null), /expected a JSON object/);
  assert.throws(() => buildCatalogue({ openapi: '3.0.0', paths: {} }), /OpenAPI v3/);
  assert.throws(() => buildCatalogue({ swagger: '2.0' }), /no "paths"/);
  assert.is(buildCatalogue({ paths: {} }).endpoints.length, 0);
});

test('loadCatalogueFile: errors name the file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'apicov-'));
  try {
    const missing = join(dir, 'missing.json');
    assert.throws(() => loadCatalogueFile(missing), (e: Error) => e.message.startsWith(missing));
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, '{"swagger":"2.0"}');
    assert.throws(() => loadCatalogueFile(bad), (e: Error) => e.message.startsWith(bad) && /no "paths"/.test(e.message));
    const good = join(dir, 'good.json');
    writeFileSync(good, JSON.stringify(SMALL));
    assert.is(loadCatalogueFile(good).endpoints.length, 6);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
