/**
 * A real Jaeger v2 binary for the end-to-end tests (DESIGN.md, "Real components in tests").
 *
 * - `ensureJaeger()` builds `github.com/jaegertracing/jaeger/cmd/jaeger` with the Go toolchain from
 *   the wrapper module in test/jaeger (go.mod + go.sum pin the version), once, into a cache outside
 *   the repo (`${XDG_CACHE_HOME:-~/.cache}/kube-correlate/jaeger-<version>/jaeger`). A stamp file
 *   is written after the binary was renamed into place, so an interrupted build is redone.
 * - `startJaeger()` writes a Jaeger v2 (OpenTelemetry Collector) config with in-memory storage and
 *   free loopback ports into a temp dir, starts the binary, and resolves when the query API answers
 *   and the OTLP receivers accept connections. With `kafka`, a kafka receiver feeds the same
 *   traces pipeline.
 * - Every Jaeger started here serves the real Jaeger UI (jaeger-ui v1.76.0, the UI of v2.13.0) from
 *   `../shared/jaeger-ui/build` (or `$KC_JAEGER_UI_ASSETS`) with `jaeger_query.ui.assets_path`: the
 *   Go-built binary embeds only a placeholder page. A missing build fails the start with a message
 *   saying where it was looked for (never a skip).
 * - `getTraceV3()` reads a trace back through the query service's `/api/v3/traces/{id}`.
 *
 * Nothing here mocks Jaeger. See test/jaeger/README.md for the version, build and config keys.
 */
import { spawn } from 'node:child_process';
import {
  closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync,
} from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { ensureGoBinary, toolCacheDir } from './go-build.js';
import { freePort, sleep, stopTracked, tail, track, untrack, watchdogLauncher, type Tracked } from './supervise.js';
import { ROOT } from './index.js';

/** The Jaeger release (v2 line). */
export const JAEGER_VERSION = 'v2.13.0';
/** The Go module version of that release: v2 tags cannot be named through the module path, its paired v1 tag can. */
export const JAEGER_MODULE_VERSION = 'v1.76.0';
/** The OpenTelemetry Collector versions Jaeger v2.13.0 is built on (core / contrib). */
export const JAEGER_COLLECTOR_VERSIONS = { core: 'v0.140.0 (stable modules v1.46.0)', contrib: 'v0.140.1' } as const;
/** The main package that is built. */
export const JAEGER_PACKAGE = 'github.com/jaegertracing/jaeger/cmd/jaeger';
/** The wrapper module (go.mod, go.sum) the binary is built from. */
export const JAEGER_MODULE_DIR = fileURLToPath(new URL('../../jaeger/', import.meta.url));

const READY_TIMEOUT_MS = 60_000;
/** What the collector service logs when all its components have started. */
const READY_LOG_LINE = 'Everything is ready. Begin running and processing data.';
const STOP_GRACE_MS = 10_000;
const BUILD_TIMEOUT_MS = 60 * 60_000;

// ---------------------------------------------------------------------------------------------
// The build and its cache

/** `${XDG_CACHE_HOME:-~/.cache}/kube-correlate/jaeger-<version>`: the binary, its stamp and the build log. */
export function jaegerCacheDir(): string {
  return toolCacheDir(`jaeger-${JAEGER_VERSION}`);
}

/** The `go` arguments that build the binary to `out` (run in JAEGER_MODULE_DIR; also in test/jaeger/README.md). */
export function jaegerBuildArgs(out: string): string[] {
  const v = 'github.com/jaegertracing/jaeger/internal/version';
  return [
    'build', '-mod=readonly', '-buildvcs=false', '-trimpath',
    // As upstream's Makefile does (BUILD_INFO_V2), so `jaeger version` tells what this is.
    '-ldflags', `-s -w -X ${v}.latestVersion=${JAEGER_VERSION} -X ${v}.commitSHA=module-${JAEGER_MODULE_VERSION}`,
    '-o', out, JAEGER_PACKAGE,
  ];
}

/**
 * The path of the Jaeger binary, built on first use (several minutes: see test/jaeger/README.md)
 * by `ensureGoBinary` (go-build.ts): only when the binary or its stamp is missing or the stamp does
 * not match the version, test/jaeger's go.mod/go.sum or the Go version; upstream builds with
 * CGO_ENABLED=0 (no C toolchain needed). Throws (never skips) when the build is needed and `go` is
 * missing or the build fails.
 */
