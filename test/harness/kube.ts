/**
 * A real Kubernetes control plane for the end-to-end tests (DESIGN.md, "Real components in tests"):
 * etcd, kube-apiserver and kube-controller-manager, plus kubectl to drive them. No scheduler and no
 * nodes: Pods stay Pending, as in the recordings of ../shared/data/captures.
 *
 * - `ensureKubeTools()` builds etcd v3.6.16 (`go.etcd.io/etcd/server/v3`) and kube-apiserver,
 *   kube-controller-manager and kubectl v1.37.2 (`k8s.io/kubernetes/cmd/...`) with the Go toolchain
 *   from the Go module proxy, from the wrapper modules in test/kube/etcd and test/kube/kubernetes
 *   (go.mod + go.sum pin every version), once, into a cache outside the repo keyed by version:
 *   `${XDG_CACHE_HOME:-~/.cache}/kube-correlate/etcd-v3.6.16/etcd` and
 *   `.../kubernetes-v1.37.2/{kube-apiserver,kube-controller-manager,kubectl}`. Each binary is built
 *   into a temp name and renamed into place, then stamped; a killed build leaves no stamp and is
 *   redone. Cold builds take many minutes (test/kube/README.md): test/harness/prepare.ts runs them
 *   before any test file's time limit starts.
 * - `startControlPlane(opts)` makes an openssl client-certificate PKI in a temp dir, starts etcd,
 *   kube-apiserver (RBAC, tracing to the caller's OTLP/gRPC endpoint, the audit webhook backend to
 *   the caller's URL) and kube-controller-manager (controllers act as service accounts) on free
 *   loopback ports, each in its own process group behind the harness watchdog (supervise.ts: a
 *   killed test leaves no process), and resolves when `/readyz` answers and the controllers work.
 *   With `admissionWebhook`, it also starts `correlate webhook` and registers it with
 *   deploy/base/mutating-webhook.yaml as shipped, only its `clientConfig` swapped for a loopback URL.
 *
 * Nothing here mocks Kubernetes. See test/kube/README.md for versions, flags and timings.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync,
} from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { requireGo, runGo, shellLine } from './go-build.js';
import { freePort, sleep, stopTracked, tail, track, untrack, watchdogLauncher, withLock, type Tracked } from './supervise.js';

/** The Kubernetes release of kube-apiserver, kube-controller-manager and kubectl. */
export const KUBERNETES_VERSION = 'v1.37.2';
/** Its staging modules' version (k8s.io/api, k8s.io/client-go, ...): v0.<minor>.<patch>. */
export const KUBERNETES_STAGING_VERSION = 'v0.37.2';
/** The etcd release (Debian's etcd is too old for kube-apiserver 1.37). */
export const ETCD_VERSION = 'v3.6.16';

const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
/** The wrapper modules the binaries are built from (go.mod, go.sum; see test/kube/README.md). */
export const KUBE_MODULE_DIR = join(REPO_ROOT, 'test/kube/kubernetes');
export const ETCD_MODULE_DIR = join(REPO_ROOT, 'test/kube/etcd');
/** deploy/'s own files, used as shipped. */
export const DEFAULT_AUDIT_POLICY = join(REPO_ROOT, 'deploy/apiserver/audit-policy.yaml');
export const MUTATING_WEBHOOK_MANIFEST = join(REPO_ROOT, 'deploy/base/mutating-webhook.yaml');
const CLI = join(REPO_ROOT, 'packages/cli/dist/src/bin.js');

/** One Go build: kube-apiserver alone takes 7-16 min cold on 2 idle cores; far longer when the CPU is shared. */
const BUILD_TIMEOUT_MS = 60 * 60_000;
const LOCK_WAIT_MS = 3 * BUILD_TIMEOUT_MS;
const STOP_GRACE_MS = 15_000;

// ---------------------------------------------------------------------------------------------
// The builds and their cache

function cacheRoot(): string {
  const xdg = process.env['XDG_CACHE_HOME'];
  return join(xdg && xdg.startsWith('/') ? xdg : join(homedir(), '.cache'), 'kube-correlate');
}
/** `${XDG_CACHE_HOME:-~/.cache}/kube-correlate/kubernetes-v1.37.2`: the three binaries, their stamps and build logs. */
export const kubernetesCacheDir = (): string => join(cacheRoot(), `kubernetes-${KUBERNETES_VERSION}`);
/** `${XDG_CACHE_HOME:-~/.cache}/kube-correlate/etcd-v3.6.16`. */
export const etcdCacheDir = (): string => join(cacheRoot(), `etcd-${ETCD_VERSION}`);

/** What one binary is and how it is built. */
interface GoBinary {
  name: string;
  what: string;
  moduleDir: string;
  pkg: string;
  ldflags: string;
}

/**
 * The version stamps of hack/lib/version.sh (kube::version::ldflags): each key is set in both
 * k8s.io/client-go/pkg/version and k8s.io/component-base/version, so `/version` and `kubectl
 * version` say v1.37.2. gitCommit and gitTreeState are left out: a module zip carries no commit
 * (version.sh sets them only when it knows one). buildDate is the tag's time on the module proxy,
 * so rebuilds are byte-identical.
 */
