import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { KUSTOMIZE_VERSION, kustomizeBuild } from '../harness/kustomize.js';
import { loadOpenApi, openApiSpecPath, type OpenApi, type ValidationResult } from '../harness/openapi.js';

/**
 * The manifest validator (test/harness/openapi.ts) against the real Kubernetes OpenAPI v2 documents
 * of 1.33, 1.34 and 1.35: well-formed objects of the kinds the deploy manifests use pass, broken ones
 * give the errors a strict apply would, CRD kinds come back unknown; and the kustomize harness renders
 * a kustomization. Each document is loaded once.
 */
const VERSIONS = ['1.33', '1.34', '1.35'] as const;
const specs = new Map<string, OpenApi>();
const spec = (v: string): OpenApi => {
  let s = specs.get(v);
  if (!s) {
    const t0 = performance.now();
    s = loadOpenApi(openApiSpecPath(v));
    console.log(`  loaded swagger v${v} in ${(performance.now() - t0).toFixed(0)} ms (${Object.keys(s.definitions).length} definitions)`);
    specs.set(v, s);
  }
  return s;
};
const latest = (): OpenApi => spec('1.35');

/** A fresh deep copy, so each test can break its own. */
const clone = <T>(o: T): T => structuredClone(o);

const NS = 'kube-correlate';
const labels = { 'app.kubernetes.io/name': 'kube-correlate', 'app.kubernetes.io/component': 'collector' };

const deployment = {
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name: 'kube-correlate-collector', namespace: NS, labels },
  spec: {
    replicas: 2,
    revisionHistoryLimit: 5,
    selector: { matchLabels: labels },
    strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: '25%' } },
    template: {
      metadata: { labels, annotations: { 'kubectl.kubernetes.io/default-container': 'collector' } },
      spec: {
        serviceAccountName: 'kube-correlate',
        securityContext: { runAsNonRoot: true, runAsUser: 65532, fsGroup: 65532, seccompProfile: { type: 'RuntimeDefault' } },
        terminationGracePeriodSeconds: 30,
        containers: [{
          name: 'collector',
          image: 'ghcr.io/example/kube-correlate:0.1.0',
          imagePullPolicy: 'IfNotPresent',
          args: ['collector', '--config', '/etc/kube-correlate/config.yaml'],
          ports: [
            { name: 'otlp-grpc', containerPort: 4317, protocol: 'TCP' },
            { name: 'otlp-http', containerPort: 4318 },
            { name: 'webhook', containerPort: 8443 },
          ],
          env: [
            { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
            { name: 'GOMEMLIMIT', valueFrom: { resourceFieldRef: { resource: 'limits.memory', divisor: '1Mi' } } },
            { name: 'LOG_LEVEL', value: 'info' },
          ],
          resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: { cpu: 1, memory: '512Mi', 'ephemeral-storage': '1Gi' } },
          readinessProbe: { httpGet: { path: '/readyz', port: 'webhook', scheme: 'HTTPS' }, periodSeconds: 5 },
          livenessProbe: { tcpSocket: { port: 4317 }, initialDelaySeconds: 10, failureThreshold: 3 },
          securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } },
          volumeMounts: [{ name: 'config', mountPath: '/etc/kube-correlate', readOnly: true }, { name: 'data', mountPath: '/var/lib/kube-correlate' }],
        }],
        volumes: [
          { name: 'config', configMap: { name: 'kube-correlate-config', defaultMode: 0o444 } },
          { name: 'data', emptyDir: { sizeLimit: '2Gi' } },
          { name: 'tls', secret: { secretName: 'kube-correlate-tls', optional: true } },
        ],
        affinity: { podAntiAffinity: { preferredDuringSchedulingIgnoredDuringExecution: [{ weight: 100, podAffinityTerm: { topologyKey: 'kubernetes.io/hostname', labelSelector: { matchLabels: labels } } }] } },
        tolerations: [{ key: 'node-role.kubernetes.io/control-plane', operator: 'Exists', effect: 'NoSchedule' }],
      },
    },
  },
  status: { replicas: 2, whateverTheServerWrites: true },
};

const service = {
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name: 'kube-correlate-collector', namespace: NS, labels },
  spec: {
    type: 'ClusterIP',
    selector: labels,
    ports: [
      { name: 'otlp-grpc', port: 4317, targetPort: 'otlp-grpc', protocol: 'TCP', appProtocol: 'grpc' },
      { name: 'webhook', port: 443, targetPort: 8443 },
    ],
  },
};