export function ensureJaeger(): Promise<string> {
  return ensureGoBinary({
    what: `Jaeger ${JAEGER_VERSION}`, version: JAEGER_VERSION, cacheDir: jaegerCacheDir(), binName: 'jaeger',
    moduleDir: JAEGER_MODULE_DIR, minGo: '1.24.6', buildArgs: jaegerBuildArgs, stampExtra: { module: JAEGER_MODULE_VERSION },
    timeoutMs: BUILD_TIMEOUT_MS,
  });
}

// ---------------------------------------------------------------------------------------------
// The UI assets

/**
 * The real Jaeger UI's built assets (../shared/jaeger-ui/README.md: jaeger-ui v1.76.0, the UI of
 * Jaeger v2.13.0), served with `jaeger_query.ui.assets_path`: beside the shared data
 * (`$KC_SHARED_DATA/../jaeger-ui/build`); `$KC_JAEGER_UI_ASSETS` overrides.
 */
export function jaegerUiAssets(): string {
  // Beside the shared data (../shared/data, or $KC_SHARED_DATA) unless told otherwise.
  const shared = process.env['KC_SHARED_DATA'] ? join(process.env['KC_SHARED_DATA'], '..') : join(ROOT, '..', 'shared');
  const dir = process.env['KC_JAEGER_UI_ASSETS'] ?? join(shared, 'jaeger-ui', 'build');
  if (!existsSync(join(dir, 'index.html'))) {
    throw new Error(`the Jaeger UI assets are missing: ${join(dir, 'index.html')} not found. Every Jaeger the tests start serves the real UI (the Go-built binary has only a placeholder page): put the jaeger-ui v1.76.0 build there (../shared/jaeger-ui/README.md says how it was built) or set KC_JAEGER_UI_ASSETS to its build directory`);
  }
  return dir;
}

// ---------------------------------------------------------------------------------------------
// The Jaeger process

export interface JaegerKafkaOptions {
  /** Bootstrap servers, comma-separated ("127.0.0.1:9092,127.0.0.1:9093"). */
  brokers: string;
  topic: string;
  /** kafka receiver encoding; default `otlp_proto`. */
  encoding?: string;
  /** Consumer group; default `kube-correlate-jaeger-<pid>-<time>` (a fresh group per start). */
  groupId?: string;
  /** Where a new group starts; default `earliest`. */
  initialOffset?: 'earliest' | 'latest';
}

/** Jaeger as an OpenTelemetry Collector writing what its OTLP receiver gets to Kafka. */
export interface JaegerKafkaExporterOptions {
  brokers: string;
  topic: string;
  /** Default `otlp_proto`. */
  encoding?: string;
  /** One trace per message keyed by trace id. Default true. */
  partitionTracesById?: boolean;
}

export interface StartJaegerOptions {
  /** Also consume traces from Kafka (collector-contrib kafka receiver) into the same pipeline. */
  kafka?: JaegerKafkaOptions;
  /** Also export what the OTLP receiver gets to Kafka (collector-contrib kafka exporter). */
  kafkaExporter?: JaegerKafkaExporterOptions;
  /** `jaeger_storage.backends.<name>.memory.max_traces`; default 100000. */
  maxTraces?: number;
  /** `service.telemetry.logs.level`; default `info`. */
  logLevel?: 'debug' | 'info' | 'warn' | 'error';
  /** `jaeger_query.ui.config_file`: the UI configuration (deploy/components/jaeger/ui-config.json), injected into GET /. */
  uiConfigFile?: string;
  /**
   * Run this config file instead of the generated one (a plain OpenTelemetry Collector config, e.g.
   * collector-config/otelcol/apiserver-to-kafka.yaml, or deploy/components/jaeger/config.yaml). It
   * gets the free ports as `OTLP_GRPC_ENDPOINT`, `OTLP_HTTP_ENDPOINT`, `QUERY_HTTP_ENDPOINT`,
   * `QUERY_GRPC_ENDPOINT`, the UI assets as `JAEGER_UI_ASSETS` (deploy/components/jaeger/config.yaml's
   * `ui.assets_path`), plus `env`; readiness is the collector's ready log line and open OTLP
   * ports (a plain collector config has no query service: queryHttp/queryGrpc are then unusable).
   */
  configFile?: string;
  env?: Record<string, string>;
}