function kubeVersionLdflags(): string {
  const [major, minor] = KUBERNETES_VERSION.slice(1).split('.');
  const keys: Array<[string, string]> = [['gitVersion', KUBERNETES_VERSION], ['gitMajor', major!], ['gitMinor', minor!], ['buildDate', '2026-10-27T12:01:04Z']];
  return keys.flatMap(([k, v]) => [`-X k8s.io/client-go/pkg/version.${k}=${v}`, `-X k8s.io/component-base/version.${k}=${v}`]).join(' ');
}

const ETCD: GoBinary = {
  name: 'etcd', what: `etcd ${ETCD_VERSION}`, moduleDir: ETCD_MODULE_DIR, pkg: 'go.etcd.io/etcd/server/v3',
  // The version itself is a constant in go.etcd.io/etcd/api/v3/version; only the commit is stamped.
  ldflags: `-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=module-${ETCD_VERSION}`,
};
const KUBE_BINARIES = ['kube-apiserver', 'kube-controller-manager', 'kubectl'] as const;
type KubeBinary = (typeof KUBE_BINARIES)[number];
const kubeBinary = (name: KubeBinary): GoBinary => ({
  name, what: `${name} ${KUBERNETES_VERSION}`, moduleDir: KUBE_MODULE_DIR, pkg: `k8s.io/kubernetes/cmd/${name}`,
  ldflags: `-s -w ${kubeVersionLdflags()}`,
});

/** The `go` arguments that build `b` to `out` (run in b.moduleDir; also in test/kube/README.md). */
export function goBuildArgs(b: GoBinary, out: string): string[] {
  return ['build', '-mod=readonly', '-buildvcs=false', '-trimpath', '-ldflags', b.ldflags, '-o', out, b.pkg];
}

/** What a binary's stamp must say for it to be current: the package, the flags and the pinned module files. */
function expectedStamp(b: GoBinary): { package: string; ldflags: string; modHash: string } {
  const h = createHash('sha256');
  for (const f of ['go.mod', 'go.sum']) h.update(readFileSync(join(b.moduleDir, f)));
  return { package: b.pkg, ldflags: b.ldflags, modHash: h.digest('hex') };
}

function stampIsCurrent(b: GoBinary, base: string): boolean {
  const bin = join(base, b.name);
  const stamp = join(base, `${b.name}.stamp.json`);
  if (!existsSync(stamp) || !existsSync(bin)) return false;
  try {
    const got = JSON.parse(readFileSync(stamp, 'utf8')) as Record<string, unknown>;
    const want = expectedStamp(b);
    return got['package'] === want.package && got['ldflags'] === want.ldflags && got['modHash'] === want.modHash;
  } catch {
    return false;
  }
}

/** Progress lines of a build (prepare prints them; tests stay quiet). */
export type BuildLog = (line: string) => void;

/**
 * Builds the binaries of one cache dir that are missing or stale, one after the other, under one
 * lock (concurrent test processes wait instead of building twice). Each goes to `<name>.tmp-<pid>`
 * and is renamed into place before its stamp is written.
 */
async function ensureBinaries(base: string, binaries: GoBinary[], log: BuildLog): Promise<void> {
  if (binaries.every((b) => stampIsCurrent(b, base))) return;
  const goVersion = requireGo(binaries.filter((b) => !stampIsCurrent(b, base)).map((b) => b.what).join(', '), base, '1.26.0');
  mkdirSync(base, { recursive: true });
  await withLock(join(base, 'lock'), `the build of ${binaries.map((b) => b.name).join(', ')}`, LOCK_WAIT_MS, async () => {
    for (const e of readdirSync(base)) if (e.includes('.tmp-')) rmSync(join(base, e), { force: true });
    for (const b of binaries) {
      if (stampIsCurrent(b, base)) continue; // built by another process meanwhile, or earlier
      const bin = join(base, b.name);
      const stamp = join(base, `${b.name}.stamp.json`);
      rmSync(stamp, { force: true });
      rmSync(bin, { force: true });
      const tmp = join(base, `${b.name}.tmp-${process.pid}`);
      const logPath = join(base, `build-${b.name}.log`);
      const args = goBuildArgs(b, tmp);
      const line = `cd ${shellLine([b.moduleDir])} && CGO_ENABLED=0 go ${shellLine(args)}`;
      writeFileSync(logPath, `# ${new Date().toISOString()} ${goVersion}\n# ${line}\n`);
      log(`building ${b.what} (log: ${logPath})`);
      const started = Date.now();
      let code: number | null;
      try {
        code = await runGo(args, { cwd: b.moduleDir, env: { ...process.env, CGO_ENABLED: '0' }, logPath, timeoutMs: BUILD_TIMEOUT_MS });
      } catch (e) {
        rmSync(tmp, { force: true });
        throw new Error(`building ${b.what} failed: could not run go (${(e as Error).message}; ${line})`);
      }
      const buildMs = Date.now() - started;
      if (code !== 0 || !existsSync(tmp)) {
        rmSync(tmp, { force: true });
        const why = code === null ? `killed after ${Math.round(buildMs / 1000)} s (timeout ${BUILD_TIMEOUT_MS / 60_000} min)` : `go exited ${code}`;
        throw new Error(`building ${b.what} failed (${why}; ${line}; log ${logPath}):\n${tail(logPath, 60)}`);
      }
      renameSync(tmp, bin);
      const info = { ...expectedStamp(b), what: b.what, go: goVersion, buildMs, bytes: statSync(bin).size, at: new Date().toISOString(), command: ['go', ...goBuildArgs(b, bin)] };
      writeFileSync(`${stamp}.tmp`, `${JSON.stringify(info, null, 2)}\n`);
      renameSync(`${stamp}.tmp`, stamp);
      log(`built ${b.what} in ${(buildMs / 1000).toFixed(0)} s`);
    }
  });
}

