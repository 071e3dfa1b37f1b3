/**
 * A minimal OpenTelemetry Collector (otlp receiver, batch processor, contrib file exporter) for the
 * embedded-mode benchmark (test/bench/embedded.ts), the reference beside `correlate start`: the
 * Jaeger v2 binary has no file exporter.
 *
 * - `ensureOtelcol()` builds test/otelcol (a wrapper module with its own ~50-line main.go, pinned
 *   to the collector versions Jaeger v2.13.0 is built on, so the module download and build share
 *   Jaeger's caches) once into `${XDG_CACHE_HOME:-~/.cache}/kube-correlate/otelcol-<version>/otelcol`,
 *   with the same lock, stamp and failure messages as Jaeger's (go-build.ts, `ensureGoBinary`).
 * - `startOtelcol()` runs it with a config file on free loopback ports and resolves when it logged
 *   that everything started and the OTLP ports accept connections.
 *
 * See test/otelcol/README.md.
 */
import { spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { ensureGoBinary, toolCacheDir } from './go-build.js';
import { freePort, sleep, stopTracked, tail, track, untrack, watchdogLauncher, type Tracked } from './supervise.js';

/** The OpenTelemetry Collector versions built (those of Jaeger v2.13.0: test/harness/jaeger.ts). */
export const OTELCOL_VERSIONS = { core: 'v0.140.0', contrib: 'v0.140.1' } as const;
/** The version the cache is keyed by. */
export const OTELCOL_VERSION = `core-${OTELCOL_VERSIONS.core}-contrib-${OTELCOL_VERSIONS.contrib}`;
/** The wrapper module (main.go, go.mod, go.sum). */
export const OTELCOL_MODULE_DIR = fileURLToPath(new URL('../../otelcol/', import.meta.url));

const BUILD_TIMEOUT_MS = 60 * 60_000;
const READY_TIMEOUT_MS = 60_000;
const READY_LOG_LINE = 'Everything is ready. Begin running and processing data.';

/** `${XDG_CACHE_HOME:-~/.cache}/kube-correlate/otelcol-<version>`. */
export const otelcolCacheDir = (): string => toolCacheDir(`otelcol-${OTELCOL_VERSION}`);

/** The `go` arguments that build the binary to `out` (run in OTELCOL_MODULE_DIR). */
export function otelcolBuildArgs(out: string): string[] {
  return ['build', '-mod=readonly', '-buildvcs=false', '-trimpath', '-ldflags', `-s -w -X main.version=${OTELCOL_VERSION}`, '-o', out, '.'];
}

/** The path of the binary, built on first use; throws (never skips) when `go` is missing or the build fails. */
export function ensureOtelcol(): Promise<string> {
  return ensureGoBinary({
    what: `the OpenTelemetry Collector of test/otelcol (${OTELCOL_VERSION})`, version: OTELCOL_VERSION, cacheDir: otelcolCacheDir(), binName: 'otelcol',
    moduleDir: OTELCOL_MODULE_DIR, minGo: '1.24.6', buildArgs: otelcolBuildArgs, timeoutMs: BUILD_TIMEOUT_MS,
  });
}

export interface OtelcolProcess {
  /** OTLP/gRPC receiver, "host:port". */
  otlpGrpc: string;
  /** OTLP/HTTP receiver, "host:port". */
  otlpHttp: string;
  /** Its temp dir (the log, and whatever the config writes under `$KC_OTELCOL_DIR`); removed by stop(). */
  dir: string;
  logPath: string;
  pid: number;
  /** SIGTERM to the group, SIGKILL after 10 s; removes the dir. Safe to call twice. */
  stop(): Promise<void>;
}

function tcpOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ host: '127.0.0.1', port });
    const done = (ok: boolean) => { sock.destroy(); resolve(ok); };
    sock.setTimeout(1000, () => done(false));
    sock.on('connect', () => done(true));
    sock.on('error', () => done(false));
  });
}

/**
 * Starts the collector with `configFile`, which gets `OTLP_GRPC_ENDPOINT`, `OTLP_HTTP_ENDPOINT`
 * (free loopback ports), `KC_OTELCOL_DIR` (its fresh temp dir) and `env`.
 */
export async function startOtelcol(configFile: string, env: Record<string, string> = {}): Promise<OtelcolProcess> {
  const bin = await ensureOtelcol();
  const dir = mkdtempSync(join(tmpdir(), 'kc-otelcol-'));
  const tracked: Tracked = { child: undefined, dir };
  track(tracked);
  const logPath = join(dir, 'otelcol.log');
  const taken = new Set<number>();
  const grpcPort = await freePort(taken);
  const httpPort = await freePort(taken);
  const out = openSync(logPath, 'a');
  const child = spawn('/bin/sh', ['-c', watchdogLauncher('KC_OTELCOL_DIR'), 'otelcol', bin, '--config', configFile], {
    cwd: dir, detached: true, stdio: ['pipe', out, out],
    env: { ...process.env, KC_OTELCOL_DIR: dir, OTLP_GRPC_ENDPOINT: `127.0.0.1:${grpcPort}`, OTLP_HTTP_ENDPOINT: `127.0.0.1:${httpPort}`, ...env },
  });
  closeSync(out);
  tracked.child = child;
  let exitInfo: string | undefined;
  const exited = new Promise<void>((resolve) => child.on('exit', (code, signal) => { exitInfo = `exited (${signal ?? `code ${code}`})`; resolve(); }));
  child.on('error', (e) => { exitInfo = `could not start: ${e.message}`; });
  child.unref();
  (child.stdin as unknown as { unref?: () => void } | null)?.unref?.();
  child.stdin?.on('error', () => { /* the group is gone */ });
  const stopProcess = () => stopTracked(tracked, exited, 10_000);
  const cleanup = async () => {
    await stopProcess();
    untrack(tracked);
    rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 50 });
  };
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    const log = readFileSync(logPath, 'utf8');
    const problem = exitInfo ?? /\tFailed to start component\t.*/.exec(log)?.[0];
    if (problem || Date.now() > deadline) {
      const why = problem ?? `not ready after ${READY_TIMEOUT_MS} ms`;
      const logTail = tail(logPath);
      await cleanup();
      throw new Error(`the OpenTelemetry Collector (${bin} --config ${configFile}) did not start: ${why}\n--- ${logPath} (tail) ---\n${logTail}`);
    }
    if (log.includes(READY_LOG_LINE) && (await tcpOpen(grpcPort)) && (await tcpOpen(httpPort))) break;
    await sleep(100);
  }
  let stopping: Promise<void> | undefined;
  return {
    otlpGrpc: `127.0.0.1:${grpcPort}`, otlpHttp: `127.0.0.1:${httpPort}`, dir, logPath, pid: child.pid!,
    stop: () => (stopping ??= cleanup()),
  };
}

// `node test/dist/harness/otelcol.js build` builds (or finds) the binary and prints its path.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href && process.argv[2] === 'build') {
  const started = Date.now();
  ensureOtelcol().then(
    (bin) => { process.stdout.write(`${bin}\n(${((Date.now() - started) / 1000).toFixed(1)} s)\n`); },
    (e: unknown) => { process.stderr.write(`${(e as Error).message}\n`); process.exitCode = 1; },
  );
}
