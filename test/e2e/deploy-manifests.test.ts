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
type Probe = { httpGet?: { host?: string; path: string; port: number | string; scheme?: string } };
type Container = { name: string; args?: string[]; env?: Array<{ name: string; value?: string }>; envFrom?: Array<{ configMapRef?: { name: string } }>; ports?: Array<{ name?: string; containerPort: number }>; volumeMounts?: Array<{ name: string; mountPath: string }>; readinessProbe?: Probe; livenessProbe?: Probe };
type PodSpec = { containers: Container[]; volumes?: Array<{ name: string; secret?: { secretName: string }; configMap?: { name: string } }>; hostNetwork?: boolean };

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
    const cert = find(objs, 'Certificate', 'kube-correlate-webhook');
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

// ---------------------------------------------------------------------------------------------
// Transport security (issue 14): what listens where, NetworkPolicies, TLS files, kube-apiserver's TLS variants

type PolicyPort = { protocol?: string; port: number; endPort?: number };
type PolicyRule = { from?: Array<Record<string, unknown>>; to?: Array<Record<string, unknown>>; ports?: PolicyPort[] };
type NetworkPolicy = K8sObject & { spec: { podSelector: { matchLabels?: Record<string, string> }; policyTypes: string[]; ingress?: PolicyRule[]; egress?: PolicyRule[] } };

const WORKLOADS = ['Deployment', 'DaemonSet', 'StatefulSet', 'Job'];
/** The labels a workload's pods carry (a Job's pods also get batch.kubernetes.io/job-name). */
function podLabels(o: K8sObject): Record<string, string> {
  const labels = (o['spec'] as { template: { metadata?: { labels?: Record<string, string> } } }).template.metadata?.labels ?? {};
  return o.kind === 'Job' ? { ...labels, 'batch.kubernetes.io/job-name': o.metadata.name } : labels;
}
const policies = (objs: K8sObject[]) => find(objs, 'NetworkPolicy') as NetworkPolicy[];
const selects = (np: NetworkPolicy, labels: Record<string, string>) => Object.entries(np.spec.podSelector.matchLabels ?? {}).every(([k, v]) => labels[k] === v);
const portIn = (p: PolicyPort, port: number) => (p.endPort ? port >= p.port && port <= p.endPort : p.port === port);
/** Is `port` open to some pod-to-pod ingress for pods with `labels`? */
function ingressOpen(objs: K8sObject[], labels: Record<string, string>, port: number): boolean {
  return policies(objs).some((np) => selects(np, labels) && np.spec.policyTypes.includes('Ingress') && (np.spec.ingress ?? []).some((r) => !r.ports || r.ports.some((p) => portIn(p, port))));
}
const LOOPBACK = /^(127\.\d+\.\d+\.\d+|\[::1\]|localhost):\d+$/;

interface Listener { what: string; endpoint: string; tls: boolean }
/** Every listener a loaded config opens, with whether it serves TLS. */
function listenersOf(config: ReturnType<typeof loadConfigFile>): Listener[] {
  const out: Listener[] = [];
  for (const r of config.receivers) {
    if (r.type === 'otlp') {
      for (const [proto, l] of Object.entries(r.config.protocols)) if (l) out.push({ what: `receivers.${r.name}.protocols.${proto}`, endpoint: l.endpoint, tls: !!l.tls });
    } else if (r.type === 'k8saudit') {
      out.push({ what: `receivers.${r.name}`, endpoint: r.config.endpoint, tls: !!r.config.tls });
    }
  }
  for (const e of config.extensions) if (e.type === 'store') out.push({ what: `extensions.${e.name}`, endpoint: e.config.endpoint, tls: !!e.config.tls });
  if (config.metricsAddress) out.push({ what: 'service.telemetry.metrics', endpoint: config.metricsAddress, tls: false });
  return out;
}

/** Every files a loaded config reads at start: TLS pairs, client CAs, token files. */
function filesOf(config: ReturnType<typeof loadConfigFile>): string[] {
  const tls = (t: { cert_file: string; key_file: string; client_ca_file?: string | undefined } | undefined) => (t ? [t.cert_file, t.key_file, ...(t.client_ca_file ? [t.client_ca_file] : [])] : []);
  const out: string[] = [];
  for (const r of config.receivers) {
    if (r.type === 'otlp') for (const l of Object.values(r.config.protocols)) out.push(...tls(l?.tls));
    else if (r.type === 'k8saudit') out.push(...tls(r.config.tls));
  }
  for (const e of config.extensions) {
    if (e.type === 'store') out.push(...tls(e.config.tls));
    if (e.type === 'bearertokenauth' && e.config.filename) out.push(e.config.filename);
  }
  return [...new Set(out)];
}