export interface KubeTools {
  etcd: string;
  kubeApiserver: string;
  kubeControllerManager: string;
  kubectl: string;
}

/**
 * The paths of etcd, kube-apiserver, kube-controller-manager and kubectl, built on first use (tens
 * of minutes cold: run `node test/dist/harness/prepare.js kubernetes` first). Throws (never skips)
 * when a build is needed and `go` is missing or the build fails; the message has the build log's tail.
 */
export async function ensureKubeTools(log: BuildLog = () => undefined): Promise<KubeTools> {
  await ensureBinaries(etcdCacheDir(), [ETCD], log);
  await ensureBinaries(kubernetesCacheDir(), KUBE_BINARIES.map(kubeBinary), log);
  const k = kubernetesCacheDir();
  return { etcd: join(etcdCacheDir(), 'etcd'), kubeApiserver: join(k, 'kube-apiserver'), kubeControllerManager: join(k, 'kube-controller-manager'), kubectl: join(k, 'kubectl') };
}

// ---------------------------------------------------------------------------------------------
// The PKI (openssl)

export interface Pki {
  dir: string;
  caCert: string;
  caKey: string;
  /** kube-apiserver's serving certificate (127.0.0.1, localhost, the in-cluster names). */
  apiserverCert: string;
  apiserverKey: string;
  /** Service-account token signing key (private, for kube-apiserver and the token controller) and its public half. */
  serviceAccountKey: string;
  serviceAccountPub: string;
  /** Client certificates: `kubernetes-admin` in `system:masters`, `alice` in no group, the controller-manager. */
  clients: Record<'admin' | 'alice' | 'controllerManager', { cert: string; key: string; user: string; groups: string[] }>;
  /** The admission webhook's serving certificate (127.0.0.1). */
  webhookCert: string;
  webhookKey: string;
}

