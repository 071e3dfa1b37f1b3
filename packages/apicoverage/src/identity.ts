/**
 * Who made a request (KEP-16, "Who are you? Why are you here?"), from what the audit event carries:
 * the user agent and the authenticated user.
 *
 * client-go's default user agent is `program/version (os/arch) project/commit`
 * (`rest.DefaultKubernetesUserAgent`): `kubectl/v1.34.1 (linux/amd64) kubernetes/abc1234`. A program
 * built without the version ldflags says `v0.0.0` and `kubernetes/$Format`. `rest.AddUserAgent(config,
 * name)` appends `/<name>` to it: kube-controller-manager names each controller's client that way
 * (`.../kubernetes/abc1234/deployment-controller`, or with `--use-service-account-credentials`
 * `.../kubernetes/abc1234/system:serviceaccount:kube-system:deployment-controller`), kube-scheduler
 * `/scheduler` and `/leader-election`. e2e.test appends ` -- <test name>` (the Ginkgo full text, with
 * `[Conformance]` for conformance tests).
 *
 * The key an operator groups by:
 * - e2e.test (and e2e_node.test): the program; the test is in `test`;
 * - Kubernetes' own programs (kubectl, kubelet, kube-*, cloud-controller-manager, kubeadm): the program,
 *   plus `/<component>` when the user agent or the service account names one
 *   (`kube-controller-manager/deployment-controller`, `kube-scheduler/leader-election`);
 * - any other program: the service account when the user is one (`system:serviceaccount:ns:name`:
 *   operators built with kubebuilder are all called `manager`), else the program (`helm`, `curl`,
 *   `argocd-server`), with `/<component>` as above;
 * - browsers: `browser`;
 * - no user agent: the service account, else `user:<username>`, else `unknown`.
 */
import type { AuditEvent, AuditUser } from '@kube-correlate/audit';
import type { Identity } from './types.js';

/** What a user agent says, before the user is looked at: the identity's user-agent fields, and its form. */
export interface ParsedUserAgent extends Pick<Identity, 'program' | 'version' | 'os' | 'arch' | 'commit' | 'component' | 'test' | 'conformance'> {
  /** The user agent follows KEP-16's `program/version (os/arch) project/commit`. */
  kep16: boolean;
  /** A web browser (`Mozilla/5.0 (...) ...`). */
  browser: boolean;
}

/** Kubernetes' own programs: their name is a good key whoever runs them. */
const KUBERNETES_PROGRAMS = new Set([
  'kubectl',
  'kubelet',
  'kube-apiserver',
  'kube-controller-manager',
  'cloud-controller-manager',
  'kube-scheduler',
  'kube-proxy',
  'kubeadm',
  'kube-aggregator',
  'e2e.test',
  'e2e_node.test',
]);
const E2E_PROGRAMS = new Set(['e2e.test', 'e2e_node.test']);

/** `program/version (os/arch) project/commit[/component][ -- text]`. */
const KEP16 = /^([^\s/]+)\/(\S+) \(([^/()\s]+)\/([^()\s]+)\) ([^\s/]+)\/(\S*)(.*)$/s;
const SA_PREFIX = 'system:serviceaccount:';
const CONFORMANCE_TAG = '[Conformance]';

function empty(): ParsedUserAgent {
  return { program: '', version: '', os: '', arch: '', commit: '', component: '', test: '', conformance: false, kep16: false, browser: false };
}

/** `system:serviceaccount:ns:name` -> { namespace, name }. */
export function parseServiceAccount(username: string | undefined): { namespace: string; name: string } | undefined {
  if (!username || !username.startsWith(SA_PREFIX)) return undefined;
  const rest = username.slice(SA_PREFIX.length);
  const colon = rest.indexOf(':');
  if (colon <= 0 || colon === rest.length - 1) return undefined;
  return { namespace: rest.slice(0, colon), name: rest.slice(colon + 1) };
}

/** The text after the first ` -- `, and whether it carries `[Conformance]`. */
function splitTest(rest: string): { test: string; conformance: boolean } {
  const at = rest.indexOf(' -- ');
  if (at === -1) return { test: '', conformance: false };
  const test = rest.slice(at + 4).trim();
  return { test, conformance: test.includes(CONFORMANCE_TAG) };
}