/** Renders an overlay of our own: embedded plus `components` (kustomize wants relative paths). */
async function renderWith(components: string[]): Promise<K8sObject[]> {
  const dir = mkdtempSync(join(tmpdir(), 'kc-kustomize-'));
  try {
    writeFileSync(join(dir, 'kustomization.yaml'), [
      'apiVersion: kustomize.config.k8s.io/v1beta1', 'kind: Kustomization',
      `resources: [${relative(dir, join(DEPLOY, 'overlays', 'embedded'))}]`,
      `components: [${components.map((c) => relative(dir, join(DEPLOY, 'components', c))).join(', ')}]`, '',
    ].join('\n'));
    return (await kustomizeBuild(dir)) as K8sObject[];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The checks of one rendered set: every kube-correlate container's listeners are on loopback, or
 * serve TLS behind a NetworkPolicy rule for their port (host-network pods: loopback only, policies
 * do not isolate them); every file its config reads is on a mounted Secret, which a cert-manager
 * Certificate fills (TLS files) or deploy/README.md says how to create (tokens).
 */
function checkListenersAndFiles(label: string, objs: K8sObject[]): number {
  const readme = readFileSync(join(DEPLOY, 'README.md'), 'utf8');
  let listeners = 0;
  for (const o of objs.filter((x) => WORKLOADS.includes(x.kind) && x.metadata.name.startsWith('kube-correlate-') && x.metadata.name !== 'kube-correlate-jaeger')) {
    const spec = podSpec(o);
    for (const c of spec.containers) {
      const i = c.args?.indexOf('--config') ?? -1;
      if (i < 0) continue;
      const config = loadConfigFile(join(ROOT, c.args![i + 1]!), containerEnv(objs, c));
      for (const l of listenersOf(config)) {
        listeners++;
        const where = `${label}: ${o.metadata.name} ${l.what} on ${l.endpoint}`;
        if (LOOPBACK.test(l.endpoint)) continue;
        assert.not.ok(spec.hostNetwork, `${where}: a host-network pod listens on loopback only (NetworkPolicy does not isolate it)`);
        const port = Number(l.endpoint.slice(l.endpoint.lastIndexOf(':') + 1));
        assert.ok(c.ports?.some((p) => p.containerPort === port), `${where}: a declared container port`);
        assert.ok(ingressOpen(objs, podLabels(o), port), `${where}: a NetworkPolicy lets it be reached`);
        if (l.what !== 'service.telemetry.metrics') assert.ok(l.tls, `${where}: not on loopback, so TLS`);
      }
      for (const f of filesOf(config)) {
        const mount = c.volumeMounts?.find((m) => f.startsWith(`${m.mountPath}/`));
        assert.ok(mount, `${label}: ${o.metadata.name} reads ${f}: on a mounted volume`);
        const secret = spec.volumes!.find((v) => v.name === mount.name)?.secret?.secretName;
        assert.ok(secret, `${label}: ${f} comes from a Secret`);
        const key = f.slice(mount.mountPath.length + 1);
        const certs = find(objs, 'Certificate').filter((x) => (x['spec'] as { secretName: string }).secretName === secret);
        if (['tls.crt', 'tls.key', 'ca.crt'].includes(key)) assert.is(certs.length, 1, `${label}: a cert-manager Certificate fills ${secret} (${key})`);
        else assert.ok(readme.includes(`create secret generic ${secret}`), `${label}: deploy/README.md says how to create the Secret ${secret} (${key})`);
      }
      // Probes of a TLS query API speak HTTPS.
      const store = listenersOf(config).find((l) => l.what.startsWith('extensions.'));
      for (const probe of [c.readinessProbe, c.livenessProbe]) {
        if (probe?.httpGet && store) assert.is(probe.httpGet.scheme ?? 'HTTP', store.tls ? 'HTTPS' : 'HTTP', `${label}: ${o.metadata.name} probe scheme`);
      }
    }
  }
  return listeners;
}

test('every listener of every overlay: on loopback, or TLS behind a NetworkPolicy rule; every TLS file and token on a mounted Secret someone fills', () => {
  let n = 0;
  for (const [overlay, objs] of rendered) n += checkListenersAndFiles(overlay, objs);
  assert.ok(n >= 10, `${n} listeners checked`);
  // Kafka mode's query API is the one reached from other pods: TLS and the token.
  const exporter = one(rendered.get('kafka')!, 'StatefulSet', 'kube-correlate-exporter');
  const c = podSpec(exporter).containers[0]!;
  const config = loadConfigFile(join(ROOT, c.args![c.args!.indexOf('--config') + 1]!), containerEnv(rendered.get('kafka')!, c));
  const store = config.extensions.find((e) => e.type === 'store')!;
  assert.ok(store.type === 'store' && store.config.tls && store.config.auth, 'the exporter\'s query API has tls and auth');
  const cert = one(rendered.get('kafka')!, 'Certificate', 'kube-correlate-exporter') as K8sObject & { spec: { dnsNames: string[]; ipAddresses: string[] } };
  assert.ok(cert.spec.dnsNames.includes('kube-correlate-exporter.kube-correlate.svc') && cert.spec.ipAddresses.includes('127.0.0.1'), 'names the Service and 127.0.0.1 (kubectl port-forward)');
});

test('NetworkPolicies: default deny and DNS everywhere; each workload a policy of its own; every opened port is a container port; Jaeger\'s query ports closed to pods', () => {
  for (const [overlay, objs] of rendered) {
    const nps = policies(objs);
    const deny = one(objs, 'NetworkPolicy', 'kube-correlate-default-deny') as NetworkPolicy;
    assert.equal(deny.spec.podSelector, {});
    assert.equal([...deny.spec.policyTypes].sort(), ['Egress', 'Ingress']);
    assert.is(deny.spec.ingress, undefined);
    assert.is(deny.spec.egress, undefined);
    const dns = one(objs, 'NetworkPolicy', 'kube-correlate-dns') as NetworkPolicy;
    assert.ok(dns.spec.egress!.every((r) => r.ports!.every((p) => p.port === 53)), `${overlay}: the DNS policy opens port 53 only`);
    for (const o of objs.filter((x) => WORKLOADS.includes(x.kind))) {
      const labels = podLabels(o);
      const own = nps.filter((np) => Object.keys(np.spec.podSelector.matchLabels ?? {}).length > 0 && selects(np, labels));
      assert.ok(own.length > 0, `${overlay}: ${o.kind} ${o.metadata.name} has a NetworkPolicy of its own`);
      for (const np of own) {
        for (const r of np.spec.ingress ?? []) {
          for (const p of r.ports ?? []) assert.ok(podSpec(o).containers.some((c) => c.ports?.some((cp) => portIn(p, cp.containerPort))), `${overlay}: ${np.metadata.name} opens ${p.port} on ${o.metadata.name}, a container port`);
        }
      }
    }
    const jaeger = podLabels(one(objs, 'Deployment', 'kube-correlate-jaeger'));
    for (const port of [16686, 16685, 4318]) assert.not.ok(ingressOpen(objs, jaeger, port), `${overlay}: Jaeger ${port} is reached with kubectl port-forward only`);
    assert.ok(ingressOpen(objs, jaeger, 4317), `${overlay}: Jaeger takes OTLP/gRPC`);
    // The webhook answers kube-apiserver (not a pod) on its container port, and calls nothing.
    const webhook = nps.find((np) => np.metadata.name === 'kube-correlate-webhook')!;
    assert.equal(webhook.spec.egress, []);
    assert.ok(ingressOpen(objs, podLabels(one(objs, 'Deployment', 'kube-correlate-webhook')), 8443));
  }
  // The certgen Job (embedded-self-signed) may call kube-apiserver.
  const certgen = policies(rendered.get('embedded-self-signed')!).find((np) => np.metadata.name === 'kube-correlate-certgen')!;
  assert.ok(selects(certgen, podLabels(one(rendered.get('embedded-self-signed')!, 'Job', 'kube-correlate-certgen'))));
  assert.ok(certgen.spec.egress!.some((r) => r.ports!.some((p) => p.port === 443)));
});

test('components/collector-tls with deploy/apiserver\'s TLS variants: the collector serves TLS on loopback with the token and a client CA; kube-apiserver\'s kubeconfig and tracing config point at it', async () => {
  const objs = await renderWith(['collector-tls']);
  for (const v of VERSIONS) {
    const api = loadOpenApi(openApiSpecPath(v));
    for (const o of objs) {
      const r = api.validate(o);
      if (r.known) assert.equal(r.errors, [], `${o.kind} ${o.metadata.name} against ${v}`);
      else assert.ok(CRDS.has(`${o.apiVersion} ${o.kind}`), `${o.apiVersion} ${o.kind}`);
    }
  }
  assert.ok(checkListenersAndFiles('embedded + collector-tls', objs) >= 4);
  const ds = one(objs, 'DaemonSet', 'kube-correlate-collector');
  const c = podSpec(ds).containers[0]!;
  assert.equal(c.args, ['start', '--config', 'collector-config/embedded-jaeger-tls.yaml']);
  const env = containerEnv(objs, c);
  const config = loadConfigFile(join(ROOT, c.args![2]!), env);
  for (const l of listenersOf(config)) {
    assert.ok(l.tls, `${l.what} serves TLS`);
    assert.match(l.endpoint, LOOPBACK, `${l.what} stays on loopback`);
  }
  const otlp = config.receivers.find((r) => r.type === 'otlp')!;
  const audit = config.receivers.find((r) => r.type === 'k8saudit')!;
  assert.ok(otlp.type === 'otlp' && audit.type === 'k8saudit');
  assert.ok(otlp.config.protocols.grpc!.tls!.client_ca_file && audit.config.tls!.client_ca_file, 'the receivers kube-apiserver calls require its client certificate');
  assert.ok(audit.config.auth && otlp.config.protocols.http!.auth, 'and the token where kube-apiserver can send one (the audit webhook)');
  // The certificates: the serving one names 127.0.0.1 (kube-apiserver dials it); the client CA the
  // collector trusts is the CA that issues kube-apiserver's client certificate.
  type Cert = K8sObject & { spec: { secretName: string; ipAddresses?: string[]; usages?: string[]; isCA?: boolean; issuerRef: { name: string; kind: string } } };
  const serving = one(objs, 'Certificate', 'kube-correlate-collector') as Cert;
  const client = one(objs, 'Certificate', 'kube-correlate-apiserver-client') as Cert;
  const ca = one(objs, 'Certificate', 'kube-correlate-collector-ca') as Cert;
  const caIssuer = one(objs, 'Issuer', serving.spec.issuerRef.name) as K8sObject & { spec: { ca: { secretName: string } } };
  assert.ok(serving.spec.ipAddresses?.includes('127.0.0.1'));
  assert.ok(ca.spec.isCA);
  assert.is(caIssuer.spec.ca.secretName, ca.spec.secretName);
  assert.is(client.spec.issuerRef.name, serving.spec.issuerRef.name);
  assert.ok(client.spec.usages?.includes('client auth') && serving.spec.usages?.includes('server auth'));
  assert.is(env['KC_TLS_CLIENT_CA_FILE'], '/etc/kube-correlate/tls/ca.crt', 'the ca.crt cert-manager writes beside the serving pair');

  // kube-apiserver's side, as deploy/README.md copies it to /etc/kubernetes/kube-correlate/.
  const kc = parseYaml(readFileSync(join(DEPLOY, 'apiserver', 'audit-webhook-kubeconfig-tls.yaml'), 'utf8')) as {
    kind: string; 'current-context': string; contexts: Array<{ name: string; context: { cluster: string; user: string } }>;
    clusters: Array<{ name: string; cluster: Record<string, string> }>; users: Array<{ name: string; user: Record<string, string> }>;
  };
  assert.is(kc.kind, 'Config');
  const ctx = kc.contexts.find((x) => x.name === kc['current-context'])!;
  const cluster = kc.clusters.find((x) => x.name === ctx.context.cluster)!.cluster;
  const user = kc.users.find((x) => x.name === ctx.context.user)!.user;
  const server = new URL(cluster['server']!);
  assert.is(server.protocol, 'https:');
  assert.is(server.host, env['KC_AUDIT_WEBHOOK_ENDPOINT'], 'the audit webhook is the collector\'s k8saudit listener');
  assert.equal(Object.keys(user).sort(), ['client-certificate', 'client-key', 'tokenFile']);
  for (const f of [cluster['certificate-authority']!, ...Object.values(user)]) assert.match(f, /^\/etc\/kubernetes\/kube-correlate\/collector-[a-z.-]+$/);
  const tracingText = readFileSync(join(DEPLOY, 'apiserver', 'tracing-config-v1-tls.yaml'), 'utf8');
  const t = parseYaml(tracingText) as Record<string, unknown>;
  assert.equal(Object.keys(t).sort(), ['apiVersion', 'endpoint', 'kind', 'samplingRatePerMillion'], 'TracingConfiguration has no TLS keys: the environment variables carry TLS');
  assert.is(t['apiVersion'], 'apiserver.config.k8s.io/v1');
  assert.is(t['endpoint'], env['KC_OTLP_GRPC_ENDPOINT']);
  for (const v of ['OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE', 'OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE', 'OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY']) assert.match(tracingText, `- name: ${v}`);
  const readme = readFileSync(join(DEPLOY, 'README.md'), 'utf8');
  for (const f of ['audit-webhook-kubeconfig-tls.yaml', 'tracing-config-v1-tls.yaml', 'components/collector-tls']) assert.ok(readme.includes(f), `deploy/README.md documents ${f}`);
});

test.run();
