import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parse as parseYaml } from 'yaml';
import { loadConfigFile } from '@kube-correlate/collector';
import { ROOT } from '../harness/index.js';
import { kustomizeBuild } from '../harness/kustomize.js';
import { loadOpenApi, openApiSpecPath } from '../harness/openapi.js';

/**
 * deploy/ as an operator applies it: every overlay rendered by the real kustomize, every object
 * validated against the Kubernetes OpenAPI specs 1.33-1.35 (../shared/data), and the pieces checked
 * against each other and against kube-apiserver's side (deploy/apiserver): ports, secrets, configs.
 */
const DEPLOY = join(ROOT, 'deploy');
const VERSIONS = ['1.33', '1.34', '1.35'];
/** Custom resources (not in the Kubernetes spec): cert-manager and Strimzi. */
const CRDS = new Set(['cert-manager.io/v1 Issuer', 'cert-manager.io/v1 Certificate', 'kafka.strimzi.io/v1beta2 KafkaTopic']);

interface K8sObject { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; annotations?: Record<string, string>; labels?: Record<string, string> }; [k: string]: unknown }
type Container = { name: string; args?: string[]; env?: Array<{ name: string; value?: string }>; envFrom?: Array<{ configMapRef?: { name: string } }>; ports?: Array<{ name?: string; containerPort: number }>; volumeMounts?: Array<{ name: string; mountPath: string }> };
type PodSpec = { containers: Container[]; volumes?: Array<{ name: string; secret?: { secretName: string }; configMap?: { name: string } }> };

const overlays = readdirSync(join(DEPLOY, 'overlays')).sort();
const rendered = new Map<string, K8sObject[]>();

test.before(async () => {
  for (const o of overlays) rendered.set(o, (await kustomizeBuild(join(DEPLOY, 'overlays', o))) as K8sObject[]);
});

const find = (objs: K8sObject[], kind: string, name?: string) => objs.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
const one = (objs: K8sObject[], kind: string, name: string): K8sObject => {
  const f = find(objs, kind, name);
  assert.is(f.length, 1, `one ${kind} ${name}`);
  return f[0]!;
};
const podSpec = (o: K8sObject): PodSpec => (o['spec'] as { template: { spec: PodSpec } }).template.spec;

test('the overlays are embedded, embedded-self-signed and kafka', () => {
  assert.equal(overlays, ['embedded', 'embedded-self-signed', 'kafka']);
});

test('every rendered object validates against the Kubernetes OpenAPI spec 1.33, 1.34 and 1.35 (custom resources named)', () => {
  for (const v of VERSIONS) {
    const api = loadOpenApi(openApiSpecPath(v));
    for (const [overlay, objs] of rendered) {
      assert.ok(objs.length > 5, `${overlay} renders objects`);
      for (const o of objs) {
        const r = api.validate(o);
        const what = `${overlay}: ${o.apiVersion} ${o.kind} ${o.metadata?.name} against ${v}`;
        if (!r.known) {
          assert.ok(CRDS.has(`${o.apiVersion} ${o.kind}`), `${what}: not in the spec and not a known custom resource`);
          continue;
        }
        assert.equal(r.errors, [], what);
        if (o.kind !== 'Namespace' && !o.kind.startsWith('Cluster') && o.kind !== 'MutatingWebhookConfiguration') assert.is(o.metadata.namespace, 'kube-correlate', `${what}: namespaced in kube-correlate`);
      }
    }
  }
});