export interface JaegerProcess {
  /** OTLP/gRPC receiver, "host:port". */
  otlpGrpc: string;
  /** OTLP/HTTP receiver, "http://host:port" (POST /v1/traces). */
  otlpHttp: string;
  /** Query service HTTP, "http://host:port": /api/v3/..., /api/... (v1 JSON API) and the UI. */
  queryHttp: string;
  /** Query service gRPC (api_v2 and api_v3), "host:port". */
  queryGrpc: string;
  /** The config the process was started with. */
  configPath: string;
  /** Everything the process wrote (stdout and stderr). */
  logPath: string;
  /** The temp dir with the config and the log; removed by stop(). */
  dir: string;
  /** Milliseconds from spawn to ready. */
  readyMs: number;
  /** The Jaeger process's pid (the launcher execs it), for CPU and memory figures in benchmarks. */
  pid: number;
  /** SIGTERM to the process group, SIGKILL after 10 s; removes the temp dir. Safe to call twice. */
  stop(): Promise<void>;
}

const STORE = 'kc_memstore';

/** The Jaeger v2 config (OpenTelemetry Collector format). JSON-quoted scalars are valid YAML. */
export function jaegerConfigYaml(o: {
  otlpGrpcPort: number; otlpHttpPort: number; queryHttpPort: number; queryGrpcPort: number;
  maxTraces?: number; logLevel?: string; kafka?: JaegerKafkaOptions; kafkaGroupId?: string; kafkaExporter?: JaegerKafkaExporterOptions; uiConfigFile?: string;
  /** `jaeger_query.ui.assets_path`: the real UI's build (jaegerUiAssets()). */
  uiAssets: string;
}): string {
  const ke = o.kafkaExporter;
  const q = (s: string) => JSON.stringify(s);
  const kafka = o.kafka;
  const brokers = kafka ? kafka.brokers.split(',').map((b) => b.trim()).filter(Boolean) : [];
  return `# Written by test/harness/jaeger.ts for Jaeger ${JAEGER_VERSION}.
extensions:
  jaeger_storage:
    backends:
      ${STORE}:
        memory:
          max_traces: ${o.maxTraces ?? 100_000}
  jaeger_query:
    storage:
      traces: ${STORE}
    # v2 turns on self-tracing of the query service by default; keep the store to what tests send.
    enable_tracing: false
    http:
      endpoint: ${q(`127.0.0.1:${o.queryHttpPort}`)}
    grpc:
      endpoint: ${q(`127.0.0.1:${o.queryGrpcPort}`)}
    ui:
      # The real UI (the Go-built binary embeds only a placeholder page).
      assets_path: ${q(o.uiAssets)}
${o.uiConfigFile ? `      config_file: ${q(o.uiConfigFile)}
` : ''}
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: ${q(`127.0.0.1:${o.otlpGrpcPort}`)}
      http:
        endpoint: ${q(`127.0.0.1:${o.otlpHttpPort}`)}
${kafka ? `  kafka:
    brokers: [${brokers.map(q).join(', ')}]
    client_id: "kube-correlate-jaeger"
    group_id: ${q(o.kafkaGroupId ?? 'kube-correlate-jaeger')}
    initial_offset: ${q(kafka.initialOffset ?? 'earliest')}
    traces:
      topic: ${q(kafka.topic)}
      encoding: ${q(kafka.encoding ?? 'otlp_proto')}
` : ''}
exporters:
  jaeger_storage_exporter:
    trace_storage: ${STORE}
${ke ? `  kafka:
    brokers: [${ke.brokers.split(',').map((b) => q(b.trim())).join(', ')}]
    client_id: "kube-correlate-jaeger-exporter"
    partition_traces_by_id: ${ke.partitionTracesById ?? true}
    traces:
      topic: ${q(ke.topic)}
      encoding: ${q(ke.encoding ?? 'otlp_proto')}
` : ''}
service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp${kafka ? ', kafka' : ''}]
      exporters: [jaeger_storage_exporter]
${ke ? `    traces/kafka:
      receivers: [otlp]
      exporters: [kafka]
` : ''}
  telemetry:
    metrics:
      # No internal metrics endpoint (the default would listen on :8888).
      level: none
    logs:
      level: ${o.logLevel ?? 'info'}
`;
}

