import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { parseConfig, Pipeline } from '@kube-correlate/collector';
import type { AuditEvent } from '@kube-correlate/audit';
import { isLoneAuthentication, treeAuditStages, type RequestTree } from '@kube-correlate/correlator';
import type { Span } from '@kube-correlate/otlp';
import { createLogger, PipelineMetrics, silentLogger } from '@kube-correlate/telemetry';
import { watchdogLauncher } from './supervise.js';

export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const CLI = join(ROOT, 'packages/cli/dist/src/bin.js');

/**
 * `correlate <args>` in its own process group behind the harness watchdog (watchdogLauncher): if
 * this process dies without its exit hooks, the program goes too. stdin is the watchdog's pipe,
 * stdout is ignored, stderr is piped; child.pid is node's own (the launcher execs it), for signals
 * and /proc figures. `exited` resolves on the program's 'exit', not 'close': the watchdog keeps the
 * stderr pipe open until the group is killed (killGroup SIGKILL, which callers do after a stop).
 */
export function spawnCorrelate(args: string[], opts: { env?: NodeJS.ProcessEnv; nodeArgs?: string[] } = {}): { child: ChildProcess; exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }> } {
  const child = spawn('/bin/sh', ['-c', watchdogLauncher('KC_WATCHDOG_DIR'), 'correlate', process.execPath, ...(opts.nodeArgs ?? []), CLI, ...args], {
    cwd: ROOT, env: { ...process.env, ...opts.env, KC_WATCHDOG_DIR: '' }, stdio: ['pipe', 'ignore', 'pipe'], detached: true,
  });
  child.stdin!.on('error', () => undefined);
  return { child, exited: new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal }))) };
}