const BROWSERS: Array<[RegExp, string]> = [
  [/\bEdg(?:e|A|iOS)?\/(\S+)/, 'Edge'],
  [/\bOPR\/(\S+)/, 'Opera'],
  [/\bFirefox\/(\S+)/, 'Firefox'],
  [/\b(?:Chrome|CriOS|Chromium|HeadlessChrome)\/(\S+)/, 'Chrome'],
  [/\bVersion\/(\S+).*\bSafari\//, 'Safari'],
];

function parseBrowser(ua: string, out: ParsedUserAgent): void {
  out.browser = true;
  out.program = 'browser';
  for (const [re, name] of BROWSERS) {
    const m = re.exec(ua);
    if (m) {
      out.program = name;
      out.version = m[1] ?? '';
      break;
    }
  }
  if (/Windows/.test(ua)) out.os = 'windows';
  else if (/Android/.test(ua)) out.os = 'android';
  else if (/iPhone|iPad|iOS/.test(ua)) out.os = 'ios';
  else if (/Mac OS X|Macintosh/.test(ua)) out.os = 'darwin';
  else if (/Linux|X11/.test(ua)) out.os = 'linux';
  if (/x86_64|x64|Win64|amd64/i.test(ua)) out.arch = 'amd64';
  else if (/aarch64|arm64/i.test(ua)) out.arch = 'arm64';
}

/** Strips what a platform adds to a binary's name (`kubectl.exe`). */
function programName(p: string): string {
  return p.toLowerCase().endsWith('.exe') ? p.slice(0, -4) : p;
}

/**
 * Parses a user agent: KEP-16 / client-go form (`kubectl/v1.34.1 (linux/amd64) kubernetes/abc1234`,
 * with an optional `/<component>` after the commit and ` -- <test>` after that), browsers
 * (`Mozilla/5.0 (...)`), and other free-form agents (`curl/8.5.0`, `Go-http-client/2.0`,
 * `Helm/3.14.0`): their first `product/version`, or the first word.
 */
export function parseUserAgent(ua: string): ParsedUserAgent {
  const out = empty();
  const text = ua.trim();
  if (text === '') return out;
  const m = KEP16.exec(text);
  if (m) {
    out.kep16 = true;
    out.program = programName(m[1]!);
    out.version = m[2]!;
    out.os = m[3]!;
    out.arch = m[4]!;
    const after = m[6]!;
    const slash = after.indexOf('/');
    out.commit = `${m[5]!}/${slash === -1 ? after : after.slice(0, slash)}`;
    out.component = slash === -1 ? '' : after.slice(slash + 1);
    Object.assign(out, splitTest(m[7]!));
    return out;
  }
  if (/^Mozilla\/\d/.test(text)) {
    parseBrowser(text, out);
    return out;
  }
  // Free form: `name/version rest`, `name version`, or anything. ` -- text` is kept as for e2e.test.
  const dashes = text.indexOf(' -- ');
  const head = dashes === -1 ? text : text.slice(0, dashes);
  Object.assign(out, splitTest(text));
  const first = head.split(/\s+/)[0]!;
  const slash = first.indexOf('/');
  if (slash > 0) {
    out.program = programName(first.slice(0, slash));
    const rest = first.slice(slash + 1);
    const next = rest.indexOf('/');
    out.version = next === -1 ? rest : rest.slice(0, next);
    out.component = next === -1 ? '' : rest.slice(next + 1);
  } else {
    out.program = programName(slash === 0 ? first.slice(1) : first);
  }
  return out;
}

/** The component a controller-manager's service account names (`kube-system:deployment-controller`). */
function componentOf(parsed: ParsedUserAgent, sa: { namespace: string; name: string } | undefined, program: string): string {
  const fromUa = parsed.component;
  if (fromUa) {
    // `.../system:serviceaccount:kube-system:deployment-controller` -> deployment-controller
    const uaSa = parseServiceAccount(fromUa);
    return uaSa ? uaSa.name : fromUa;
  }
  if (sa && sa.namespace === 'kube-system' && (program === 'kube-controller-manager' || program === 'cloud-controller-manager')) return sa.name;
  return '';
}

/** The identity of an audit event's client (see the file comment for the key). */
export function identify(event: Pick<AuditEvent, 'userAgent' | 'user' | 'impersonatedUser'>): Identity {
  const parsed = parseUserAgent(event.userAgent ?? '');
  const user: AuditUser = event.user ?? {};
  const username = user.username ?? '';
  const sa = parseServiceAccount(username);
  const serviceAccount = sa ? `${sa.namespace}/${sa.name}` : '';
  const program = parsed.program;
  const component = parsed.browser ? '' : componentOf(parsed, sa, program);
  const e2e = E2E_PROGRAMS.has(program);
  let key: string;
  if (e2e) key = program;
  else if (parsed.browser) key = 'browser';
  else if (program === '') key = sa ? username : username ? `user:${username}` : 'unknown';
  else if (KUBERNETES_PROGRAMS.has(program)) key = component ? `${program}/${component}` : program;
  else if (sa) key = username;
  else key = component ? `${program}/${component}` : program;
  return {
    key,
    program,
    version: parsed.version,
    os: parsed.os,
    arch: parsed.arch,
    commit: parsed.commit,
    component,
    test: e2e ? parsed.test : '',
    conformance: e2e && parsed.conformance,
    user: username,
    serviceAccount,
  };
}

/** The identity is an e2e test run (APISnoop's "tested"). */
export function isE2e(identity: Identity): boolean {
  return E2E_PROGRAMS.has(identity.program);
}