test('the webhook never blocks, skips kube-system, its namespace and opted-out objects, and its Service, port and certificate line up', () => {
  for (const [overlay, objs] of rendered) {
    const mwc = one(objs, 'MutatingWebhookConfiguration', 'kube-correlate') as K8sObject & { webhooks: Array<Record<string, unknown>> };
    const w = mwc.webhooks[0] as {
      name: string; failurePolicy: string; timeoutSeconds: number; sideEffects: string; admissionReviewVersions: string[];
      clientConfig: { service: { name: string; namespace: string; path: string; port: number } };
      namespaceSelector: { matchExpressions: Array<{ key: string; operator: string; values: string[] }> };
      objectSelector: { matchExpressions: Array<{ key: string; operator: string; values: string[] }> };
    };
    assert.is(w.failurePolicy, 'Ignore', overlay);
    assert.is(w.timeoutSeconds, 2);
    assert.is(w.sideEffects, 'None');
    assert.equal(w.admissionReviewVersions, ['v1']);
    assert.ok(w.name.endsWith('.trace.kubernetes.io'), 'audit annotations arrive as <name>/objectSetID');
    const ns = w.namespaceSelector.matchExpressions.find((e) => e.key === 'kubernetes.io/metadata.name')!;
    assert.is(ns.operator, 'NotIn');
    assert.ok(ns.values.includes('kube-system') && ns.values.includes('kube-correlate'));
    for (const sel of [w.namespaceSelector, w.objectSelector]) assert.ok(sel.matchExpressions.some((e) => e.key === 'trace.kubernetes.io/opt-out' && e.operator === 'NotIn'), 'opt-out label');
    const ownNs = one(objs, 'Namespace', 'kube-correlate');
    assert.is(ownNs.metadata.labels?.['trace.kubernetes.io/opt-out'], 'true');

    const svc = one(objs, 'Service', w.clientConfig.service.name) as K8sObject & { spec: { ports: Array<{ port: number; targetPort: string }>; selector: Record<string, string> } };
    assert.is(w.clientConfig.service.namespace, svc.metadata.namespace);
    assert.is(w.clientConfig.service.path, '/mutate');
    const port = svc.spec.ports.find((p) => p.port === w.clientConfig.service.port)!;
    assert.ok(port, 'the Service has the webhook port');
    const dep = one(objs, 'Deployment', 'kube-correlate-webhook');
    const labels = (dep['spec'] as { template: { metadata: { labels: Record<string, string> } } }).template.metadata.labels;
    for (const [k, v] of Object.entries(svc.spec.selector)) assert.is(labels[k], v, 'the Service selects the webhook pods');
    const spec = podSpec(dep);
    const c = spec.containers[0]!;
    assert.ok(c.ports!.some((p) => p.name === port.targetPort), 'targetPort names a container port');
    const args = c.args!;
    assert.is(args[0], 'webhook');
    const certPath = args[args.indexOf('--cert') + 1]!;
    const keyPath = args[args.indexOf('--key') + 1]!;
    const mount = c.volumeMounts!.find((m) => certPath.startsWith(`${m.mountPath}/`))!;
    assert.ok(mount && keyPath.startsWith(`${mount.mountPath}/`), 'cert and key are on one mounted volume');
    const secretName = spec.volumes!.find((v) => v.name === mount.name)!.secret!.secretName;
    const keys = [certPath, keyPath].map((p) => p.slice(mount.mountPath.length + 1));
    const cert = find(objs, 'Certificate');
    if (cert.length) {
      // cert-manager writes tls.crt / tls.key into spec.secretName and injects the CA.
      const c0 = cert[0] as K8sObject & { spec: { secretName: string; dnsNames: string[] } };
      assert.is(c0.spec.secretName, secretName, `${overlay}: the Certificate fills the mounted Secret`);
      assert.equal(keys, ['tls.crt', 'tls.key']);
      assert.ok(c0.spec.dnsNames.includes(`${svc.metadata.name}.${svc.metadata.namespace}.svc`), 'the certificate names the Service');
      assert.is(mwc.metadata.annotations?.['cert-manager.io/inject-ca-from'], `${c0.metadata.namespace}/${c0.metadata.name}`);
    } else {
      // kube-webhook-certgen writes cert / key and patches this webhook configuration.
      const job = one(objs, 'Job', 'kube-correlate-certgen');
      const jobArgs = [...(podSpec(job) as PodSpec & { initContainers: Container[] }).initContainers, ...podSpec(job).containers].flatMap((x) => x.args ?? []);
      assert.ok(jobArgs.includes(`--secret-name=${secretName}`), `${overlay}: certgen fills the mounted Secret`);
      assert.ok(jobArgs.includes(`--webhook-name=${mwc.metadata.name}`));
      assert.ok(jobArgs.some((a) => a.startsWith('--host=') && a.includes(`${svc.metadata.name}.${svc.metadata.namespace}.svc`)));
      assert.equal(keys, ['cert', 'key']);
    }
  }
});