function tcpOpen(port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ host: '127.0.0.1', port });
    const done = (ok: boolean) => { sock.destroy(); resolve(ok); };
    sock.setTimeout(timeoutMs, () => done(false));
    sock.on('connect', () => done(true));
    sock.on('error', () => done(false));
  });
}

/** Starts Jaeger with in-memory storage on free loopback ports; resolves when it is ready. */
export async function startJaeger(opts: StartJaegerOptions = {}): Promise<JaegerProcess> {
  const bin = await ensureJaeger();
  const uiAssets = jaegerUiAssets();
  const dir = mkdtempSync(join(tmpdir(), 'kc-jaeger-'));
  const tracked: Tracked = { child: undefined, dir };
  track(tracked);

  const configPath = join(dir, 'config.yaml');
  const logPath = join(dir, 'jaeger.log');
  const kafkaGroupId = opts.kafka ? (opts.kafka.groupId ?? `kube-correlate-jaeger-${process.pid}-${Date.now().toString(36)}`) : undefined;
  let ports = { otlpGrpcPort: 0, otlpHttpPort: 0, queryHttpPort: 0, queryGrpcPort: 0 };
  let exitInfo: string | undefined;
  let exited: Promise<void> = Promise.resolve();
  let readyMs = 0;

  const failWith = (what: string, cause: string): Error =>
    new Error(`${what} (Jaeger ${JAEGER_VERSION}, ${dir}): ${cause}\n--- ${logPath} (tail) ---\n${tail(logPath)}`);

  const stopProcess = (): Promise<void> => stopTracked(tracked, exited, STOP_GRACE_MS);

  const spawnJaeger = async (): Promise<void> => {
    const taken = new Set<number>();
    ports = { otlpGrpcPort: await freePort(taken), otlpHttpPort: await freePort(taken), queryHttpPort: await freePort(taken), queryGrpcPort: await freePort(taken) };
    if (!opts.configFile) writeFileSync(configPath, jaegerConfigYaml({ ...ports, maxTraces: opts.maxTraces, logLevel: opts.logLevel, kafka: opts.kafka, kafkaGroupId, kafkaExporter: opts.kafkaExporter, uiConfigFile: opts.uiConfigFile, uiAssets }));
    const env = {
      ...process.env, KC_JAEGER_DIR: dir,
      OTLP_GRPC_ENDPOINT: `127.0.0.1:${ports.otlpGrpcPort}`, OTLP_HTTP_ENDPOINT: `127.0.0.1:${ports.otlpHttpPort}`,
      QUERY_HTTP_ENDPOINT: `127.0.0.1:${ports.queryHttpPort}`, QUERY_GRPC_ENDPOINT: `127.0.0.1:${ports.queryGrpcPort}`,
      JAEGER_UI_ASSETS: uiAssets,
      ...opts.env,
    };
    // The log is appended to across attempts: readiness looks only at what this attempt wrote.
    const logStart = existsSync(logPath) ? statSync(logPath).size : 0;
    const thisLog = () => readFileSync(logPath).subarray(logStart).toString('utf8');
    const out = openSync(logPath, 'a');
    const started = Date.now();
    const child = spawn('/bin/sh', ['-c', watchdogLauncher('KC_JAEGER_DIR'), 'jaeger', bin, '--config', opts.configFile ?? configPath], { cwd: dir, detached: true, stdio: ['pipe', out, out], env });
    closeSync(out);
    tracked.child = child;
    exitInfo = undefined;
    exited = new Promise<void>((resolve) => child.on('exit', (code, signal) => {
      exitInfo = `the jaeger process exited (${signal ?? `code ${code}`})`;
      resolve();
    }));
    child.on('error', (e) => { exitInfo = `could not start jaeger: ${e.message}`; });
    // Neither the child nor the watchdog pipe keeps the test process alive; the exit hook kills them.
    child.unref();
    (child.stdin as unknown as { unref?: () => void } | null)?.unref?.();
    child.stdin?.on('error', () => { /* the group is gone */ });

    const queryHttp = `http://127.0.0.1:${ports.queryHttpPort}`;
    const deadline = started + READY_TIMEOUT_MS;
    let last = 'no attempt yet';
    for (;;) {
      if (exitInfo) { await stopProcess(); throw failWith('Jaeger did not start', exitInfo); }
      // A component whose Start fails makes the collector shut down, which can hang (the v0.140
      // franz-go kafka receiver waits for a consume loop that never started): fail at once.
      const failed = /\tFailed to start component\t.*/.exec(thisLog());
      if (failed) { await stopProcess(); throw failWith('Jaeger did not start', failed[0].slice(0, 1000)); }
      try {
        const res = opts.configFile ? undefined : await fetch(`${queryHttp}/api/v3/services`, { signal: AbortSignal.timeout(2000) });
        await res?.arrayBuffer();
        if (res && !res.ok) last = `GET /api/v3/services: HTTP ${res.status}`;
        // The collector logs this once every component started (the receivers start after the
        // extensions, so the query API alone does not prove the kafka receiver is up).
        else if (!thisLog().includes(READY_LOG_LINE)) last = `no "${READY_LOG_LINE}" in the log yet`;
        else if (!(await tcpOpen(ports.otlpHttpPort))) last = 'OTLP/HTTP port not accepting yet';
        else if (!(await tcpOpen(ports.otlpGrpcPort))) last = 'OTLP/gRPC port not accepting yet';
        else break;
      } catch (e) {
        last = `GET /api/v3/services: ${(e as Error).message}`;
      }
      if (Date.now() > deadline) {
        await stopProcess();
        throw failWith(`Jaeger not ready after ${READY_TIMEOUT_MS} ms`, `last: ${last}`);
      }
      await sleep(100);
    }
    readyMs = Date.now() - started;
  };

  try {
    // If a port we picked was taken in the meantime, pick new ones.
    for (let attempt = 1; ; attempt++) {
      try {
        await spawnJaeger();
        break;
      } catch (e) {
        if (!/address already in use/i.test(tail(logPath, 200)) || attempt >= 3) throw e;
        writeFileSync(logPath, `${readFileSync(logPath, 'utf8')}\n# [harness] port clash, retrying with new ports (attempt ${attempt + 1})\n`);
      }
    }
  } catch (e) {
    await stopProcess();
    untrack(tracked);
    rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 50 });
    throw e;
  }

  let stopping: Promise<void> | undefined;
  return {
    otlpGrpc: `127.0.0.1:${ports.otlpGrpcPort}`,
    otlpHttp: `http://127.0.0.1:${ports.otlpHttpPort}`,
    queryHttp: `http://127.0.0.1:${ports.queryHttpPort}`,
    queryGrpc: `127.0.0.1:${ports.queryGrpcPort}`,
    configPath: opts.configFile ?? configPath,
    logPath,
    dir,
    readyMs,
    pid: tracked.child!.pid!,
    stop() {
      stopping ??= (async () => {
        await stopProcess();
        untrack(tracked);
        rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 50 });
      })();
      return stopping;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Reading traces back