const webhook = {
  apiVersion: 'admissionregistration.k8s.io/v1',
  kind: 'MutatingWebhookConfiguration',
  metadata: { name: 'kube-correlate', annotations: { 'cert-manager.io/inject-ca-from': `${NS}/kube-correlate-webhook` } },
  webhooks: [{
    name: 'traceparent.kube-correlate.io',
    admissionReviewVersions: ['v1'],
    sideEffects: 'None',
    failurePolicy: 'Ignore',
    matchPolicy: 'Equivalent',
    timeoutSeconds: 2,
    reinvocationPolicy: 'Never',
    clientConfig: { service: { name: 'kube-correlate-collector', namespace: NS, path: '/mutate', port: 443 }, caBundle: Buffer.from('-----BEGIN CERTIFICATE-----\n').toString('base64') },
    namespaceSelector: { matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: ['kube-system', NS] }] },
    rules: [{ apiGroups: ['*'], apiVersions: ['*'], operations: ['CREATE', 'UPDATE', 'DELETE'], resources: ['*/*'], scope: '*' }],
  }],
};

const serviceAccount = { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'kube-correlate', namespace: NS }, automountServiceAccountToken: true };
const clusterRole = {
  apiVersion: 'rbac.authorization.k8s.io/v1',
  kind: 'ClusterRole',
  metadata: { name: 'kube-correlate', labels },
  rules: [
    { apiGroups: [''], resources: ['pods', 'namespaces'], verbs: ['get', 'list', 'watch'] },
    { apiGroups: ['apps'], resources: ['replicasets', 'deployments'], verbs: ['get', 'list', 'watch'] },
    { nonResourceURLs: ['/metrics'], verbs: ['get'] },
  ],
};
const clusterRoleBinding = {
  apiVersion: 'rbac.authorization.k8s.io/v1',
  kind: 'ClusterRoleBinding',
  metadata: { name: 'kube-correlate' },
  roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'kube-correlate' },
  subjects: [{ kind: 'ServiceAccount', name: 'kube-correlate', namespace: NS }],
};
const configMap = {
  apiVersion: 'v1',
  kind: 'ConfigMap',
  metadata: { name: 'kube-correlate-config', namespace: NS },
  data: { 'config.yaml': 'receivers:\n  otlp: {}\n' },
  binaryData: { 'ca.der': Buffer.from([0x30, 0x82, 0x01]).toString('base64') },
};
const secret = {
  apiVersion: 'v1',
  kind: 'Secret',
  type: 'kubernetes.io/tls',
  metadata: { name: 'kube-correlate-tls', namespace: NS, creationTimestamp: null },
  data: { 'tls.crt': Buffer.from('cert').toString('base64'), 'tls.key': Buffer.from('key!!').toString('base64') },
  stringData: { note: 'plain text is fine here' },
};
const job = {
  apiVersion: 'batch/v1',
  kind: 'Job',
  metadata: { name: 'kube-correlate-create-topics', namespace: NS },
  spec: {
    backoffLimit: 4,
    ttlSecondsAfterFinished: 600,
    activeDeadlineSeconds: 300,
    template: {
      spec: {
        restartPolicy: 'OnFailure',
        containers: [{ name: 'create-topics', image: 'apache/kafka:4.2.0', command: ['/bin/sh', '-c', 'echo ok'], resources: { limits: { memory: '256Mi' } } }],
      },
    },
  },
};
const crd = {
  apiVersion: 'apiextensions.k8s.io/v1',
  kind: 'CustomResourceDefinition',
  metadata: { name: 'widgets.example.com' },
  spec: {
    group: 'example.com',
    names: { kind: 'Widget', plural: 'widgets', singular: 'widget', listKind: 'WidgetList' },
    scope: 'Namespaced',
    versions: [{
      name: 'v1', served: true, storage: true,
      schema: { openAPIV3Schema: { type: 'object', properties: { spec: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true, properties: { size: { type: 'integer', default: 3, minimum: 1 } } } } } },
      subresources: { status: {} },
    }],
  },
};

const VALID: Record<string, unknown> = { deployment, service, webhook, serviceAccount, clusterRole, clusterRoleBinding, configMap, secret, job, crd };

const describe = (r: ValidationResult): string => `${r.apiVersion}/${r.kind} ${r.name}: ${r.errors.join('; ') || '(no errors)'}`;

for (const v of VERSIONS) {
  test(`Kubernetes ${v}: the valid manifests pass`, () => {
    const s = spec(v);
    const t0 = performance.now();
    for (const [what, obj] of Object.entries(VALID)) {
      const r = s.validate(obj);
      assert.ok(r.known, `${what} is a known kind in ${v}`);
      assert.equal(r.errors, [], `${what} in ${v}: ${describe(r)}`);
    }
    const ms = performance.now() - t0;
    console.log(`  ${v}: ${Object.keys(VALID).length} objects validated in ${ms.toFixed(1)} ms`);
  });
}

