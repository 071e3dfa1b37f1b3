/**
 * OTLP/gRPC load generator for the collector ingest benchmark (ingest.ts), run as its own process
 * so that its CPU is not counted as the collector's:
 *
 *   node test/dist/bench/otlp-load.js '<json LoadSpec>'    -> one JSON LoadResult line on stdout
 *
 * It sends kube-apiserver-shaped ExportTraceServiceRequests (100 spans each, whole traces of the
 * Deployment scenario cut into batches as kube-apiserver's batch span processor sends them) over one
 * gRPC channel, as kube-apiserver does. Requests are encoded once; every send copies a template and
 * stamps a send counter into each trace id, so no two requests carry the same trace and the broker
 * gets distinct keys (across runs too, with distinct `stampBase`s). `rate` > 0 paces requests to that many spans/s (with at most `concurrency`
 * in flight; sends that would exceed it are counted as `behind`); `rate` = 0 is saturation: a
 * closed loop of `concurrency` requests in flight. A refused request (any non-OK status) is
 * counted by code and not resent; in saturation its slot waits 10 ms before the next send.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { EXPORT_PATH } from '@kube-correlate/collector';
import { generateDeploymentScenario } from '@kube-correlate/fixtures';
import { encodeTraceRequest, type Span } from '@kube-correlate/otlp';
import { stats } from './stats.js';

/** Which collector a run measures, and how the load is offered (ingest.ts and embedded.ts). */
export type Side = 'ours' | 'otelcol';
export type Mode = 'fixed' | 'saturation';

/**
 * The knobs the collector benchmarks (ingest.ts, embedded.ts) share, one name and default each:
 * BENCH_SECONDS, BENCH_RATE (spans/s of the fixed mode), BENCH_CONCURRENCY (requests in flight at
 * saturation), BENCH_WARMUP_SECONDS, BENCH_SIDES, BENCH_MODES, and BENCH_CPU_PROF (a directory: our
 * process runs with `--cpu-prof` there, `cpuProfArgs` its node arguments; the profile is written at
 * its graceful stop and covers its whole life, warm-up included).
 */
export function collectorBenchKnobs(env: NodeJS.ProcessEnv = process.env): {
  seconds: number; rate: number; concurrency: number; warmupS: number; sides: Side[]; modes: Mode[]; cpuProf: string | undefined; cpuProfArgs: string[];
} {
  const cpuProf = env['BENCH_CPU_PROF'] || undefined;
  return {
    cpuProf,
    cpuProfArgs: cpuProf ? ['--cpu-prof', `--cpu-prof-dir=${cpuProf}`] : [],
    seconds: Number(env['BENCH_SECONDS'] ?? 60),
    rate: Number(env['BENCH_RATE'] ?? 20_000),
    concurrency: Number(env['BENCH_CONCURRENCY'] ?? 16),
    warmupS: Number(env['BENCH_WARMUP_SECONDS'] ?? 5),
    sides: (env['BENCH_SIDES'] ?? 'ours,otelcol').split(',') as Side[],
    modes: (env['BENCH_MODES'] ?? 'fixed,saturation').split(',') as Mode[],
  };
}

export interface LoadSpec {
  /** "host:port" of an OTLP/gRPC receiver. */
  target: string;
  /** Spans per second; 0 = saturation. */
  rate: number;
  durationS: number;
  concurrency: number;
  spansPerRequest?: number;
  /** Distinct request templates (from scenario seeds 1..): default 200. */
  templates?: number;
  /** Per-request deadline, ms. Default 10 s. */
  deadlineMs?: number;
  /**
   * The first request's trace ids are stamped with this + 1, the next with + 2, ... (default 0).
   * Runs against one store must not overlap, or their spans are the same spans (duplicates).
   */
  stampBase?: number;
}