type WebhookRule = { apiGroups: string[]; apiVersions: string[]; operations: string[]; resources: string[]; scope?: string };
/** Rules as a sorted list of `group/version/resource operations scope` lines, for comparison. */
const ruleLines = (rules: WebhookRule[]): string[] =>
  rules.flatMap((r) => r.apiGroups.flatMap((g) => r.apiVersions.flatMap((v) => r.resources.map((res) => `${g || 'core'}/${v}/${res} ${[...r.operations].sort().join(',')} ${r.scope ?? '*'}`)))).sort();

test('the webhook is registered only for resources that can be roots of object sets, CREATE and UPDATE, as packages/webhook/README.md shows', () => {
  const want = [
    'apps/v1/daemonsets CREATE,UPDATE Namespaced', 'apps/v1/deployments CREATE,UPDATE Namespaced', 'apps/v1/statefulsets CREATE,UPDATE Namespaced',
    'batch/v1/cronjobs CREATE,UPDATE Namespaced', 'batch/v1/jobs CREATE,UPDATE Namespaced', 'core/v1/services CREATE,UPDATE Namespaced',
  ];
  for (const [overlay, objs] of rendered) {
    const mwc = one(objs, 'MutatingWebhookConfiguration', 'kube-correlate') as K8sObject & { webhooks: Array<{ rules: WebhookRule[] }> };
    assert.is(mwc.webhooks.length, 1, overlay);
    const rules = mwc.webhooks[0]!.rules;
    assert.equal(ruleLines(rules), want, overlay);
    // Never every resource, a subresource, or what is almost always controller-owned or high-rate.
    for (const r of rules) {
      for (const res of r.resources) {
        assert.ok(!res.includes('*') && !res.includes('/'), `${overlay}: ${res}`);
        assert.not.ok(['pods', 'replicasets', 'leases', 'events', 'controllerrevisions', 'endpointslices'].includes(res), `${overlay}: ${res}`);
      }
      assert.ok(!r.apiGroups.includes('*') && !r.apiVersions.includes('*'), overlay);
    }
  }
  // The registration example in the webhook's README ships the same rules.
  const readme = readFileSync(join(ROOT, 'packages', 'webhook', 'README.md'), 'utf8');
  const block = [...readme.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]!).find((b) => b.includes('kind: MutatingWebhookConfiguration'));
  assert.ok(block, 'the README has a MutatingWebhookConfiguration example');
  const example = parseYaml(block.replace(/<base64 CA>/g, 'Q0E=')) as { webhooks: Array<{ rules: WebhookRule[]; failurePolicy: string; timeoutSeconds: number; sideEffects: string }> };
  assert.equal(ruleLines(example.webhooks[0]!.rules), want, 'README example');
  assert.is(example.webhooks[0]!.failurePolicy, 'Ignore');
  assert.is(example.webhooks[0]!.timeoutSeconds, 2);
  assert.is(example.webhooks[0]!.sideEffects, 'None');
});