function openssl(args: string[], cwd: string): void {
  const r = spawnSync('openssl', args, { cwd, encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    const why = r.error ? ((r.error as NodeJS.ErrnoException).code === 'ENOENT' ? 'openssl is not installed (Debian: apt-get install -y openssl)' : r.error.message) : `exit ${r.status}: ${r.stderr.trim()}`;
    throw new Error(`openssl ${shellLine(args)}: ${why}`);
  }
}

/**
 * A CA and the certificates signed by it, valid for two days. EC P-256 keys (fast to make) for
 * TLS; an RSA key for service-account tokens (RS256, what kube-apiserver setups usually use).
 */
export function makePki(dir: string): Pki {
  mkdirSync(dir, { recursive: true });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  openssl(['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=kube-correlate-test-ca',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
  const issue = (name: string, subj: string, ext: string[]): { cert: string; key: string } => {
    openssl(['req', '-new', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subj], dir);
    writeFileSync(join(dir, `${name}.ext`), `${['basicConstraints=critical,CA:FALSE', 'keyUsage=critical,digitalSignature,keyEncipherment', ...ext].join('\n')}\n`);
    openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-sha256', '-extfile', `${name}.ext`, '-out', `${name}.crt`], dir);
    return { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
  };
  const server = ['extendedKeyUsage=serverAuth'];
  const client = ['extendedKeyUsage=clientAuth'];
  const apiserver = issue('apiserver', '/CN=kube-apiserver', [...server,
    'subjectAltName=IP:127.0.0.1,DNS:localhost,IP:10.0.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local']);
  const webhook = issue('webhook', '/CN=kube-correlate-webhook', [...server, 'subjectAltName=IP:127.0.0.1,DNS:localhost']);
  const admin = issue('admin', '/O=system:masters/CN=kubernetes-admin', client);
  const alice = issue('alice', '/CN=alice', client);
  const kcm = issue('controller-manager', '/CN=system:kube-controller-manager', client);
  openssl(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', 'sa.key'], dir);
  openssl(['pkey', '-in', 'sa.key', '-pubout', '-out', 'sa.pub'], dir);
  return {
    dir, caCert: join(dir, 'ca.crt'), caKey: join(dir, 'ca.key'),
    apiserverCert: apiserver.cert, apiserverKey: apiserver.key,
    serviceAccountKey: join(dir, 'sa.key'), serviceAccountPub: join(dir, 'sa.pub'),
    clients: {
      admin: { ...admin, user: 'kubernetes-admin', groups: ['system:masters'] },
      alice: { ...alice, user: 'alice', groups: [] },
      controllerManager: { ...kcm, user: 'system:kube-controller-manager', groups: [] },
    },
    webhookCert: webhook.cert, webhookKey: webhook.key,
  };
}

/** A kubeconfig with the client certificate embedded by path. JSON is valid YAML. */
function kubeconfigJson(server: string, caCert: string, user: string, cert?: { cert: string; key: string }): string {
  return `${JSON.stringify({
    apiVersion: 'v1', kind: 'Config',
    clusters: [{ name: 'kube-correlate-test', cluster: { server, ...(caCert ? { 'certificate-authority': caCert } : {}) } }],
    users: [{ name: user, user: cert ? { 'client-certificate': cert.cert, 'client-key': cert.key } : {} }],
    contexts: [{ name: user, context: { cluster: 'kube-correlate-test', user } }],
    'current-context': user,
  }, null, 2)}\n`;
}

// ---------------------------------------------------------------------------------------------
// Supervised processes

interface Supervised {
  name: string;
  tracked: Tracked;
  logPath: string;
  exited: Promise<void>;
  /** Set when the process has exited: why. */
  exitInfo(): string | undefined;
}

/** Starts `argv` in its own process group behind the watchdog, output appended to `logPath`. */
function supervise(name: string, argv: string[], dir: string, logPath: string, env: NodeJS.ProcessEnv = process.env): Supervised {
  const tracked: Tracked = { child: undefined, dir };
  track(tracked);
  const out = openSync(logPath, 'a');
  const child: ChildProcess = spawn('/bin/sh', ['-c', watchdogLauncher('KC_KUBE_DIR'), name, ...argv], {
    cwd: dir, detached: true, stdio: ['pipe', out, out], env: { ...env, KC_KUBE_DIR: dir },
  });
  closeSync(out);
  tracked.child = child;
  let info: string | undefined;
  const exited = new Promise<void>((resolve) => child.on('exit', (code, signal) => {
    info = `${name} exited (${signal ?? `code ${code}`})`;
    resolve();
  }));
  child.on('error', (e) => { info = `could not start ${name}: ${e.message}`; });
  // Neither the child nor the watchdog pipe keeps the test process alive; the exit hooks kill them.
  child.unref();
  (child.stdin as unknown as { unref?: () => void } | null)?.unref?.();
  child.stdin?.on('error', () => { /* the group is gone */ });
  return { name, tracked, logPath, exited, exitInfo: () => info };
}

async function stopSupervised(p: Supervised | undefined): Promise<void> {
  if (!p) return;
  await stopTracked(p.tracked, p.exited, STOP_GRACE_MS);
  untrack(p.tracked);
}

/**
 * Polls `check` (undefined: ready; a string: why not yet) every 200 ms until ready, failing at
 * once when the process exits and with the log tail at the deadline.
 */
async function waitReady(p: Supervised, what: string, timeoutMs: number, check: () => Promise<string | undefined>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = 'not checked yet';
  for (;;) {
    const exit = p.exitInfo();
    if (exit) throw new Error(`${what}: ${exit}\n--- ${p.logPath} (tail) ---\n${tail(p.logPath)}`);
    try {
      const why = await check();
      if (why === undefined) return;
      last = why;
    } catch (e) {
      last = (e as Error).message;
    }
    if (Date.now() > deadline) throw new Error(`${what}: not ready after ${timeoutMs / 1000} s (last: ${last})\n--- ${p.logPath} (tail) ---\n${tail(p.logPath)}`);
    await sleep(200);
  }
}

/**
 * Runs `start` (which picks free ports and waits for readiness) again with new ports, twice at
 * most, when what it wrote to `logPath` this time says a port was taken in the meantime.
 */
async function startOnFreePorts<T>(logPath: string, start: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    const from = existsSync(logPath) ? statSync(logPath).size : 0;
    try {
      return await start();
    } catch (e) {
      const written = existsSync(logPath) ? readFileSync(logPath).subarray(from).toString('utf8') : '';
      if (attempt >= 3 || !/address already in use|EADDRINUSE/i.test(written)) throw e;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// HTTPS with a client certificate

export interface HttpsResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** `tls.ca` undefined: the server's certificate is not checked (only for the controller-manager's self-signed /healthz). */
function httpsCall(url: string, tls: { ca?: string; cert?: string; key?: string }, opts: { method?: string; headers?: Record<string, string>; body?: string; timeoutMs?: number } = {}): Promise<HttpsResult> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, {
      method: opts.method ?? 'GET', headers: opts.headers,
      ca: tls.ca ? readFileSync(tls.ca) : undefined, rejectUnauthorized: tls.ca !== undefined, cert: tls.cert ? readFileSync(tls.cert) : undefined, key: tls.key ? readFileSync(tls.key) : undefined,
      timeout: opts.timeoutMs ?? 10_000,
    }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer from ${url} within ${opts.timeoutMs ?? 10_000} ms`)));
    req.on('error', reject);
    req.end(opts.body);
  });
}

// ---------------------------------------------------------------------------------------------
// The control plane

export interface StartControlPlaneOptions {
  /**
   * OTLP/gRPC receiver for kube-apiserver's spans, "host:port" (plaintext), e.g. `correlate
   * start`'s. Written to an apiserver.config.k8s.io/v1 TracingConfiguration. No tracing when absent.
   */
  tracingEndpoint?: string;
  /** TracingConfiguration.samplingRatePerMillion; default 1000000 (every request). */
  samplingRatePerMillion?: number;
  /** Where the audit webhook backend posts EventList batches, e.g. `http://127.0.0.1:4319/`. No audit webhook when absent. */
  auditWebhookUrl?: string;
  /** `--audit-policy-file`; default deploy/apiserver/audit-policy.yaml. */
  auditPolicyFile?: string;
  /** `--audit-webhook-batch-max-wait`; default `1s` (kube-apiserver's default is 30s). */
  auditBatchMaxWait?: string;
  /** Also write the audit log (`--audit-log-path`) to `<dir>/audit.log`, e.g. to compare with what the webhook delivered. */
  auditLog?: boolean;
  /** `--controllers` of kube-controller-manager; default `['*']` (its default set, as in the recordings). */
  controllers?: string[];
  /** Start `correlate webhook` and register it from deploy/base/mutating-webhook.yaml (see ControlPlane.webhook). */
  admissionWebhook?: boolean;
  /** Extra flags, appended last (a repeated flag overrides the harness's). */
  apiserverArgs?: string[];
  /** Extra environment variables of kube-apiserver (e.g. OTEL_EXPORTER_OTLP_TRACES_* for its trace exporter's TLS). */
  apiserverEnv?: Record<string, string>;
  controllerManagerArgs?: string[];
  /** How long to wait for each component to be ready; default 180 s (the CPU may be shared). */
  readyTimeoutMs?: number;
}

export type KubeUser = 'admin' | 'alice';

export interface KubectlResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface ControlPlane {
  /** kube-apiserver, "https://127.0.0.1:<port>". */
  server: string;
  /** etcd's client URL, "http://127.0.0.1:<port>". */
  etcd: string;
  /** The temp dir holding the PKI, configs, etcd data and logs; removed by stop(). */
  dir: string;
  pki: Pki;
  /** Kubeconfigs: admin (`kubernetes-admin`, group `system:masters`), alice (no group), the controller-manager's. */
  kubeconfigs: { admin: string; alice: string; controllerManager: string };
  /** Logs of each process (stdout and stderr). */
  logs: { etcd: string; apiserver: string; controllerManager: string; webhook?: string };
  /** With `auditLog`: the audit log kube-apiserver writes. */
  auditLogPath?: string;
  /** The files kube-apiserver was started with. */
  files: { tracingConfig?: string; auditPolicy?: string; auditWebhookConfig?: string };
  tools: KubeTools;
  /** With `admissionWebhook`: the running `correlate webhook` and the MutatingWebhookConfiguration applied. */
  webhook?: { url: string; port: number; configurationPath: string; configuration: Record<string, unknown>; pid: number };
  /** Milliseconds from the call (PKI included) to ready: controllers working, webhook registered. */
  readyMs: number;
  /** Runs the built kubectl as `as` (default admin). Resolves with the exit code and output; never throws on a non-zero exit. */
  kubectl(args: string[], opts?: { as?: KubeUser; input?: string; timeoutMs?: number }): Promise<KubectlResult>;
  /** An HTTPS request to kube-apiserver with `as`'s client certificate (default admin). */
  request(path: string, opts?: { as?: KubeUser; method?: string; headers?: Record<string, string>; body?: string; timeoutMs?: number }): Promise<HttpsResult>;
  /** Stops the webhook, controller-manager, kube-apiserver, etcd in that order (SIGTERM, SIGKILL after 15 s each); removes the temp dir. Safe to call twice. */
  stop(): Promise<void>;
}

/** Starts etcd, kube-apiserver and kube-controller-manager (and optionally our admission webhook); resolves when all work. */
export async function startControlPlane(opts: StartControlPlaneOptions = {}): Promise<ControlPlane> {
  const tools = await ensureKubeTools();
  const readyTimeout = opts.readyTimeoutMs ?? 180_000;
  const dir = mkdtempSync(join(tmpdir(), 'kc-kube-'));
  const started = Date.now();
  const procs: Supervised[] = [];
  let webhookProc: Supervised | undefined;
  const stopAll = async () => {
    // Controllers and webhook first (they call kube-apiserver), etcd last.
    for (const p of [...procs].reverse()) await stopSupervised(p);
    procs.length = 0;
    rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 50 });
  };

  try {
    const pki = makePki(join(dir, 'pki'));
    const taken = new Set<number>();

    // etcd ------------------------------------------------------------------------------------
    let etcdUrl = '';
    const etcdLog = join(dir, 'etcd.log');
    const etcd = await startOnFreePorts(etcdLog, async () => {
      const client = await freePort(taken);
      const peer = await freePort(taken);
      etcdUrl = `http://127.0.0.1:${client}`;
      const peerUrl = `http://127.0.0.1:${peer}`;
      const dataDir = join(dir, 'etcd-data');
      rmSync(dataDir, { recursive: true, force: true });
      const p = supervise('etcd', [tools.etcd,
        '--name', 'kc', '--data-dir', dataDir,
        '--listen-client-urls', etcdUrl, '--advertise-client-urls', etcdUrl,
        '--listen-peer-urls', peerUrl, '--initial-advertise-peer-urls', peerUrl, '--initial-cluster', `kc=${peerUrl}`,
        // A throwaway store: no fsync (tests share a busy disk), warnings only.
        '--unsafe-no-fsync', '--log-level', 'warn',
      ], dir, etcdLog);
      procs.push(p);
      try {
        await waitReady(p, `etcd ${ETCD_VERSION} (${etcdUrl})`, readyTimeout, async () => {
          const res = await fetch(`${etcdUrl}/health`, { signal: AbortSignal.timeout(2000) });
          const body = await res.text();
          return res.ok && /"health":\s*"true"/.test(body) ? undefined : `GET /health: ${res.status} ${body.slice(0, 200)}`;
        });
      } catch (e) {
        await stopSupervised(procs.pop());
        throw e;
      }
      return p;
    });

    // kube-apiserver --------------------------------------------------------------------------
    const files: ControlPlane['files'] = {};
    if (opts.tracingEndpoint) {
      files.tracingConfig = join(dir, 'tracing-config.yaml');
      writeFileSync(files.tracingConfig, [
        '# Written by test/harness/kube.ts (see deploy/apiserver/tracing-config-v1.yaml).',
        'apiVersion: apiserver.config.k8s.io/v1', 'kind: TracingConfiguration',
        `endpoint: ${JSON.stringify(opts.tracingEndpoint)}`, `samplingRatePerMillion: ${opts.samplingRatePerMillion ?? 1_000_000}`, '',
      ].join('\n'));
    }
    if (opts.auditWebhookUrl) {
      files.auditWebhookConfig = join(dir, 'audit-webhook-kubeconfig.yaml');
      // As deploy/apiserver/audit-webhook-kubeconfig.yaml, with the caller's URL (plain HTTP allowed).
      writeFileSync(files.auditWebhookConfig, kubeconfigJson(opts.auditWebhookUrl, '', 'kube-apiserver'));
    }
    if (opts.auditWebhookUrl || opts.auditLog) files.auditPolicy = opts.auditPolicyFile ?? DEFAULT_AUDIT_POLICY;
    const auditLogPath = opts.auditLog ? join(dir, 'audit.log') : undefined;

    let server = '';
    const apiserverLog = join(dir, 'kube-apiserver.log');
    const adminTls = { ca: pki.caCert, cert: pki.clients.admin.cert, key: pki.clients.admin.key };
    await startOnFreePorts(apiserverLog, async () => {
      const securePort = await freePort(taken);
      server = `https://127.0.0.1:${securePort}`;
      const args = [tools.kubeApiserver,
        '--etcd-servers', etcdUrl,
        '--bind-address', '127.0.0.1', '--advertise-address', '127.0.0.1', '--secure-port', String(securePort),
        '--tls-cert-file', pki.apiserverCert, '--tls-private-key-file', pki.apiserverKey,
        '--client-ca-file', pki.caCert,
        // Never writes self-signed certs to /var/run/kubernetes (we pass ours; this is where it would).
        '--cert-dir', join(dir, 'apiserver-certs'),
        '--authorization-mode', 'RBAC',
        '--service-account-issuer', 'https://kubernetes.default.svc.cluster.local',
        '--service-account-key-file', pki.serviceAccountPub, '--service-account-signing-key-file', pki.serviceAccountKey,
        '--service-cluster-ip-range', '10.0.0.0/24',
        // On loopback the default (lease) reconciler would publish 127.0.0.1 as the kubernetes
        // Service's endpoint, which kube-apiserver refuses; nothing here needs that Service.
        '--endpoint-reconciler-type', 'none',
        ...(files.tracingConfig ? ['--tracing-config-file', files.tracingConfig] : []),
        ...(files.auditPolicy ? ['--audit-policy-file', files.auditPolicy] : []),
        ...(files.auditWebhookConfig ? ['--audit-webhook-config-file', files.auditWebhookConfig, '--audit-webhook-mode', 'batch',
          '--audit-webhook-batch-max-wait', opts.auditBatchMaxWait ?? '1s', '--audit-webhook-version', 'audit.k8s.io/v1'] : []),
        ...(auditLogPath ? ['--audit-log-path', auditLogPath, '--audit-log-format', 'json', '--audit-log-maxbackup', '1', '--audit-log-maxsize', '1000'] : []),
        ...(opts.apiserverArgs ?? []),
      ];
      const p = supervise('kube-apiserver', args, dir, apiserverLog, { ...process.env, ...(opts.apiserverEnv ?? {}) });
      procs.push(p);
      try {
        await waitReady(p, `kube-apiserver ${KUBERNETES_VERSION} (${server})`, readyTimeout, async () => {
          const r = await httpsCall(`${server}/readyz`, adminTls, { timeoutMs: 5000 });
          return r.status === 200 ? undefined : `GET /readyz: ${r.status} ${r.body.slice(-300)}`;
        });
      } catch (e) {
        await stopSupervised(procs.pop());
        throw e;
      }
      return p;
    });

    const kubeconfigs = {
      admin: join(dir, 'admin.kubeconfig'),
      alice: join(dir, 'alice.kubeconfig'),
      controllerManager: join(dir, 'controller-manager.kubeconfig'),
    };
    writeFileSync(kubeconfigs.admin, kubeconfigJson(server, pki.caCert, pki.clients.admin.user, pki.clients.admin));
    writeFileSync(kubeconfigs.alice, kubeconfigJson(server, pki.caCert, pki.clients.alice.user, pki.clients.alice));
    writeFileSync(kubeconfigs.controllerManager, kubeconfigJson(server, pki.caCert, pki.clients.controllerManager.user, pki.clients.controllerManager));

    const tlsOf = (as: KubeUser) => ({ ca: pki.caCert, cert: pki.clients[as].cert, key: pki.clients[as].key });
    const request: ControlPlane['request'] = (path, o = {}) => httpsCall(`${server}${path}`, tlsOf(o.as ?? 'admin'), o);
    const kubectl: ControlPlane['kubectl'] = (args, o = {}) => runKubectl(tools.kubectl, kubeconfigs[o.as ?? 'admin'], join(dir, 'kubectl-cache'), args, o);

    // kube-controller-manager -----------------------------------------------------------------
    const kcmLog = join(dir, 'kube-controller-manager.log');
    await startOnFreePorts(kcmLog, async () => {
      const securePort = await freePort(taken);
      const args = [tools.kubeControllerManager,
        '--kubeconfig', kubeconfigs.controllerManager,
        '--authentication-kubeconfig', kubeconfigs.controllerManager, '--authorization-kubeconfig', kubeconfigs.controllerManager,
        // kube-apiserver has no --requestheader-client-ca-file (no front proxy): without this the
        // controller-manager logs "missing content for CA bundle" errors, retrying, for ever.
        '--authentication-skip-lookup=true',
        '--bind-address', '127.0.0.1', '--secure-port', String(securePort), '--cert-dir', join(dir, 'controller-manager-certs'),
        '--leader-elect=false',
        // Each controller gets its own service account and token, as on a real cluster: the
        // recordings' controller requests come from system:serviceaccount:kube-system:<controller>.
        '--use-service-account-credentials=true',
        '--service-account-private-key-file', pki.serviceAccountKey, '--root-ca-file', pki.caCert,
        '--controllers', (opts.controllers ?? ['*']).join(','),
        ...(opts.controllerManagerArgs ?? []),
      ];
      const p = supervise('kube-controller-manager', args, dir, kcmLog);
      procs.push(p);
      try {
        await waitReady(p, `kube-controller-manager ${KUBERNETES_VERSION}`, readyTimeout, async () => {
          // Its serving certificate is self-signed (written to --cert-dir): not checked.
          const h = await httpsCall(`https://127.0.0.1:${securePort}/healthz`, {}, { timeoutMs: 5000 })
            .catch((e: Error) => ({ status: 0, body: e.message }));
          if (h.status !== 200) return `GET /healthz: ${h.status} ${h.body.slice(-300)}`;
          return controllersWorking(request);
        });
      } catch (e) {
        await stopSupervised(procs.pop());
        throw e;
      }
      return p;
    });

    // The admission webhook, registered as deploy/ ships it -----------------------------------
    let webhook: ControlPlane['webhook'];
    if (opts.admissionWebhook) {
      const hook = await startOnFreePorts(join(dir, 'webhook.log'), () => startWebhook(dir, pki, taken, readyTimeout));
      webhookProc = hook.proc;
      procs.push(webhookProc);
      const configuration = webhookConfiguration(readFileSync(MUTATING_WEBHOOK_MANIFEST, 'utf8'), hook.url, readFileSync(pki.caCert));
      const configurationPath = join(dir, 'mutating-webhook.json');
      writeFileSync(configurationPath, `${JSON.stringify(configuration, null, 2)}\n`);
      const applied = await kubectl(['apply', '-f', configurationPath]);
      if (applied.code !== 0) throw new Error(`kubectl apply -f ${configurationPath} (deploy/base/mutating-webhook.yaml, clientConfig swapped): exit ${applied.code}: ${applied.stderr}`);
      await waitReady(webhookProc, 'the admission webhook to be called by kube-apiserver', readyTimeout, () => webhookCalled(kubectl));
      webhook = { url: hook.url, port: hook.port, configurationPath, configuration, pid: webhookProc.tracked.child!.pid! };
    }

    let stopping: Promise<void> | undefined;
    return {
      server, etcd: etcdUrl, dir, pki, kubeconfigs, tools, files, auditLogPath, webhook,
      logs: { etcd: etcd.logPath, apiserver: apiserverLog, controllerManager: kcmLog, ...(webhookProc ? { webhook: webhookProc.logPath } : {}) },
      readyMs: Date.now() - started,
      kubectl, request,
      stop() {
        stopping ??= stopAll();
        return stopping;
      },
    };
  } catch (e) {
    await stopAll();
    throw e;
  }
}

/**
 * Why the controllers are not working yet, or undefined when they are: the service-account
 * controller has made the `default` ServiceAccount of the `default` namespace, and (with
 * --use-service-account-credentials) the deployment controller's own ServiceAccount exists.
 */
async function controllersWorking(request: ControlPlane['request']): Promise<string | undefined> {
  for (const [ns, name] of [['default', 'default'], ['kube-system', 'deployment-controller'], ['kube-system', 'replicaset-controller']] as const) {
    const r = await request(`/api/v1/namespaces/${ns}/serviceaccounts/${name}`, { timeoutMs: 5000 });
    if (r.status !== 200) return `ServiceAccount ${ns}/${name}: HTTP ${r.status}`;
  }
  return undefined;
}

/** kubectl with the user's kubeconfig and a discovery cache in the temp dir (not ~/.kube/cache). */
function runKubectl(bin: string, kubeconfig: string, cacheDir: string, args: string[], o: { input?: string; timeoutMs?: number }): Promise<KubectlResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, [`--kubeconfig=${kubeconfig}`, `--cache-dir=${cacheDir}`, ...args], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, KUBECONFIG: kubeconfig } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d));
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    const timeoutMs = o.timeoutMs ?? 60_000;
    const t = setTimeout(() => { stderr += `\n[harness] kubectl killed after ${timeoutMs} ms`; child.kill('SIGKILL'); }, timeoutMs);
    child.on('error', (e) => { clearTimeout(t); reject(e); });
    child.on('close', (code) => { clearTimeout(t); resolve({ code, stdout, stderr }); });
    child.stdin.on('error', () => undefined);
    child.stdin.end(o.input ?? '');
  });
}

