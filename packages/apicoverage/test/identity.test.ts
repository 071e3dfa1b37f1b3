import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { AuditUser } from '@kube-correlate/audit';
import { identify, isE2e, parseServiceAccount, parseUserAgent, type Identity } from '../src/index.js';

function id(userAgent: string | undefined, username?: string, impersonated?: AuditUser): Identity {
  return identify({ ...(userAgent === undefined ? {} : { userAgent }), user: username === undefined ? {} : { username }, ...(impersonated ? { impersonatedUser: impersonated } : {}) });
}

test('KEP-16 user agent: program, version, os/arch, project/commit', () => {
  const p = parseUserAgent('kubectl/v1.34.1 (linux/amd64) kubernetes/abc1234');
  assert.equal(
    { program: p.program, version: p.version, os: p.os, arch: p.arch, commit: p.commit, component: p.component, test: p.test, kep16: p.kep16, browser: p.browser },
    { program: 'kubectl', version: 'v1.34.1', os: 'linux', arch: 'amd64', commit: 'kubernetes/abc1234', component: '', test: '', kep16: true, browser: false },
  );
  const mac = parseUserAgent('kubectl/v1.31.0 (darwin/arm64) kubernetes/7c48c2b');
  assert.is(mac.os, 'darwin');
  assert.is(mac.arch, 'arm64');
  const win = parseUserAgent('kubectl.exe/v1.30.2 (windows/amd64) kubernetes/3968350');
  assert.is(win.program, 'kubectl');
  assert.is(win.os, 'windows');
});

test('kubectl: key kubectl whoever the user is (admin, impersonation, a service account in a pod)', () => {
  const admin = id('kubectl/v1.34.1 (linux/amd64) kubernetes/abc1234', 'kubernetes-admin');
  assert.is(admin.key, 'kubectl');
  assert.is(admin.program, 'kubectl');
  assert.is(admin.user, 'kubernetes-admin');
  assert.is(admin.serviceAccount, '');
  assert.is(admin.test, '');
  assert.is(admin.conformance, false);
  assert.is(id('kubectl/v1.34.1 (linux/amd64) kubernetes/abc1234', 'kubernetes-admin', { username: 'jane' }).key, 'kubectl');
  const inPod = id('kubectl/v1.33.0 (linux/arm64) kubernetes/60a317e', 'system:serviceaccount:ci:deployer');
  assert.is(inPod.key, 'kubectl');
  assert.is(inPod.serviceAccount, 'ci/deployer');
});

test('kube-controller-manager: controller from the UA suffix (name or service account) or from the service account user', () => {
  const sa = id(
    'kube-controller-manager/v1.34.1 (linux/amd64) kubernetes/abc/system:serviceaccount:kube-system:deployment-controller',
    'system:serviceaccount:kube-system:deployment-controller',
  );
  assert.is(sa.key, 'kube-controller-manager/deployment-controller');
  assert.is(sa.component, 'deployment-controller');
  assert.is(sa.commit, 'kubernetes/abc');
  assert.is(sa.version, 'v1.34.1');
  assert.is(sa.serviceAccount, 'kube-system/deployment-controller');

  const named = id('kube-controller-manager/v1.34.1 (linux/amd64) kubernetes/abc/replicaset-controller', 'system:kube-controller-manager');
  assert.is(named.key, 'kube-controller-manager/replicaset-controller');
  assert.is(named.serviceAccount, '');

  const le = id('kube-controller-manager/v1.34.1 (linux/amd64) kubernetes/abc/leader-election', 'system:kube-controller-manager');
  assert.is(le.key, 'kube-controller-manager/leader-election');

  const informers = id('kube-controller-manager/v1.35.0 (linux/amd64) kubernetes/66452049/shared-informers', 'system:kube-controller-manager');
  assert.is(informers.key, 'kube-controller-manager/shared-informers');

  // No suffix, but the service account names the controller.
  const bySa = id('kube-controller-manager/v1.34.1 (linux/amd64) kubernetes/abc', 'system:serviceaccount:kube-system:namespace-controller');
  assert.is(bySa.key, 'kube-controller-manager/namespace-controller');
  assert.is(bySa.component, 'namespace-controller');

  // Neither: the program alone.
  assert.is(id('kube-controller-manager/v1.34.1 (linux/amd64) kubernetes/abc', 'system:kube-controller-manager').key, 'kube-controller-manager');

  const ccm = id('cloud-controller-manager/v1.34.0 (linux/amd64) kubernetes/abc/system:serviceaccount:kube-system:node-controller', 'system:serviceaccount:kube-system:node-controller');
  assert.is(ccm.key, 'cloud-controller-manager/node-controller');
});