export interface LoadResult {
  requests: number;
  ok: number;
  okSpans: number;
  /** Kafka messages the accepted requests make with one message per trace per request (ours). */
  okTraces: number;
  /**
   * ... and with one message per trace per ResourceSpans/ScopeSpans of the request: the
   * OpenTelemetry Collector's kafka exporter splits with batchpersignal.SplitTraces, which keeps a
   * trace's spans under different resources or scopes in separate messages (same key).
   */
  okScopeTraces: number;
  refused: Record<string, number>;
  /** Paced sends skipped because `concurrency` requests were already in flight. */
  behind: number;
  elapsedS: number;
  latencyMs: { p50: number; p99: number; max: number };
  cpuS: number;
  spansPerRequest: number;
  bytesPerRequest: number;
}

interface Template { bytes: Buffer; idOffsets: number[]; spans: number; traces: number; scopeTraces: number }

/** Requests of `n` spans cut from consecutive Deployment scenarios (seeds 1, 2, ...). */
export function buildTemplates(count: number, spansPerRequest: number): Template[] {
  const out: Template[] = [];
  let pending: Span[] = [];
  for (let seed = 1; out.length < count; seed++) {
    const s = generateDeploymentScenario({ seed, start: new Date(Date.UTC(2026, 10, 21, 10, 0, seed)) });
    for (const tr of s.traces) pending.push(...tr.spans);
    while (pending.length >= spansPerRequest && out.length < count) {
      const spans = pending.slice(0, spansPerRequest);
      pending = pending.slice(spansPerRequest);
      const bytes = Buffer.from(encodeTraceRequest(spans));
      const ids = new Set<string>();
      for (const sp of spans) {
        ids.add(sp.traceId);
        for (const l of sp.links) ids.add(l.traceId);
      }
      const idOffsets: number[] = [];
      for (const id of ids) {
        const needle = Buffer.from(id, 'hex');
        for (let at = bytes.indexOf(needle); at >= 0; at = bytes.indexOf(needle, at + 1)) idOffsets.push(at);
      }
      // encodeTraceRequest writes one ResourceSpans per resource object and one ScopeSpans per scope object.
      const scopeTraces = new Set<string>();
      const objectIds = new Map<object, number>();
      const idOf = (o: object) => objectIds.get(o) ?? (objectIds.set(o, objectIds.size), objectIds.size - 1);
      for (const sp of spans) scopeTraces.add(`${idOf(sp.resource)}/${idOf(sp.scope)}/${sp.traceId}`);
      out.push({ bytes, idOffsets, spans: spans.length, traces: new Set(spans.map((sp) => sp.traceId)).size, scopeTraces: scopeTraces.size });
    }
  }
  return out;
}

/**
 * Builds the requests and connects, then calls `ready` and starts sending when it resolves (so the
 * caller can take its "before" figures with the load generator's setup out of the way).
 */