// ---------------------------------------------------------------------------------------------
// The admission webhook

async function startWebhook(dir: string, pki: Pki, taken: Set<number>, readyTimeout: number): Promise<{ proc: Supervised; url: string; port: number }> {
  const webhookPort = await freePort(taken);
  const logPath = join(dir, 'webhook.log');
  if (!existsSync(CLI)) throw new Error(`the correlate CLI is not built (${CLI} missing): run npm run build`);
  const proc = supervise('correlate-webhook', [process.execPath, CLI, 'webhook', '--cert', pki.webhookCert, '--key', pki.webhookKey, '--host', '127.0.0.1', '--port', String(webhookPort)], dir, logPath);
  const url = `https://127.0.0.1:${webhookPort}`;
  try {
    await waitReady(proc, `correlate webhook (${url})`, readyTimeout, async () => {
      const r = await httpsCall(`${url}/healthz`, { ca: pki.caCert }, { timeoutMs: 2000 });
      return r.status === 200 ? undefined : `GET /healthz: ${r.status}`;
    });
  } catch (e) {
    await stopSupervised(proc);
    throw e;
  }
  return { proc, url, port: webhookPort };
}

/**
 * deploy/base/mutating-webhook.yaml as shipped, with each webhook's `clientConfig` (an in-cluster
 * Service) swapped for `url: <base>/mutate` and the test CA. Rules, selectors, failure policy and
 * timeouts stay as they are: tests measure the webhook as users deploy it.
 */
