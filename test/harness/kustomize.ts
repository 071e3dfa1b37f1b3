/**
 * A real kustomize binary for the tests that render the deploy manifests (DESIGN.md, "Real
 * components in tests").
 *
 * - `ensureKustomize()` builds `sigs.k8s.io/kustomize/kustomize/v5` with the Go toolchain straight
 *   from the module proxy (`go install <module>@<version>`, checksums verified against the checksum
 *   database as usual), once, into a cache outside the repo
 *   (`${XDG_CACHE_HOME:-~/.cache}/kube-correlate/kustomize-<version>/kustomize`). As for Jaeger, a
 *   stamp file is written after the binary was renamed into place, so an interrupted build is redone,
 *   and a lock keeps concurrent test processes from building into the same place.
 * - `kustomizeBuild(dir)` runs `kustomize build <dir>` and returns the rendered objects.
 *
 * Why v5.8.2 and not v5.8.3 (the newest tag): v5.8.3's go.mod says `go 1.27.0` (this machine has
 * go 1.26 with GOTOOLCHAIN=local, so `go install` refuses it) and it needs
 * `k8s.io/kube-openapi v0.0.0-20261001230523-97fa35140926`, a pseudo-version whose zip the module
 * proxy we can reach refuses (403 "This module version is not available"). v5.8.2 (go 1.26.0,
 * kube-openapi v0.0.0-20260721132016-d427ff9ee9ad, which the proxy serves) builds with the plain
 * `go install` below and nothing patched.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { requireGo, runGo, shellLine } from './go-build.js';
import { killGroup, tail, trackHelper, untrackHelper, withLock } from './supervise.js';

/** The kustomize release that is built (see the file comment for why not v5.8.3). */
export const KUSTOMIZE_VERSION = 'v5.8.2';
/** The main package (and module) that is built. */
export const KUSTOMIZE_PACKAGE = 'sigs.k8s.io/kustomize/kustomize/v5';

const BUILD_TIMEOUT_MS = 20 * 60_000;
const LOCK_WAIT_MS = BUILD_TIMEOUT_MS + 5 * 60_000;
/** `kustomize build` of a test kustomization takes well under a second. */
const RUN_TIMEOUT_MS = 60_000;

// ---------------------------------------------------------------------------------------------
// The build and its cache

/** `${XDG_CACHE_HOME:-~/.cache}/kube-correlate/kustomize-<version>`: the binary, its stamp and the build log. */
export function kustomizeCacheDir(): string {
  const xdg = process.env['XDG_CACHE_HOME'];
  const root = xdg && xdg.startsWith('/') ? xdg : join(homedir(), '.cache');
  return join(root, 'kube-correlate', `kustomize-${KUSTOMIZE_VERSION}`);
}

/** The `go` arguments of the build; `GOBIN` says where the binary goes. */
export function kustomizeBuildArgs(): string[] {
  return ['install', '-trimpath', `${KUSTOMIZE_PACKAGE}@${KUSTOMIZE_VERSION}`];
}

/**
 * The environment of the build: the caller's (GOPROXY, GOFLAGS, GOTOOLCHAIN... as configured),
 * plus CGO_ENABLED=0 (a static binary, no C toolchain needed; upstream's releases are built so) and
 * GOBIN. `go install pkg@version` ignores any go.mod/go.work around it, so the cwd does not matter.
 */
function buildEnv(gobin: string): NodeJS.ProcessEnv {
  return { ...process.env, CGO_ENABLED: '0', GOBIN: gobin };
}

interface Stamp { version: string; package: string }
const expectedStamp = (): Stamp => ({ version: KUSTOMIZE_VERSION, package: KUSTOMIZE_PACKAGE });

function stampIsCurrent(stampPath: string, binPath: string): boolean {
  if (!existsSync(stampPath) || !existsSync(binPath)) return false;
  try {
    const got = JSON.parse(readFileSync(stampPath, 'utf8')) as Record<string, unknown>;
    const want = expectedStamp();
    return got['version'] === want.version && got['package'] === want.package;
  } catch {
    return false;
  }
}

/**
 * The path of the kustomize binary, built on first use (about half a minute with a cold Go build
 * cache). Builds only when the binary or its stamp is missing or names another version; a lock keeps
 * concurrent test processes from building into the same place. Throws (never skips) when the build
 * is needed and `go` is missing or the build fails; the message has the tail of the build output.
 */
