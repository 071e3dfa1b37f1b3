import { spawn, spawnSync } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { killGroup, trackHelper, untrackHelper } from './supervise.js';

/**
 * What the harnesses that build a tool from the Go module proxy share (Jaeger, kustomize): the
 * check that `go` is there, and a build run in its own process group, logged to a file, killed on
 * timeout or when the test process exits.
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