test('the result names the object and its definition', () => {
  const r = latest().validate(deployment);
  assert.is(r.kind, 'Deployment');
  assert.is(r.apiVersion, 'apps/v1');
  assert.is(r.name, 'kube-correlate-collector');
  assert.is(r.definition, 'io.k8s.api.apps.v1.Deployment');
  assert.is(latest().definitionFor('v1', 'ConfigMap'), 'io.k8s.api.core.v1.ConfigMap');
  assert.is(latest().definitionFor('apps/v1', 'Widget'), undefined);
});

test('unknown field: reported with its JSON path', () => {
  const d = clone(deployment) as { spec: { template: { spec: { containers: Record<string, unknown>[] } } } };
  const c = d.spec.template.spec.containers[0] as Record<string, unknown>;
  c['imagePullPolcy'] = c['imagePullPolicy'];
  delete c['imagePullPolicy'];
  assert.equal(latest().validate(d).errors, ['spec.template.spec.containers[0].imagePullPolcy: unknown field']);

  const m = clone(configMap) as Record<string, unknown>;
  m['date'] = m['data'];
  const r = latest().validate(m);
  assert.equal(r.errors, ['date: unknown field']);
});

test('wrong types', () => {
  const d = clone(deployment) as unknown as { spec: Record<string, unknown> & { template: { spec: Record<string, unknown> } } };
  d.spec['replicas'] = '2';
  d.spec.template.spec['containers'] = { name: 'collector', image: 'x' };
  d.spec['paused'] = 'false';
  const r = latest().validate(d);
  assert.equal(r.errors, [
    'spec.replicas: expected integer (int32), got string "2"',
    'spec.template.spec.containers: expected array, got object',
    'spec.paused: expected boolean, got string "false"',
  ], 'in the order of the object\'s keys');

  const s = clone(service) as { spec: { ports: Record<string, unknown>[] } };
  (s.spec.ports[0] as Record<string, unknown>)['port'] = 4317.5;
  (s.spec.ports[1] as Record<string, unknown>)['port'] = 2 ** 31;
  assert.equal(latest().validate(s).errors, [
    'spec.ports[0].port: expected integer (int32), got number 4317.5',
    'spec.ports[1].port: 2147483648 is out of range for int32',
  ]);
});

test('required fields: container name, metadata.name, and the spec\'s own', () => {
  const d = clone(deployment) as { metadata: Record<string, unknown>; spec: { template: { spec: { containers: Record<string, unknown>[] } } } };
  delete (d.spec.template.spec.containers[0] as Record<string, unknown>)['name'];
  assert.equal(latest().validate(d).errors, ['spec.template.spec.containers[0].name: missing required field']);

  delete d.metadata['name'];
  const r = latest().validate(d);
  assert.is(r.name, '');
  assert.equal(r.errors, ['spec.template.spec.containers[0].name: missing required field', 'metadata.name: missing required field']);

  const b = clone(clusterRoleBinding) as { roleRef: Record<string, unknown> };
  b.roleRef['name'] = null;
  assert.equal(latest().validate(b).errors, ['roleRef.name: missing required field'], 'null is not set');

  const w = clone(webhook) as { webhooks: Record<string, unknown>[] };
  delete (w.webhooks[0] as Record<string, unknown>)['sideEffects'];
  assert.equal(latest().validate(w).errors, ['webhooks[0].sideEffects: missing required field']);
});

test('int-or-string: integers and strings pass, anything else fails', () => {
  const s = clone(service) as { spec: { ports: Record<string, unknown>[] } };
  (s.spec.ports[0] as Record<string, unknown>)['targetPort'] = true;
  (s.spec.ports[1] as Record<string, unknown>)['targetPort'] = 8443.5;
  assert.equal(latest().validate(s).errors, [
    'spec.ports[0].targetPort: expected integer or string (int-or-string), got boolean true',
    'spec.ports[1].targetPort: expected integer or string (int-or-string), got number 8443.5',
  ]);
  const d = clone(deployment) as { spec: { strategy: { rollingUpdate: Record<string, unknown> } } };
  d.spec.strategy.rollingUpdate['maxSurge'] = { percent: 25 };
  assert.equal(latest().validate(d).errors, ['spec.strategy.rollingUpdate.maxSurge: expected integer or string (int-or-string), got object {"percent":25}']);
});