/**
 * GET `/api/v3/traces/{traceId}` (32 hex chars): the parsed JSON, `{ result: { resourceSpans: [...] } }`
 * (OTLP/JSON; ids as hex strings), or undefined when Jaeger has no such trace (404).
 */
export async function getTraceV3(queryHttp: string, traceId: string): Promise<unknown | undefined> {
  const res = await fetch(`${queryHttp.replace(/\/$/, '')}/api/v3/traces/${encodeURIComponent(traceId)}`, { signal: AbortSignal.timeout(10_000) });
  const body = await res.text();
  if (res.status === 404) return undefined;
  if (!res.ok) throw new Error(`GET /api/v3/traces/${traceId} from ${queryHttp}: HTTP ${res.status}: ${body.slice(0, 500)}`);
  return JSON.parse(body) as unknown;
}

// `node test/dist/harness/jaeger.js build` builds (or finds) the binary and prints its path, for
// warming the cache before a test run (the first build takes longer than run.mjs's per-file timeout).
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href && process.argv[2] === 'build') {
  const started = Date.now();
  ensureJaeger().then(
    (bin) => { process.stdout.write(`${bin}\n(${((Date.now() - started) / 1000).toFixed(1)} s)\n`); },
    (e: unknown) => { process.stderr.write(`${(e as Error).message}\n`); process.exitCode = 1; },
  );
}
