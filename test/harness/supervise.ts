/**
 * What the harnesses that start real components (Kafka brokers, Jaeger) share: a directory lock for
 * one-time downloads and builds, log tails for error messages, and supervision of child processes
 * so none outlives the test process, however it ends.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function pidAlive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch (e) { return (e as NodeJS.ErrnoException).code === 'EPERM'; }
}

/** A directory lock (mkdir is atomic) with the owner's pid inside; a dead owner's lock is taken over. */
export async function withLock<T>(lockDir: string, what: string, waitMs: number, fn: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    try {
      mkdirSync(lockDir);
      writeFileSync(join(lockDir, 'pid'), String(process.pid));
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      let owner = NaN;
      try { owner = Number(readFileSync(join(lockDir, 'pid'), 'utf8')); } catch { /* being created */ }
      let age = 0;
      try { age = Date.now() - statSync(lockDir).mtimeMs; } catch { continue; }
      const stale = Number.isInteger(owner) && owner > 0 ? !pidAlive(owner) : age > 30_000;
      if (stale) { rmSync(lockDir, { recursive: true, force: true }); continue; }
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (lock ${lockDir} held by pid ${owner})`);
      await sleep(500);
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(lockDir, { recursive: true, force: true });
  }
}

/** The last lines of a log, for error messages. */
export function tail(path: string, lines = 40): string {
  try {
    return readFileSync(path, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return `(no ${path})`;
  }
}

export function killGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (!pid) return;
  try { process.kill(-pid, signal); } catch { /* already gone */ }
}

/**
 * Stops a spawned `correlate` process as an operator would: SIGTERM, up to `graceMs` for it to exit,
 * then SIGKILL to its group (its watchdog included). The timer is cleared, so it does not hold
 * the test process after the last test.
 */
export async function stopGracefully(child: ChildProcess, exited: Promise<unknown>, graceMs = 20_000): Promise<void> {
  child.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([exited, new Promise((r) => { timer = setTimeout(r, graceMs); })]);
  clearTimeout(timer);
  killGroup(child.pid, 'SIGKILL');
}

/** A supervised process (its group) and its temp dir, killed and removed when this process exits. */
export interface Tracked { child: ChildProcess | undefined; dir: string }
const live = new Set<Tracked>();
/** Processes without a dir (builds), killed (process group) when this process exits. */
const helpers = new Set<ChildProcess>();
let hooksInstalled = false;

function cleanupAllSync(): void {
  for (const b of helpers) killGroup(b.pid, 'SIGKILL');
  helpers.clear();
  for (const t of live) {
    killGroup(t.child?.pid, 'SIGKILL');
    rmSync(t.dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 50 });
  }
  live.clear();
}

function installExitHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', cleanupAllSync);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = () => {
      cleanupAllSync();
      process.off(sig, onSignal);
      // Die of the signal as we would have without this handler, unless someone else handles it.
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
    };
    process.on(sig, onSignal);
  }
}

export function track(t: Tracked): void {
  live.add(t);
  installExitHooks();
}
export function untrack(t: Tracked): void {
  live.delete(t);
}
export function trackHelper(child: ChildProcess): void {
  helpers.add(child);
  installExitHooks();
}
export function untrackHelper(child: ChildProcess): void {
  helpers.delete(child);
}

/**
 * `sh -c` script that runs "$@" in its own process group next to a watchdog holding a pipe from
 * this process. If this process dies without running its exit hooks (SIGKILL, e.g. test/run.mjs's
 * per-file timeout), the pipe closes and the watchdog stops the program (SIGTERM, SIGKILL after
 * 5 s) and removes the temp dir named by `$<dirVar>`. The watchdog ignores SIGTERM so that it
 * outlives a graceful stop; callers SIGKILL the group, watchdog included, afterwards. `$$` in the
 * subshell is the launcher's pid, which `exec` makes the program's (child.pid is the pgid).
 */
export function watchdogLauncher(dirVar: string): string {
  return [
    'exec 3<&0',
    '( trap "" TERM INT HUP; cat <&3 >/dev/null; kill -TERM $$ 2>/dev/null; i=0;',
    '  while kill -0 $$ 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done;',
    `  kill -KILL $$ 2>/dev/null; sleep 0.2; rm -rf "$${dirVar}" ) &`,
    'exec "$@" </dev/null 3<&-',
  ].join('\n');
}

/** A loopback port that was free a moment ago (and is not in `taken`, which it joins). */
export async function freePort(taken: Set<number> = new Set()): Promise<number> {
  for (;;) {
    const s = createServer();
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    const port = (s.address() as { port: number }).port;
    await new Promise((r) => s.close(r));
    if (!taken.has(port)) {
      taken.add(port);
      return port;
    }
  }
}

/**
 * Stops a supervised program: SIGTERM to its group, SIGKILL after `graceMs`, then SIGKILL again for
 * the watchdog, and forgets the child. `exited` resolves when the program has exited. A program
 * already gone only has its watchdog killed.
 */
export async function stopTracked(tracked: Tracked, exited: Promise<void>, graceMs: number): Promise<void> {
  const child = tracked.child;
  if (!child || child.exitCode !== null || child.signalCode !== null || !child.pid) {
    killGroup(child?.pid, 'SIGKILL'); // the watchdog, if still there
    tracked.child = undefined;
    return;
  }
  killGroup(child.pid, 'SIGTERM');
  // A ref'd timer: it also keeps this process alive while we wait for the (unref'd) child.
  let timer: NodeJS.Timeout | undefined;
  const grace = new Promise<'timeout'>((r) => { timer = setTimeout(() => r('timeout'), graceMs); });
  const how = await Promise.race([exited.then(() => 'exited' as const), grace]);
  clearTimeout(timer);
  if (how === 'timeout') {
    killGroup(child.pid, 'SIGKILL');
    // The child is unref'd: without a ref'd timer the event loop could end before its exit event.
    const keepAlive = setInterval(() => undefined, 1000);
    await exited;
    clearInterval(keepAlive);
  }
  killGroup(child.pid, 'SIGKILL'); // the watchdog
  child.stdin?.destroy();
  tracked.child = undefined;
}