export async function runLoad(spec: LoadSpec, ready: () => Promise<void> = async () => undefined): Promise<LoadResult> {
  const perRequest = spec.spansPerRequest ?? 100;
  const templates = buildTemplates(spec.templates ?? 200, perRequest);
  const client = new grpc.Client(spec.target, grpc.credentials.createInsecure(), {
    'grpc.max_send_message_length': 16 * 2 ** 20,
  });
  await new Promise<void>((resolve, reject) => client.waitForReady(Date.now() + 10_000, (e) => (e ? reject(e) : resolve())));

  const result: LoadResult = {
    requests: 0, ok: 0, okSpans: 0, okTraces: 0, okScopeTraces: 0, refused: {}, behind: 0, elapsedS: 0,
    latencyMs: { p50: 0, p99: 0, max: 0 }, cpuS: 0, spansPerRequest: perRequest,
    bytesPerRequest: Math.round(templates.reduce((s, t) => s + t.bytes.length, 0) / templates.length),
  };
  const latencies: number[] = [];
  await ready();
  let counter = 0;
  let inFlight = 0;
  const cpu0 = process.cpuUsage();
  const started = performance.now();
  const endAt = started + spec.durationS * 1000;

  const sendOne = (): Promise<void> => {
    const t = templates[counter % templates.length]!;
    const stamp = ((spec.stampBase ?? 0) + ++counter) >>> 0;
    const body = Buffer.from(t.bytes);
    for (const at of t.idOffsets) body.writeUInt32BE(stamp, at + 8);
    result.requests++;
    inFlight++;
    const sent = performance.now();
    return new Promise((resolve) => {
      client.makeUnaryRequest(EXPORT_PATH, (b: Buffer) => b, (b: Buffer) => b, body, { deadline: Date.now() + (spec.deadlineMs ?? 10_000) }, (err) => {
        inFlight--;
        latencies.push(performance.now() - sent);
        if (err) {
          const code = grpc.status[err.code] ?? String(err.code);
          result.refused[code] = (result.refused[code] ?? 0) + 1;
        } else {
          result.ok++;
          result.okSpans += t.spans;
          result.okTraces += t.traces;
          result.okScopeTraces += t.scopeTraces;
        }
        resolve();
      });
    });
  };

  if (spec.rate > 0) {
    const requestsPerMs = spec.rate / perRequest / 1000;
    let due = 0;
    await new Promise<void>((resolve) => {
      const timer = setInterval(() => {
        const now = performance.now();
        if (now >= endAt) {
          clearInterval(timer);
          resolve();
          return;
        }
        const shouldHave = Math.floor((now - started) * requestsPerMs);
        for (; due < shouldHave; due++) {
          if (inFlight >= spec.concurrency) result.behind++;
          else void sendOne();
        }
      }, 2);
    });
  } else {
    const slot = async (): Promise<void> => {
      while (performance.now() < endAt) {
        const before = result.ok;
        await sendOne();
        if (result.ok === before) await new Promise((r) => setTimeout(r, 10));
      }
    };
    await Promise.all(Array.from({ length: spec.concurrency }, slot));
  }
  // Wait out what is still in flight (bounded by the deadline).
  while (inFlight > 0) await new Promise((r) => setTimeout(r, 5));
  result.elapsedS = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpu0);
  result.cpuS = (cpu.user + cpu.system) / 1e6;
  const l = stats(latencies);
  result.latencyMs = { p50: l?.p50 ?? 0, p99: l?.p99 ?? 0, max: l?.max ?? 0 };
  client.close();
  return result;
}

/**
 * Runs the load generator as its own process (so its CPU is not the measured process's); `onReady`
 * runs once it is set up, just before it starts sending.
 */
export function runLoadProcess(spec: LoadSpec, onReady: () => Promise<void> = async () => undefined): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [fileURLToPath(import.meta.url), JSON.stringify(spec)], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let started = false;
    child.stdout.on('data', (d: Buffer) => {
      out += d;
      if (!started && out.startsWith('ready\n')) {
        started = true;
        out = out.slice('ready\n'.length);
        void onReady().then(() => child.stdin.write('go\n'), (e: unknown) => {
          child.kill();
          reject(e as Error);
        });
      }
    });
    child.stderr.on('data', (d: Buffer) => (err += d));
    child.stdin.on('error', () => undefined);
    child.on('close', (code) => {
      if (code !== 0) reject(new Error(`load generator exited ${code}: ${err.trim()}`));
      else resolve(JSON.parse(out) as LoadResult);
    });
  });
}

if (process.argv[1]?.endsWith('otlp-load.js')) {
  const spec = JSON.parse(process.argv[2] ?? '') as LoadSpec;
  // Stops by itself: the run's length plus the deadline of the last requests and a margin.
  setTimeout(() => {
    process.stderr.write('otlp-load: did not finish in time\n');
    process.exit(2);
  }, (spec.durationS + 60) * 1000).unref();
  // Protocol with the bench: "ready" on stdout once set up, sending starts at a line on stdin.
  const ready = () => new Promise<void>((resolve) => {
    process.stdin.once('data', () => resolve());
    process.stdout.write('ready\n');
  });
  runLoad(spec, ready).then((r) => {
    process.stdout.write(`${JSON.stringify(r)}\n`);
    process.stdin.destroy();
  }, (e: unknown) => {
    process.stderr.write(`otlp-load: ${(e as Error).stack ?? String(e)}\n`);
    process.exitCode = 1;
  });
}