test('components/webhook-client-auth: the webhook requires a client certificate from the CA ConfigMap; kube-apiserver\'s admission kubeconfig names the webhook Service', async () => {
  // An overlay of our own: embedded plus the component (kustomize wants relative paths).
  const dir = mkdtempSync(join(tmpdir(), 'kc-kustomize-'));
  let objs: K8sObject[];
  try {
    writeFileSync(join(dir, 'kustomization.yaml'), [
      'apiVersion: kustomize.config.k8s.io/v1beta1', 'kind: Kustomization',
      `resources: [${relative(dir, join(DEPLOY, 'overlays', 'embedded'))}]`,
      `components: [${relative(dir, join(DEPLOY, 'components', 'webhook-client-auth'))}]`, '',
    ].join('\n'));
    objs = (await kustomizeBuild(dir)) as K8sObject[];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  for (const v of VERSIONS) {
    const api = loadOpenApi(openApiSpecPath(v));
    for (const o of objs) {
      const r = api.validate(o);
      if (r.known) assert.equal(r.errors, [], `${o.kind} ${o.metadata.name} against ${v}`);
    }
  }
  const spec = podSpec(one(objs, 'Deployment', 'kube-correlate-webhook'));
  const c = spec.containers[0]!;
  const args = c.args!;
  assert.is(args[0], 'webhook');
  const caPath = args[args.indexOf('--client-ca') + 1]!;
  assert.ok(args.includes('--client-ca') && caPath.startsWith('/'), args.join(' '));
  const mount = c.volumeMounts!.find((m) => caPath.startsWith(`${m.mountPath}/`))!;
  assert.ok(mount, 'the client CA file is on a mounted volume');
  const volume = spec.volumes!.find((x) => x.name === mount.name)!;
  assert.is(volume.configMap?.name, 'kube-correlate-webhook-client-ca');
  assert.is(caPath.slice(mount.mountPath.length + 1), 'ca.crt');
  // The serving certificate is still mounted as before.
  assert.ok(args.includes('--cert') && args.includes('--key'));

  // kube-apiserver's side: the admission config points at the kubeconfig, whose user is the Service's DNS name.
  const yamlOf = (f: string) => parseYaml(readFileSync(join(DEPLOY, 'apiserver', f), 'utf8')) as Record<string, unknown>;
  const admission = yamlOf('admission-config.yaml') as { apiVersion: string; kind: string; plugins: Array<{ name: string; configuration: { apiVersion: string; kind: string; kubeConfigFile: string } }> };
  assert.is(admission.apiVersion, 'apiserver.config.k8s.io/v1');
  assert.is(admission.kind, 'AdmissionConfiguration');
  const plugin = admission.plugins.find((p) => p.name === 'MutatingAdmissionWebhook')!;
  assert.equal([plugin.configuration.apiVersion, plugin.configuration.kind], ['apiserver.config.k8s.io/v1', 'WebhookAdmissionConfiguration']);
  assert.is(plugin.configuration.kubeConfigFile, '/etc/kubernetes/kube-correlate/admission-webhook-kubeconfig.yaml', 'where deploy/README.md copies apiserver/');
  const kc = yamlOf('admission-webhook-kubeconfig.yaml') as { kind: string; users: Array<{ name: string; user: Record<string, string> }> };
  assert.is(kc.kind, 'Config');
  const mwc = one(objs, 'MutatingWebhookConfiguration', 'kube-correlate') as K8sObject & { webhooks: Array<{ clientConfig: { service: { name: string; namespace: string; port: number } } }> };
  const svc = mwc.webhooks[0]!.clientConfig.service;
  assert.is(svc.port, 443, 'on 443 the user name carries no :port');
  assert.equal(kc.users.map((u) => u.name), [`${svc.name}.${svc.namespace}.svc`], 'one user, named after the webhook Service (never \'*\')');
  assert.ok(kc.users[0]!.user['client-certificate'] && kc.users[0]!.user['client-key']);
});

/** `${env:X}` values a container would see: its env, and the ConfigMaps of its envFrom. */
function containerEnv(objs: K8sObject[], c: Container): Record<string, string> {
  const env: Record<string, string> = {};
  for (const f of c.envFrom ?? []) Object.assign(env, (one(objs, 'ConfigMap', f.configMapRef!.name) as K8sObject & { data: Record<string, string> }).data);
  for (const e of c.env ?? []) if (e.value !== undefined) env[e.name] = e.value;
  return env;
}

test('every kube-correlate container runs a shipped config that loads with the environment the manifest gives it', () => {
  let checked = 0;
  for (const [overlay, objs] of rendered) {
    for (const o of objs.filter((x) => ['Deployment', 'DaemonSet', 'StatefulSet'].includes(x.kind))) {
      for (const c of podSpec(o).containers) {
        const i = c.args?.indexOf('--config') ?? -1;
        if (i < 0 || !c.args![0] || c.args![0] === 'webhook' || o.metadata.name === 'kube-correlate-jaeger') continue;
        const config = loadConfigFile(join(ROOT, c.args![i + 1]!), containerEnv(objs, c));
        assert.ok(['start', 'collector', 'correlator', 'store'].includes(c.args![0]), `${overlay}/${o.metadata.name}: a correlate command`);
        const otlp = config.exporters.find((e) => e.type === 'otlp');
        if (otlp && otlp.type === 'otlp') {
          // Jaeger's OTLP/gRPC port, through its Service.
          const [host, port] = otlp.config.endpoint.split(':') as [string, string];
          const [svcName, svcNs] = host.split('.') as [string, string];
          const svc = one(objs, 'Service', svcName) as K8sObject & { spec: { ports: Array<{ port: number }> } };
          assert.is(svc.metadata.namespace, svcNs);
          assert.ok(svc.spec.ports.some((p) => p.port === Number(port)), `${overlay}: Jaeger's Service has port ${port}`);
        }
        checked++;
      }
    }
  }
  assert.ok(checked >= 5, `${checked} containers checked`);
});

test('kube-apiserver side: tracing configs v1alpha1/v1beta1/v1 and the audit webhook point at the collector DaemonSet\'s listeners', () => {
  const yamlOf = (f: string) => parseYaml(readFileSync(join(DEPLOY, 'apiserver', f), 'utf8')) as Record<string, unknown>;
  for (const [overlay, objs] of rendered) {
    const ds = one(objs, 'DaemonSet', 'kube-correlate-collector');
    const spec = podSpec(ds) as PodSpec & { hostNetwork: boolean; dnsPolicy: string };
    assert.is(spec.hostNetwork, true, `${overlay}: on the host network, beside kube-apiserver`);
    assert.is(spec.dnsPolicy, 'ClusterFirstWithHostNet', 'resolves cluster Services from the host network');
    const env = containerEnv(objs, spec.containers[0]!);
    for (const v of ['v1alpha1', 'v1beta1', 'v1']) {
      const t = yamlOf(`tracing-config-${v}.yaml`);
      assert.is(t['apiVersion'], `apiserver.config.k8s.io/${v}`);
      assert.is(t['kind'], 'TracingConfiguration');
      assert.equal(Object.keys(t).sort(), ['apiVersion', 'endpoint', 'kind', 'samplingRatePerMillion']);
      assert.is(t['endpoint'], env['KC_OTLP_GRPC_ENDPOINT'], `${overlay}: the tracing endpoint is the collector's OTLP/gRPC listener`);
      assert.ok(Number(t['samplingRatePerMillion']) > 0 && Number(t['samplingRatePerMillion']) <= 1_000_000);
    }
    const kc = yamlOf('audit-webhook-kubeconfig.yaml') as { kind: string; clusters: Array<{ cluster: { server: string } }>; 'current-context': string; contexts: Array<{ name: string }> };
    assert.is(kc.kind, 'Config');
    assert.ok(kc.contexts.some((c) => c.name === kc['current-context']));
    assert.is(new URL(kc.clusters[0]!.cluster.server).host, env['KC_AUDIT_WEBHOOK_ENDPOINT'], `${overlay}: the audit webhook is the collector's k8saudit listener`);
  }
});

type Rule = { level: string; resources?: Array<{ group?: string; resources?: string[] }>; nonResourceURLs?: string[]; verbs?: string[] };

/** kube-apiserver's policy evaluation, for the cases below: the first rule that matches wins. */
function auditLevel(policy: { rules: Rule[] }, req: { group?: string; resource?: string; path?: string; verb: string }): string {
  for (const r of policy.rules) {
    if (r.verbs && !r.verbs.includes(req.verb)) continue;
    if (req.resource !== undefined) {
      if (r.nonResourceURLs) continue;
      if (r.resources && !r.resources.some((g) => (g.group ?? '') === (req.group ?? '') && (!g.resources || g.resources.includes(req.resource!)))) continue;
    } else {
      if (r.resources) continue;
      if (r.nonResourceURLs && !r.nonResourceURLs.some((u) => (u.endsWith('*') ? req.path!.startsWith(u.slice(0, -1)) : u === req.path))) continue;
    }
    return r.level;
  }
  return 'None';
}

test('the audit policy: Metadata for Secrets, ConfigMaps and TokenReviews, RequestResponse for workloads', () => {
  const policy = parseYaml(readFileSync(join(DEPLOY, 'apiserver', 'audit-policy.yaml'), 'utf8')) as { apiVersion: string; kind: string; rules: Rule[] };
  assert.is(policy.apiVersion, 'audit.k8s.io/v1');
  assert.is(policy.kind, 'Policy');
  const cases: Array<[Parameters<typeof auditLevel>[1], string]> = [
    [{ resource: 'secrets', verb: 'get' }, 'Metadata'],
    [{ resource: 'configmaps', verb: 'update' }, 'Metadata'],
    [{ group: 'authentication.k8s.io', resource: 'tokenreviews', verb: 'create' }, 'Metadata'],
    [{ group: 'apps', resource: 'deployments', verb: 'create' }, 'RequestResponse'],
    [{ group: 'apps', resource: 'replicasets', verb: 'update' }, 'RequestResponse'],
    [{ resource: 'pods', verb: 'create' }, 'RequestResponse'],
    [{ group: 'batch', resource: 'jobs', verb: 'patch' }, 'RequestResponse'],
    [{ group: 'coordination.k8s.io', resource: 'leases', verb: 'update' }, 'None'],
    [{ path: '/healthz', verb: 'get' }, 'None'],
    [{ path: '/readyz/etcd', verb: 'get' }, 'None'],
    [{ resource: 'namespaces', verb: 'get' }, 'Metadata'],
    [{ group: 'rbac.authorization.k8s.io', resource: 'roles', verb: 'create' }, 'Metadata'],
  ];
  for (const [req, want] of cases) assert.is(auditLevel(policy, req), want, JSON.stringify(req));
});

test('Jaeger runs the shipped config with the UI link patterns mounted where the config looks for them', () => {
  for (const [overlay, objs] of rendered) {
    const dep = one(objs, 'Deployment', 'kube-correlate-jaeger');
    const spec = podSpec(dep);
    const c = spec.containers[0]!;
    const dir = c.args![c.args!.indexOf('--config') + 1]!.replace(/\/config\.yaml$/, '');
    const mount = c.volumeMounts!.find((m) => m.mountPath === dir)!;
    const cmName = spec.volumes!.find((v) => v.name === mount.name)!.configMap!.name;
    const cm = one(objs, 'ConfigMap', cmName) as K8sObject & { data: Record<string, string> };
    assert.equal(Object.keys(cm.data).sort(), ['config.yaml', 'ui-config.json'], overlay);
    const uiPath = /config_file: \$\{env:JAEGER_UI_CONFIG:-([^}]+)\}/.exec(cm.data['config.yaml']!)![1];
    assert.is(uiPath, `${dir}/ui-config.json`);
    assert.equal(JSON.parse(cm.data['ui-config.json']!), JSON.parse(readFileSync(join(DEPLOY, 'components/jaeger/ui-config.json'), 'utf8')));
  }
});

test.run();