test('kubelet, kube-scheduler, kube-proxy, kube-apiserver', () => {
  const kubelet = id('kubelet/v1.34.1 (linux/amd64) kubernetes/abc', 'system:node:worker-1');
  assert.is(kubelet.key, 'kubelet');
  assert.is(kubelet.user, 'system:node:worker-1');
  assert.is(kubelet.component, '');
  assert.is(id('kube-scheduler/v1.34.1 (linux/amd64) kubernetes/abc/scheduler', 'system:kube-scheduler').key, 'kube-scheduler/scheduler');
  assert.is(id('kube-scheduler/v1.34.1 (linux/amd64) kubernetes/abc/leader-election', 'system:kube-scheduler').key, 'kube-scheduler/leader-election');
  assert.is(id('kube-scheduler/v1.34.1 (linux/amd64) kubernetes/abc', 'system:kube-scheduler').key, 'kube-scheduler');
  assert.is(id('kube-proxy/v1.34.1 (linux/amd64) kubernetes/abc', 'system:serviceaccount:kube-system:kube-proxy').key, 'kube-proxy');
  assert.is(id('kube-apiserver/v1.35.0 (linux/amd64) kubernetes/66452049', 'system:apiserver').key, 'kube-apiserver');
  assert.is(id('kubeadm/v1.34.1 (linux/amd64) kubernetes/abc', 'kubernetes-admin').key, 'kubeadm');
});

test('e2e.test: the test name after " -- ", [Conformance] tag, key e2e.test', () => {
  const t = id('e2e.test/v1.35.0 (linux/amd64) kubernetes/abc -- [sig-apps] Deployment should run the lifecycle of a Deployment [Conformance]', 'kubernetes-admin');
  assert.is(t.key, 'e2e.test');
  assert.is(t.program, 'e2e.test');
  assert.is(t.test, '[sig-apps] Deployment should run the lifecycle of a Deployment [Conformance]');
  assert.is(t.conformance, true);
  assert.ok(isE2e(t));

  const plain = id('e2e.test/v1.35.0 (linux/amd64) kubernetes/abc -- [sig-network] DNS should support configurable pod resolv.conf', 'kubernetes-admin');
  assert.is(plain.test, '[sig-network] DNS should support configurable pod resolv.conf');
  assert.is(plain.conformance, false);

  // Framework requests outside a test: no name.
  const none = id('e2e.test/v1.35.0 (linux/amd64) kubernetes/abc', 'kubernetes-admin');
  assert.is(none.test, '');
  assert.is(none.conformance, false);
  assert.ok(isE2e(none));

  // [Conformance] in the middle, [Serial] etc. around it, ' -- ' inside the name.
  const serial = id('e2e.test/v1.35.0 (linux/amd64) kubernetes/abc -- [sig-api-machinery] Namespaces [Serial] should ensure -- that all pods are removed [Conformance] [Serial]', 'x');
  assert.is(serial.test, '[sig-api-machinery] Namespaces [Serial] should ensure -- that all pods are removed [Conformance] [Serial]');
  assert.is(serial.conformance, true);

  // A service-account user does not change the key of e2e.test.
  assert.is(id('e2e.test/v1.35.0 (linux/amd64) kubernetes/abc -- [sig-auth] x', 'system:serviceaccount:e2e-1234:default').key, 'e2e.test');
  assert.is(id('e2e_node.test/v1.35.0 (linux/amd64) kubernetes/abc -- [sig-node] y [Conformance]', 'x').key, 'e2e_node.test');
});

test('[Conformance] only counts for e2e.test: other programs carry no test', () => {
  const other = id('kubectl/v1.34.1 (linux/amd64) kubernetes/abc -- [Conformance] not a test', 'kubernetes-admin');
  assert.is(other.test, '');
  assert.is(other.conformance, false);
  assert.not.ok(isE2e(other));
});

test('client-go defaults (v0.0.0, $Format): service account when there is one, else the program', () => {
  const op = id('manager/v0.0.0 (linux/amd64) kubernetes/$Format', 'system:serviceaccount:cert-manager:cert-manager');
  assert.is(op.key, 'system:serviceaccount:cert-manager:cert-manager');
  assert.is(op.program, 'manager');
  assert.is(op.version, 'v0.0.0');
  assert.is(op.commit, 'kubernetes/$Format');
  assert.is(op.serviceAccount, 'cert-manager/cert-manager');

  const argo = id('argocd-application-controller/v0.0.0 (linux/amd64) kubernetes/$Format', 'system:serviceaccount:argocd:argocd-application-controller');
  assert.is(argo.key, 'system:serviceaccount:argocd:argocd-application-controller');

  const outside = id('my-operator/v0.0.0 (darwin/arm64) kubernetes/$Format', 'dev@example.com');
  assert.is(outside.key, 'my-operator');
  assert.is(outside.user, 'dev@example.com');

  const suffixed = id('main/v0.0.0 (linux/amd64) kubernetes/$Format/leader-election', 'dev');
  assert.is(suffixed.key, 'main/leader-election');
  assert.is(suffixed.component, 'leader-election');
});