export function webhookConfiguration(manifestYaml: string, baseUrl: string, caPem: Buffer): Record<string, unknown> {
  const doc = parseYaml(manifestYaml) as { kind?: string; webhooks?: Array<Record<string, unknown>> };
  if (doc.kind !== 'MutatingWebhookConfiguration' || !Array.isArray(doc.webhooks) || doc.webhooks.length === 0) {
    throw new Error(`${MUTATING_WEBHOOK_MANIFEST} is not a MutatingWebhookConfiguration with webhooks`);
  }
  for (const w of doc.webhooks) {
    const cc = w['clientConfig'] as { service?: { path?: string } } | undefined;
    w['clientConfig'] = { url: `${baseUrl}${cc?.service?.path ?? '/mutate'}`, caBundle: caPem.toString('base64') };
  }
  return doc as Record<string, unknown>;
}

/**
 * Undefined once kube-apiserver calls the webhook: a server-side dry-run create of a Deployment in
 * `default` (a root object the shipped rules match; dry runs reach webhooks with sideEffects None)
 * comes back with the webhook's objsetid annotation. kube-apiserver loads new webhook
 * configurations asynchronously, so the first attempts may miss it.
 */
async function webhookCalled(kubectl: ControlPlane['kubectl']): Promise<string | undefined> {
  const name = `kc-webhook-probe-${randomBytes(3).toString('hex')}`;
  const r = await kubectl(['-n', 'default', 'create', 'deployment', name, '--image=registry.invalid/probe:1', '--dry-run=server', '-o', 'json']);
  if (r.code !== 0) return `dry-run create deployment: exit ${r.code}: ${r.stderr.trim()}`;
  const annotations = (JSON.parse(r.stdout) as { metadata?: { annotations?: Record<string, string> } }).metadata?.annotations ?? {};
  return annotations['trace.kubernetes.io/objsetid'] ? undefined : 'a dry-run Deployment came back without trace.kubernetes.io/objsetid';
}