/** A temporary directory removed by `cleanup()`. */
export function tempDir(prefix = 'kc-e2e-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export { freePort } from './supervise.js';

export interface TestPipeline {
  pipeline: Pipeline;
  metrics: PipelineMetrics;
  grpc: string;
  http: string;
  audit: string;
  query: string;
  dataDir: string;
  stop(): Promise<void>;
}

/** `processors:` of the test pipeline (YAML lines under it, indented two spaces) and what each pipeline lists. */
export interface PipelineProcessors {
  yaml: string;
  traces?: string[];
  logs?: string[];
}

/** The embedded pipeline in this process, on OS-chosen loopback ports, with a fresh store. */
export async function startPipeline(opts: { processors?: PipelineProcessors; logs?: string[]; settleAfter?: string; pendingAuditTtl?: string; grpcMaxMiB?: number; httpMaxBytes?: number; auditMaxBytes?: number; auditLog?: string[]; followAuditLog?: boolean; dataDir?: string; apiSpec?: string; otlp?: { endpoint: string; protocol?: 'grpc' | 'http'; flushInterval?: string; retryInterval?: string; maxElapsed?: string; objsetSettle?: string; waitForOwners?: string; waitForAudit?: string; objsetWindow?: string; objsetMaxSpans?: number } } = {}): Promise<TestPipeline> {
  const tmp = opts.dataDir ? undefined : tempDir();
  const dataDir = opts.dataDir ?? tmp!.dir;
  const o = opts.otlp;
  const otlpName = o ? (o.protocol === 'http' ? 'otlphttp/jaeger' : 'otlp/jaeger') : undefined;
  const otlpExporter = o
    ? `${otlpName}: { endpoint: "${o.endpoint}", flush_interval: "${o.flushInterval ?? '100ms'}", retry_on_failure: { initial_interval: "${o.retryInterval ?? '100ms'}", max_interval: "1s", max_elapsed_time: "${o.maxElapsed ?? '2s'}" }, wait_for_audit: "${o.waitForAudit ?? '3s'}", object_sets: { settle_after: "${o.objsetSettle ?? '300ms'}", max_delay: "10s", wait_for_owners: "${o.waitForOwners ?? '3s'}"${o.objsetWindow ? `, window: "${o.objsetWindow}"` : ''}${o.objsetMaxSpans ? `, max_spans_per_trace: ${o.objsetMaxSpans}` : ''} } }`
    : undefined;
  const yaml = `
receivers:
  otlp:
    protocols:
      grpc: { endpoint: "127.0.0.1:0", max_recv_msg_size_mib: ${opts.grpcMaxMiB ?? 4} }
      http: { endpoint: "127.0.0.1:0", max_request_body_size: ${opts.httpMaxBytes ?? 20 * 1024 * 1024} }
  k8saudit: { endpoint: "127.0.0.1:0", max_request_body_size: ${opts.auditMaxBytes ?? 64 * 1024 * 1024} }
${opts.auditLog ? `  auditlog: { include: ${JSON.stringify(opts.auditLog)}, follow: ${opts.followAuditLog ?? false}, poll_interval: 50ms }` : ''}
${opts.processors ? `processors:\n${opts.processors.yaml}` : ''}
exporters:
  correlator: { settle_after: "${opts.settleAfter ?? '200ms'}", pending_audit_ttl: "${opts.pendingAuditTtl ?? '30s'}"${opts.apiSpec ? `, api_spec: ${JSON.stringify(opts.apiSpec)}` : ''} }
${otlpExporter ? `  ${otlpExporter}` : ''}
extensions:
  store: { directory: "${dataDir}", endpoint: "127.0.0.1:0" }
service:
  extensions: [store]
  pipelines:
    traces: { receivers: [otlp], processors: ${JSON.stringify(opts.processors?.traces ?? [])}, exporters: [correlator${otlpName ? `, ${otlpName}` : ''}] }
    logs: { receivers: [k8saudit${opts.auditLog ? ', auditlog' : ''}], processors: ${JSON.stringify(opts.processors?.logs ?? [])}, exporters: [correlator${otlpName ? `, ${otlpName}` : ''}] }
`;
  const metrics = new PipelineMetrics();
  const logger = opts.logs ? createLogger({ level: 'info', destination: new Writable({ write(chunk: Buffer, _enc, cb) { opts.logs!.push(chunk.toString()); cb(); } }) }) : silentLogger();
  const pipeline = new Pipeline({ config: parseConfig(yaml, 'test.yaml', {}), metrics, logger });
  await pipeline.start();
  const a = pipeline.addresses;
  return {
    pipeline, metrics, dataDir,
    grpc: a.otlpGrpc!, http: `http://${a.otlpHttp}`, audit: `http://${a.auditWebhook}/`, query: `http://${a.query}`,
    async stop() {
      await pipeline.shutdown();
      tmp?.cleanup();
    },
  };
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the real `correlate` binary. */
export function runCli(args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd: opts.cwd ?? ROOT, env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d));
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    const t = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Polls `fn` until it returns a value other than undefined, or fails with `what` at the deadline. */
export async function waitFor<T>(what: string, fn: () => Promise<T | undefined> | T | undefined, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * The stored tree of a trace, once it has `spanCount` spans and (if asked) an audit attached. Give
 * `withAudit` the audit events the tree must hold to wait for every one of their stages: a settled
 * tree is queryable and updated when a later stage comes, and the stages of one request can come in
 * different batches (kube-apiserver's audit webhook batches by time, Kafka mode forwards each event
 * on its own), so "some audit" can hold while the request's ResponseComplete is still on its way.
 */
export function waitForTree(query: string, traceId: string, spanCount: number, withAudit: boolean | ReadonlyArray<Pick<AuditEvent, 'auditID' | 'stage'>> = true, timeoutMs = 15_000): Promise<RequestTree> {
  const stages = typeof withAudit === 'boolean' ? undefined : withAudit.map((e) => `${e.auditID} ${e.stage}`);
  const what = stages ? ` and the audit stages ${stages.join(', ')}` : withAudit ? ' and its audit' : '';
  return waitFor(`trace ${traceId} with ${spanCount} spans${what}`, async () => {
    const res = await fetch(`${query}/api/v1/traces/${traceId}`);
    if (!res.ok) return undefined;
    const tree = (await res.json()) as RequestTree;
    if (tree.spanCount < spanCount) return undefined;
    if (stages) {
      const have = treeAuditStages(tree.root);
      return stages.every((s) => have.has(s)) ? tree : undefined;
    }
    return !withAudit || JSON.stringify(tree.root).includes('"auditID"') ? tree : undefined;
  }, timeoutMs);
}

/**
 * Waits for every trace of a scenario to be stored with all its spans (kube-apiserver's lone
 * authentication traces are dropped by the correlator: skipped), then for each request's tree with
 * every stage of its audit events, and returns those trees by trace id. A request tree shows other
 * traces too (the caller's span a link names is looked up when the tree is read), and each trace
 * settles on its own, so the trees are read only once everything they show is stored.
 */
export async function waitForScenarioTrees(
  query: string,
  scenario: { traces: ReadonlyArray<{ traceId: string; spans: Span[] }>; requests: ReadonlyArray<{ traceId: string; spans: Span[]; auditEvents: ReadonlyArray<Pick<AuditEvent, 'auditID' | 'stage'>> }> },
  timeoutMs = 15_000,
): Promise<Record<string, RequestTree>> {
  for (const tr of scenario.traces) if (!isLoneAuthentication(tr.spans)) await waitForTree(query, tr.traceId, tr.spans.length, false, timeoutMs);
  const out: Record<string, RequestTree> = {};
  for (const r of scenario.requests) out[r.traceId] = await waitForTree(query, r.traceId, r.spans.length, r.auditEvents, timeoutMs);
  return out;
}

/** POSTs JSON and returns status and parsed body. */
export async function postJson(url: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: Record<string, unknown>; headers: Headers }> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });
  const text = await res.text();
  let parsed: Record<string, unknown> = {};
  try {
    parsed = text ? (JSON.parse(text) as Record<string, unknown>) : {};
  } catch {
    parsed = { raw: text };
  }
  return { status: res.status, body: parsed, headers: res.headers };
}

/** Value of one sample in the pipeline's registry (0 when absent). */
export async function metricValue(metrics: PipelineMetrics, name: string, labels: Record<string, string> = {}): Promise<number> {
  const m = (await metrics.registry.getMetricsAsJSON()).find((x) => x.name === name);
  return m?.values.filter((v) => Object.entries(labels).every(([k, val]) => v.labels[k] === val)).reduce((s, v) => s + v.value, 0) ?? 0;
}

export function eventList(items: unknown[], apiVersion = 'audit.k8s.io/v1'): Record<string, unknown> {
  return { kind: 'EventList', apiVersion, metadata: {}, items };
}

/**
 * uvu reports a failing before/after hook only as tests not run, without the error: wrap hook
 * bodies so the reason reaches the log (and CI's output).
 */
export function reported(what: string, fn: () => Promise<void> | void): () => Promise<void> {
  return async () => {
    try {
      await fn();
    } catch (err) {
      process.stderr.write(`\n${what} failed: ${(err as Error).stack ?? String(err)}\n`);
      throw err;
    }
  };
}
