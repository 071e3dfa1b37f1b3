import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { killGroup, tail, trackHelper, untrackHelper, withLock } from './supervise.js';

/**
 * What the harnesses that build a tool from the Go module proxy share (Jaeger, the benchmarks'
 * OpenTelemetry Collector, kustomize, Kubernetes): the check that `go` is there, a build run in its
 * own process group, logged to a file, killed on timeout or when the test process exits, and
 * (`ensureGoBinary`) the cache of a binary built from a wrapper module: lock, stamp, tmp + rename.
 */

/** The `go version` line; throws naming what is missing and what needs it. Under CI as anywhere else: this fails, it never skips. */
export function requireGo(what: string, cacheDir: string, minGo: string): string {
  const r = spawnSync('go', ['version'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    throw new Error(
      `${what} is not in the cache (${cacheDir}) and building it needs the Go toolchain (go ${minGo} or newer), ` +
      `but \`go\` could not be run${r.error ? ` (${(r.error as NodeJS.ErrnoException).code ?? r.error.message})` : ` (exit ${r.status}: ${r.stderr.trim()})`}. ` +
      'Install Go (https://go.dev/dl/, or Debian/Ubuntu `apt-get install -y golang-go` if recent enough), put `go` on PATH, ' +
      'and make sure the Go module proxy (GOPROXY, default https://proxy.golang.org) is reachable.',
    );
  }
  return r.stdout.trim();
}

/** For logs and error messages: the command as one could paste it into a POSIX shell. */
export const shellLine = (args: string[]): string => args.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');

/** Runs `go <args>` in `cwd`, its output appended to `logPath`; resolves with the exit code. */
export function runGo(args: string[], opts: { cwd: string; env: NodeJS.ProcessEnv; logPath: string; timeoutMs: number }): Promise<number | null> {
  return new Promise((resolve, reject) => {
    const log = openSync(opts.logPath, 'a');
    // Its own process group, so that the exit hooks can stop go and the compilers it runs.
    const child = spawn('go', args, { cwd: opts.cwd, env: opts.env, stdio: ['ignore', log, log], detached: true });
    closeSync(log);
    trackHelper(child);
    const timer = setTimeout(() => killGroup(child.pid, 'SIGKILL'), opts.timeoutMs);
    const done = () => { clearTimeout(timer); untrackHelper(child); };
    child.on('error', (e) => { done(); reject(e); });
    child.on('close', (code) => { done(); resolve(code); });
  });
}

/** `${XDG_CACHE_HOME:-~/.cache}/kube-correlate/<name>`: where the built tools are cached. */
export function toolCacheDir(name: string): string {
  const xdg = process.env['XDG_CACHE_HOME'];
  const root = xdg && xdg.startsWith('/') ? xdg : join(homedir(), '.cache');
  return join(root, 'kube-correlate', name);
}

/** A binary built with `go build` from a wrapper module in this repository and cached outside it. */
export interface CachedGoBinary {
  /** For messages: "Jaeger v2.13.0". */
  what: string;
  /** The version the stamp is keyed by (with the module files' hash and the Go version). */
  version: string;
  /** The cache directory (toolCacheDir(...)): the binary, `complete` (the stamp), `build.log`, `lock/`. */
  cacheDir: string;
  /** The binary's file name in cacheDir. */
  binName: string;
  /** The wrapper module: the build's working directory; its go.mod and go.sum are hashed into the stamp. */
  moduleDir: string;
  /** The oldest Go that builds it (named when `go` is missing). */
  minGo: string;
  /** The `go` arguments that build to `out` (with CGO_ENABLED=0). */
  buildArgs(out: string): string[];
  /** Further fields written to the stamp that must match (e.g. the module version). */
  stampExtra?: Record<string, string>;
  timeoutMs: number;
}

function moduleHash(moduleDir: string): string {
  const h = createHash('sha256');
  for (const f of ['go.mod', 'go.sum']) h.update(readFileSync(join(moduleDir, f)));
  return h.digest('hex');
}

/** The `go version` line, or undefined when `go` cannot be run. */
function goVersionOrUndefined(): string | undefined {
  const r = spawnSync('go', ['version'], { encoding: 'utf8' });
  return r.error || r.status !== 0 ? undefined : r.stdout.trim();
}

/**
 * Whether the cached binary is current: binary and stamp present, the stamp naming this version,
 * these module files (sha256 of go.mod + go.sum) and the extra fields, and the Go version of the
 * toolchain on PATH (when there is none, a binary built by any Go is kept: it runs without Go).
 */
function stampIsCurrent(b: CachedGoBinary, stampPath: string, binPath: string, goVersion: string | undefined): boolean {
  if (!existsSync(stampPath) || !existsSync(binPath)) return false;
  try {
    const got = JSON.parse(readFileSync(stampPath, 'utf8')) as Record<string, unknown>;
    if (got['version'] !== b.version || got['modHash'] !== moduleHash(b.moduleDir)) return false;
    if (goVersion !== undefined && got['go'] !== goVersion) return false;
    return Object.entries(b.stampExtra ?? {}).every(([k, v]) => got[k] === v);
  } catch {
    return false;
  }
}

/**
 * The path of the binary, built on first use (Jaeger, the benchmarks' OpenTelemetry Collector).
 * Builds only when the binary or its stamp is missing or the stamp does not match (version, module
 * files, Go version); a lock keeps concurrent processes from building into the same place; the
 * build writes to `<bin>.tmp-<pid>`, renamed into place before the stamp is written, so an
 * interrupted build leaves no stamp and is redone. Throws (never skips, under CI=true as anywhere
 * else) when a build is needed and `go` is missing or the build fails, with the end of its log.
 */
export async function ensureGoBinary(b: CachedGoBinary): Promise<string> {
  const bin = join(b.cacheDir, b.binName);
  const stamp = join(b.cacheDir, 'complete');
  const goNow = goVersionOrUndefined();
  if (stampIsCurrent(b, stamp, bin, goNow)) return bin;
  const goVersion = requireGo(b.what, b.cacheDir, b.minGo);
  mkdirSync(b.cacheDir, { recursive: true });
  return withLock(join(b.cacheDir, 'lock'), `the build of ${b.what}`, b.timeoutMs + 5 * 60_000, async () => {
    if (stampIsCurrent(b, stamp, bin, goVersion)) return bin; // another process finished it meanwhile
    rmSync(stamp, { force: true });
    rmSync(bin, { force: true });
    for (const e of readdirSync(b.cacheDir)) if (e.startsWith(`${b.binName}.tmp-`)) rmSync(join(b.cacheDir, e), { force: true });
    const tmp = join(b.cacheDir, `${b.binName}.tmp-${process.pid}`);
    const logPath = join(b.cacheDir, 'build.log');
    const args = b.buildArgs(tmp);
    const line = `cd ${shellLine([b.moduleDir])} && CGO_ENABLED=0 go ${shellLine(args)}`;
    writeFileSync(logPath, `# ${new Date().toISOString()} ${goVersion}\n# ${line}\n`);
    const started = Date.now();
    let code: number | null;
    try {
      code = await runGo(args, { cwd: b.moduleDir, env: { ...process.env, CGO_ENABLED: '0' }, logPath, timeoutMs: b.timeoutMs });
    } catch (e) {
      rmSync(tmp, { force: true });
      throw new Error(`building ${b.what} failed: could not run go (${(e as Error).message}; ${line})`);
    }
    if (code !== 0 || !existsSync(tmp)) {
      rmSync(tmp, { force: true });
      throw new Error(`building ${b.what} failed (go exited ${code ?? 'on a signal (timeout?)'}${code === 0 ? ' but wrote no binary' : ''}; ${line}; log ${logPath}):\n${tail(logPath, 60)}`);
    }
    renameSync(tmp, bin);
    const info = {
      version: b.version, modHash: moduleHash(b.moduleDir), ...b.stampExtra, go: goVersion,
      buildMs: Date.now() - started, bytes: statSync(bin).size, at: new Date().toISOString(), command: ['go', ...b.buildArgs(bin)],
    };
    writeFileSync(`${stamp}.tmp`, `${JSON.stringify(info, null, 2)}\n`);
    renameSync(`${stamp}.tmp`, stamp);
    return bin;
  });
}