/**
 * The Audit-Id response header of kubectl's request whose log entries mention `method` and `path`
 * (-v=8 logs each response with its headers; klog entries start with a severity and a date).
 */
export function auditIdFromKubectlLog(stderr: string, method: string, path: string): string | undefined {
  const entries = stderr.split(/\n(?=[IWEF]\d{4} )/);
  let found: string | undefined;
  entries.forEach((entry, i) => {
    const m = /Audit-Id:?\s*"?([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})/i.exec(entry);
    if (!m) return;
    // The response entry itself names the request (1.3x: "Response" verb="POST" url=...), older
    // kubectl logs the request line in an entry just before the headers.
    const context = entries.slice(Math.max(0, i - 3), i + 1).join('\n');
    if (context.includes(method) && context.includes(path)) found = m[1];
  });
  return found;
}

// `node test/dist/harness/kube.js build` builds (or finds) the binaries and prints their paths.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href && process.argv[2] === 'build') {
  const t0 = Date.now();
  ensureKubeTools((line) => process.stdout.write(`${line}\n`)).then(
    (t) => { process.stdout.write(`${Object.values(t).join('\n')}\n(${((Date.now() - t0) / 1000).toFixed(1)} s)\n`); },
    (e: unknown) => { process.stderr.write(`${(e as Error).message}\n`); process.exitCode = 1; },
  );
}