test('formats: byte (base64), quantity, date-time', () => {
  const s = clone(secret) as { data: Record<string, unknown> };
  s.data['tls.key'] = 'not base64!';
  assert.equal(latest().validate(s).errors, ['data["tls.key"]: not valid base64 (format byte): "not base64!"']);

  const d = clone(deployment) as { spec: { template: { spec: { containers: { resources: { limits: Record<string, unknown>; requests: Record<string, unknown> } }[] } } } };
  const res = (d.spec.template.spec.containers[0] as { resources: { limits: Record<string, unknown>; requests: Record<string, unknown> } }).resources;
  res.limits['memory'] = '512MB';
  res.requests['cpu'] = true;
  res.limits['cpu'] = '1.5';
  res.requests['memory'] = '1e3';
  assert.equal(latest().validate(d).errors, [
    'spec.template.spec.containers[0].resources.requests.cpu: expected a quantity (string or number), got boolean',
    'spec.template.spec.containers[0].resources.limits.memory: "512MB" is not a quantity (a number with an optional suffix: Ki Mi Gi Ti Pi Ei, n u m k M G T P E, or e<exp>)',
  ], '"1.5" and "1e3" are quantities');

  const m = clone(configMap) as { metadata: Record<string, unknown> };
  m.metadata['creationTimestamp'] = '2025-13-01 10:00';
  m.metadata['deletionTimestamp'] = '2025-06-01T10:00:00.123Z';
  assert.equal(latest().validate(m).errors, ['metadata.creationTimestamp: not an RFC 3339 date-time: "2025-13-01 10:00"']);
});

test('all errors are reported, not just the first; status is ignored', () => {
  const d = clone(deployment) as unknown as {
    spec: Record<string, unknown> & { template: { spec: { containers: Record<string, unknown>[] } } };
    status: unknown;
  };
  d.spec['replicas'] = 'two';
  d.spec['replica'] = 2;
  const c = d.spec.template.spec.containers[0] as Record<string, unknown>;
  delete c['name'];
  c['port'] = 80;
  d.status = { anything: ['goes'] };
  const r = latest().validate(d);
  assert.equal(r.errors.slice().sort(), [
    'spec.replica: unknown field',
    'spec.replicas: expected integer (int32), got string "two"',
    'spec.template.spec.containers[0].name: missing required field',
    'spec.template.spec.containers[0].port: unknown field',
  ]);
});

test('unknown group/version/kind: known false, no errors (CRD instances)', () => {
  for (const v of VERSIONS) {
    const cert = { apiVersion: 'cert-manager.io/v1', kind: 'Certificate', metadata: { name: 'kube-correlate-webhook' }, spec: { secretName: 'x', issuerRef: { name: 'selfsigned' } } };
    const topic = { apiVersion: 'kafka.strimzi.io/v1beta2', kind: 'KafkaTopic', metadata: { name: 'audit' }, spec: { partitions: 3 } };
    for (const o of [cert, topic]) {
      const r = spec(v).validate(o);
      assert.is(r.known, false, `${o.kind} in ${v}`);
      assert.equal(r.errors, []);
      assert.is(r.name, o.metadata.name);
    }
    // A known kind under a version the document does not serve is unknown too.
    assert.is(spec(v).validate({ apiVersion: 'apps/v1beta1', kind: 'Deployment', metadata: { name: 'x' } }).known, false);
  }
  const r = latest().validate({ metadata: { name: 'x' } });
  assert.is(r.known, false);
  assert.equal(r.errors, ['apiVersion: missing required field', 'kind: missing required field']);
});

test(`kustomize ${KUSTOMIZE_VERSION}: builds a kustomization (namePrefix on a ConfigMap)`, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kc-kustomize-'));
  try {
    writeFileSync(join(dir, 'kustomization.yaml'), [
      'apiVersion: kustomize.config.k8s.io/v1beta1',
      'kind: Kustomization',
      'namePrefix: kc-',
      'namespace: kube-correlate',
      'labels:',
      '  - pairs:',
      '      app.kubernetes.io/part-of: kube-correlate',
      'resources:',
      '  - configmap.yaml',
      '',
    ].join('\n'));
    writeFileSync(join(dir, 'configmap.yaml'), [
      'apiVersion: v1',
      'kind: ConfigMap',
      'metadata:',
      '  name: settings',
      'data:',
      '  level: info',
      '  port: "4317"',
      '',
    ].join('\n'));
    const t0 = Date.now();
    const objs = await kustomizeBuild(dir);
    console.log(`  kustomize build: ${Date.now() - t0} ms (including finding or building the binary)`);
    assert.equal(objs, [{
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'kc-settings', namespace: 'kube-correlate', labels: { 'app.kubernetes.io/part-of': 'kube-correlate' } },
      data: { level: 'info', port: '4317' },
    }]);
    for (const v of VERSIONS) assert.equal(spec(v).validate(objs[0]).errors, [], `the rendered ConfigMap is valid in ${v}`);

    // A broken kustomization: the error carries kustomize's stderr.
    writeFileSync(join(dir, 'kustomization.yaml'), 'resources:\n  - missing.yaml\n');
    let err: Error | undefined;
    try { await kustomizeBuild(dir); } catch (e) { err = e as Error; }
    assert.ok(err, 'a kustomization naming a missing file fails');
    assert.match(err.message, /missing\.yaml/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