export async function ensureKustomize(): Promise<string> {
  const base = kustomizeCacheDir();
  const bin = join(base, 'kustomize');
  const stamp = join(base, 'complete');
  if (stampIsCurrent(stamp, bin)) return bin;
  const goVersion = requireGo(`kustomize ${KUSTOMIZE_VERSION}`, kustomizeCacheDir(), '1.26.0');
  mkdirSync(base, { recursive: true });
  return withLock(join(base, 'lock'), `the build of kustomize ${KUSTOMIZE_VERSION}`, LOCK_WAIT_MS, async () => {
    if (stampIsCurrent(stamp, bin)) return bin; // another process finished it meanwhile
    rmSync(stamp, { force: true });
    rmSync(bin, { force: true });
    for (const e of readdirSync(base)) if (e.startsWith('gobin.tmp-')) rmSync(join(base, e), { recursive: true, force: true });
    // GOBIN is a private dir first: the binary is renamed into place only once the build succeeded.
    const gobin = join(base, `gobin.tmp-${process.pid}`);
    mkdirSync(gobin);
    const built = join(gobin, 'kustomize');
    const logPath = join(base, 'build.log');
    const args = kustomizeBuildArgs();
    const line = `CGO_ENABLED=0 GOBIN=${shellLine([base])} go ${shellLine(args)}`;
    writeFileSync(logPath, `# ${new Date().toISOString()} ${goVersion}\n# ${line}\n`);
    const started = Date.now();
    let code: number | null;
    try {
      code = await runGo(args, { cwd: base, env: buildEnv(gobin), logPath, timeoutMs: BUILD_TIMEOUT_MS });
    } catch (e) {
      rmSync(gobin, { recursive: true, force: true });
      throw new Error(`building kustomize ${KUSTOMIZE_VERSION} failed: could not run go (${(e as Error).message}; ${line})`);
    }
    if (code !== 0 || !existsSync(built)) {
      rmSync(gobin, { recursive: true, force: true });
      throw new Error(
        `building kustomize ${KUSTOMIZE_VERSION} failed (go exited ${code}${code === 0 ? ' but wrote no binary' : ''}; ${line}; log ${logPath}):\n${tail(logPath, 60)}`,
      );
    }
    renameSync(built, bin);
    rmSync(gobin, { recursive: true, force: true });
    const version = spawnSync(bin, ['version'], { encoding: 'utf8' });
    const info = {
      ...expectedStamp(),
      go: goVersion,
      reports: (version.stdout ?? '').trim(),
      buildMs: Date.now() - started,
      bytes: statSync(bin).size,
      at: new Date().toISOString(),
      command: line,
    };
    writeFileSync(`${stamp}.tmp`, `${JSON.stringify(info, null, 2)}\n`);
    renameSync(`${stamp}.tmp`, stamp);
    return bin;
  });
}

// ---------------------------------------------------------------------------------------------
// Running it

/** Runs `kustomize <args>`; resolves with its stdout, rejects with its stderr (and exit status). */
function runKustomize(bin: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    trackHelper(child);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    let timedOut = false;
    const timer = setTimeout(() => { timedOut = true; killGroup(child.pid, 'SIGKILL'); }, RUN_TIMEOUT_MS);
    const done = () => { clearTimeout(timer); untrackHelper(child); };
    child.on('error', (e) => { done(); reject(new Error(`could not run ${bin}: ${e.message}`)); });
    child.on('close', (code, signal) => {
      done();
      const stderr = Buffer.concat(err).toString('utf8').trim();
      if (code === 0) { resolve(Buffer.concat(out).toString('utf8')); return; }
      const how = timedOut ? `timed out after ${RUN_TIMEOUT_MS / 1000} s` : signal ? `killed by ${signal}` : `exit ${code}`;
      reject(new Error(`kustomize ${shellLine(args)} failed (${how}):\n${stderr || '(no stderr)'}`));
    });
  });
}

/**
 * `kustomize build <dir>`: the rendered objects, in kustomize's output order (empty documents
 * skipped). Throws with kustomize's stderr when the build fails, and when the output is not YAML.
 */
export async function kustomizeBuild(dir: string): Promise<unknown[]> {
  const bin = await ensureKustomize();
  const yaml = await runKustomize(bin, ['build', dir]);
  const objects: unknown[] = [];
  for (const doc of parseAllDocuments(yaml)) {
    if (doc.errors.length) throw new Error(`kustomize build ${dir}: output is not valid YAML: ${doc.errors.map((e) => e.message).join('; ')}`);
    if (doc.contents === null) continue;
    let obj: unknown;
    try {
      obj = doc.toJS();
    } catch (e) {
      throw new Error(`kustomize build ${dir}: cannot read a document of its output: ${(e as Error).message}`);
    }
    if (obj === null || obj === undefined) continue;
    objects.push(obj);
  }
  return objects;
}

// `node test/dist/harness/kustomize.js build` builds (or finds) the binary and prints its path.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href && process.argv[2] === 'build') {
  const started = Date.now();
  ensureKustomize().then(
    (bin) => { process.stdout.write(`${bin}\n(${((Date.now() - started) / 1000).toFixed(1)} s)\n`); },
    (e: unknown) => { process.stderr.write(`${(e as Error).message}\n`); process.exitCode = 1; },
  );
}