test('free-form user agents: curl, Go, Helm, client libraries', () => {
  const curl = id('curl/8.5.0', 'kubernetes-admin');
  assert.is(curl.key, 'curl');
  assert.is(curl.program, 'curl');
  assert.is(curl.version, '8.5.0');
  assert.is(curl.os, '');
  assert.is(curl.commit, '');
  assert.is(id('Go-http-client/2.0', 'system:anonymous').key, 'Go-http-client');
  assert.is(id('Helm/3.14.0', 'kubernetes-admin').key, 'Helm');
  const py = id('OpenAPI-Generator/31.0.0/python', 'jane');
  assert.is(py.program, 'OpenAPI-Generator');
  assert.is(py.version, '31.0.0');
  assert.is(py.key, 'OpenAPI-Generator/python');
  // ...with a service account it is the service account.
  assert.is(id('OpenAPI-Generator/31.0.0/python', 'system:serviceaccount:tools:reporter').key, 'system:serviceaccount:tools:reporter');
  const words = id('Prometheus operator', 'x');
  assert.is(words.program, 'Prometheus');
  assert.is(words.key, 'Prometheus');
});

test('browsers: key browser, name and version of the browser', () => {
  const chrome = id('Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36', 'system:anonymous');
  assert.is(chrome.key, 'browser');
  assert.is(chrome.program, 'Chrome');
  assert.is(chrome.version, '120.0.0.0');
  assert.is(chrome.os, 'linux');
  assert.is(chrome.arch, 'amd64');
  const ff = id('Mozilla/5.0 (Macintosh; Intel Mac OS X 14.5; rv:127.0) Gecko/20100101 Firefox/127.0', 'jane');
  assert.is(ff.program, 'Firefox');
  assert.is(ff.os, 'darwin');
  const safari = id('Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15', 'jane');
  assert.is(safari.program, 'Safari');
  assert.is(safari.version, '17.4');
  const edge = id('Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 Edg/126.0.2592.68', 'x');
  assert.is(edge.program, 'Edge');
  assert.is(edge.os, 'windows');
  // A browser through a service account token is still a browser.
  assert.is(id('Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0.0.0', 'system:serviceaccount:kubernetes-dashboard:dashboard').key, 'browser');
});

test('no user agent: service account, else user:<name>, else unknown', () => {
  assert.is(id('', 'system:serviceaccount:ns:name').key, 'system:serviceaccount:ns:name');
  assert.is(id(undefined, 'system:serviceaccount:ns:name').serviceAccount, 'ns/name');
  assert.is(id('', 'kubernetes-admin').key, 'user:kubernetes-admin');
  assert.is(id('   ', 'system:anonymous').key, 'user:system:anonymous');
  const nobody = id(undefined);
  assert.is(nobody.key, 'unknown');
  assert.equal(nobody, { key: 'unknown', program: '', version: '', os: '', arch: '', commit: '', component: '', test: '', conformance: false, user: '', serviceAccount: '' });
  const p = parseUserAgent('');
  assert.is(p.program, '');
  assert.is(p.kep16, false);
});

test('service account user names', () => {
  assert.equal(parseServiceAccount('system:serviceaccount:kube-system:deployment-controller'), { namespace: 'kube-system', name: 'deployment-controller' });
  assert.is(parseServiceAccount('system:serviceaccount:kube-system'), undefined);
  assert.is(parseServiceAccount('system:serviceaccount::x'), undefined);
  assert.is(parseServiceAccount('system:node:n1'), undefined);
  assert.is(parseServiceAccount(undefined), undefined);
});

test('odd but real shapes: dev versions, unknown commit, no arch parentheses', () => {
  const dev = id('kubectl/v1.35.0-alpha.3.123+0123456789abcd (linux/amd64) kubernetes/0123456', 'x');
  assert.is(dev.key, 'kubectl');
  assert.is(dev.version, 'v1.35.0-alpha.3.123+0123456789abcd');
  const unknown = parseUserAgent('kube-probe/1.34');
  assert.is(unknown.program, 'kube-probe');
  assert.is(unknown.version, '1.34');
  assert.is(unknown.kep16, false);
  const noCommit = parseUserAgent('kubelet/v1.34.1 (linux/amd64) kubernetes/');
  assert.is(noCommit.kep16, true);
  assert.is(noCommit.commit, 'kubernetes/');
});

test.run();
