/**
 * Embedded-mode benchmark (issue 15): the ingest-to-stored rate of `correlate start`
 * (collector-config/embedded.yaml as shipped: it acknowledges an OTLP request once it is committed
 * to its inbox in SQLite, then correlates and stores it) against the OpenTelemetry Collector writing
 * the same load to its file exporter (test/otelcol, collector-config/otelcol/apiserver-to-file.yaml
 * as shipped: otlp receiver -> file exporter, OTLP protobuf). Same load, same run.
 *
 * Load comes from a separate process (otlp-load.ts): 100-span requests over one gRPC channel, at a
 * fixed rate and at saturation (a closed loop of BENCH_CONCURRENCY requests), BENCH_SECONDS each;
 * the two sides alternate within each mode, after a warm-up each. For each run:
 *   - sustained spans/s: spans of accepted requests / time from the first send until every one of
 *     them is stored: ours, `kube_correlate_store_rows_total{table="spans",outcome="inserted"}`
 *     (the span is in the store, queryable; this includes the correlator's settle_after, 5 s as
 *     shipped, after the last span of a trace); theirs, the spans in complete messages of the
 *     exporter's file (read and counted here, after its flush);
 *   - CPU seconds per million spans: the process's user+system CPU (/proc) over the same span;
 *   - peak RSS: VmHWM, reset before the run (clear_refs 5);
 *   - refusals by gRPC status; ack latency at the sender.
 * Stored spans are checked against accepted ones: fewer is a loss (reported, and a non-zero exit
 * for ours), more is duplicates.
 *
 *   node test/dist/bench/embedded.js
 *   BENCH_SECONDS=60 BENCH_RATE=20000 BENCH_CONCURRENCY=16 BENCH_WARMUP_SECONDS=5
 *   BENCH_SIDES=ours,otelcol BENCH_MODES=fixed,saturation BENCH_DRAIN_SECONDS=120
 *   BENCH_SETTLE_AFTER=<duration>: override the correlator's settle_after (KC_SETTLE_AFTER; default as shipped)
 *   BENCH_CPU_PROF=<dir>: run `correlate start` with --cpu-prof (profile written at its stop; one
 *   mode per run, BENCH_MODES=fixed or saturation, to profile each); summarize with
 *   `node test/dist/bench/cpu-profile.js <file> 40`
 */
import { closeSync, openSync, readSync, fstatSync, existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { COLLECTOR_CONFIG_DIR } from '@kube-correlate/cli';
import { spawnCorrelate, tempDir } from '../harness/index.js';
import { startOtelcol, OTELCOL_VERSIONS } from '../harness/otelcol.js';
import { freePort, stopGracefully } from '../harness/supervise.js';
import { cpuSeconds, peakRssBytes, machineBusySeconds, mib, resetPeakRss } from './proc.js';
import { collectorBenchKnobs, runLoadProcess, type LoadResult, type Mode, type Side } from './otlp-load.js';

const { seconds: SECONDS, rate: RATE, concurrency: CONCURRENCY, warmupS: WARMUP_S, sides: SIDES, modes: MODES, cpuProf: CPU_PROF, cpuProfArgs: CPU_PROF_ARGS } = collectorBenchKnobs();
const DRAIN_TIMEOUT_MS = Number(process.env['BENCH_DRAIN_SECONDS'] ?? 120) * 1000;
const SETTLE_AFTER = process.env['BENCH_SETTLE_AFTER'];
const OURS_CONFIG = `${COLLECTOR_CONFIG_DIR}embedded.yaml`;
const THEIR_CONFIG = `${COLLECTOR_CONFIG_DIR}otelcol/apiserver-to-file.yaml`;


/** Times our /metrics did not answer within 10 s (its event loop busy). */
let slowMetrics = 0;
const log = (msg: string) => process.stderr.write(`embedded: ${msg}\n`);
// Stops by itself: every run (warm-ups included), its drain, and setup, with a margin.
const budgetMs = (SIDES.length * (MODES.length + 1) * (SECONDS + DRAIN_TIMEOUT_MS / 1000 + 10) + 180) * 1000;
setTimeout(() => {
  log(`watchdog: stopping after ${Math.round(budgetMs / 1000)} s`);
  process.exit(1);
}, budgetMs).unref();

interface Target {
  side: Side; label: string; endpoint: string; pid: number;
  /** What it holds so far, read at once (ours: one /metrics scrape, so polling costs it one request per poll). */
  counts(): Promise<Counts>;
  stop(): Promise<void>;
}

interface Counts {
  /** Spans stored (a counter that only grows). */
  stored: number;
  /** Spans dropped on purpose (ours: lone authentication spans, one per trace the correlator drops). */
  dropped: number;
  /** Something that should be 0 when a run's figures are final (ours: duplicate span rows). */
  duplicates: number;
}

/** Sums the samples of a Prometheus text-format metric whose labels include all of `labels`. */
export function metricSum(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name) || (line[name.length] !== '{' && line[name.length] !== ' ')) continue;
    const labelText = line[name.length] === '{' ? line.slice(name.length + 1, line.indexOf('}')) : '';
    if (!Object.entries(labels).every(([k, v]) => labelText.includes(`${k}="${v}"`))) continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

async function startOurs(): Promise<Target> {
  const data = tempDir('kc-bench-embedded-');
  const [grpcPort, httpPort, auditPort, queryPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const { child, exited } = spawnCorrelate(['start', '--config', OURS_CONFIG], {
    nodeArgs: CPU_PROF_ARGS,
    env: {
      LOG_LEVEL: 'warn', KC_DATA_DIR: data.dir,
      KC_OTLP_GRPC_ENDPOINT: `127.0.0.1:${grpcPort}`, KC_OTLP_HTTP_ENDPOINT: `127.0.0.1:${httpPort}`,
      KC_AUDIT_WEBHOOK_ENDPOINT: `127.0.0.1:${auditPort}`, KC_QUERY_ENDPOINT: `127.0.0.1:${queryPort}`,
      ...(SETTLE_AFTER ? { KC_SETTLE_AFTER: SETTLE_AFTER } : {}),
    },
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d).slice(-10_000)));
  const fetchMetrics = async () => {
    const res = await fetch(`http://127.0.0.1:${queryPort}/metrics`, { signal: AbortSignal.timeout(10_000) });
    if (!res.ok) throw new Error(`GET /metrics: HTTP ${res.status}`);
    return res.text();
  };
  // Under saturation our one event loop can leave /metrics unanswered for longer than 10 s: that is
  // a finding (counted and printed), not the end of the run; a metrics call gives up after 2 min.
  const metrics = async () => {
    const until = Date.now() + 120_000;
    for (;;) {
      try {
        return await fetchMetrics();
      } catch (err) {
        if (!(err instanceof Error && err.name === 'TimeoutError') || Date.now() > until) throw err;
        slowMetrics++;
        log(`GET /metrics of correlate start did not answer within 10 s (${slowMetrics} so far); asking again`);
      }
    }
  };
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`correlate start exited at start:\n${stderr}`);
    if (await metrics().then(() => true, () => false)) break;
    if (Date.now() > deadline) throw new Error(`correlate start not ready in 60 s:\n${stderr}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  const counts = async (): Promise<Counts> => {
    const text = await metrics();
    return {
      stored: metricSum(text, 'kube_correlate_store_rows_total', { table: 'spans', outcome: 'inserted' }),
      // A lone authentication trace is one span (packages/correlator, isLoneAuthentication).
      dropped: metricSum(text, 'kube_correlate_correlator_dropped_total', { reason: 'lone_authentication' }),
      duplicates: metricSum(text, 'kube_correlate_store_rows_total', { table: 'spans', outcome: 'duplicate' }),
    };
  };
  return {
    side: 'ours', label: `correlate start (settle_after ${SETTLE_AFTER ?? '5s, as shipped'}${CPU_PROF ? ', with --cpu-prof' : ''})`, endpoint: `127.0.0.1:${grpcPort}`, pid: child.pid!,
    counts,
    async stop() {
      await stopGracefully(child, exited, 30_000);
      data.cleanup();
    },
  };
}

/**
 * Counts the spans in a file of length-prefixed (4 bytes, big-endian) OTLP TracesData messages, as
 * the file exporter writes with `format: proto`, reading what was appended since the last call.
 * Only complete messages count; a message that does not parse is an error.
 */
export class SpanFileCounter {
  private offset = 0;
  spans = 0;
  messages = 0;
  /**
   * `chunkBytes`: how much it reads at once (a saturation run writes gigabytes between two reads,
   * more than one read or one Buffer can take); a message longer than that is read whole.
   */
  constructor(private readonly path: string, private readonly chunkBytes = 64 * 1024 * 1024) {}

  read(): number {
    if (!existsSync(this.path)) return this.spans;
    const fd = openSync(this.path, 'r');
    try {
      const size = fstatSync(fd).size;
      let want = this.chunkBytes;
      while (this.offset + 4 <= size) {
        const buf = Buffer.allocUnsafe(Math.min(want, size - this.offset));
        let got = 0;
        while (got < buf.length) {
          const n = readSync(fd, buf, got, buf.length - got, this.offset + got);
          if (n === 0) break;
          got += n;
        }
        let at = 0;
        while (at + 4 <= got) {
          const len = buf.readUInt32BE(at);
          if (at + 4 + len > got) break;
          this.spans += countTraceDataSpans(buf, at + 4, at + 4 + len);
          this.messages++;
          at += 4 + len;
        }
        if (at === 0) {
          // Not one whole message in this read: a longer one (read it whole next), or its end is not written yet.
          const len = got >= 4 ? buf.readUInt32BE(0) : 0;
          if (got < 4 || this.offset + 4 + len > size) break;
          want = 4 + len;
          continue;
        }
        this.offset += at;
        want = this.chunkBytes;
      }
      return this.spans;
    } finally {
      closeSync(fd);
    }
  }
}

function varint(buf: Buffer, pos: { at: number }, end: number): number {
  let v = 0;
  let mul = 1;
  for (;;) {
    if (pos.at >= end) throw new Error('truncated varint');
    const b = buf[pos.at++]!;
    v += (b & 0x7f) * mul;
    if (b < 0x80) return v;
    mul *= 128;
    if (mul > 2 ** 63) throw new Error('varint too long');
  }
}

/** Calls `onLen(field, start, end)` for each length-delimited field of the message in [start, end). */
function eachLenField(buf: Buffer, start: number, end: number, onLen: (field: number, s: number, e: number) => void): void {
  const pos = { at: start };
  while (pos.at < end) {
    const tag = varint(buf, pos, end);
    const wire = tag & 7;
    if (wire === 0) varint(buf, pos, end);
    else if (wire === 1) pos.at += 8;
    else if (wire === 5) pos.at += 4;
    else if (wire === 2) {
      const len = varint(buf, pos, end);
      if (pos.at + len > end) throw new Error('truncated field');
      onLen(Math.floor(tag / 8), pos.at, pos.at + len);
      pos.at += len;
    } else throw new Error(`unexpected wire type ${wire}`);
    if (pos.at > end) throw new Error('truncated field');
  }
}

/** TracesData: resource_spans = 1 { scope_spans = 2 { spans = 2 } }. */
export function countTraceDataSpans(buf: Buffer, start: number, end: number): number {
  let n = 0;
  eachLenField(buf, start, end, (f1, s1, e1) => {
    if (f1 !== 1) return;
    eachLenField(buf, s1, e1, (f2, s2, e2) => {
      if (f2 !== 2) return;
      eachLenField(buf, s2, e2, (f3) => { if (f3 === 2) n++; });
    });
  });
  return n;
}

async function startTheirs(): Promise<Target> {
  // Log level info (as shipped): readiness is its "Everything is ready" line.
  const o = await startOtelcol(THEIR_CONFIG);
  // The config writes ./otlp_spans.pb, relative to the process's working directory (its temp dir).
  const counter = new SpanFileCounter(join(o.dir, 'otlp_spans.pb'));
  return {
    side: 'otelcol', label: `OpenTelemetry Collector (core ${OTELCOL_VERSIONS.core}, contrib ${OTELCOL_VERSIONS.contrib} fileexporter, test/otelcol)`,
    endpoint: o.otlpGrpc, pid: o.pid, counts: async () => ({ stored: counter.read(), dropped: 0, duplicates: 0 }), stop: () => o.stop(),
  };
}

/**
 * Spans of requests whose outcome the sender does not know: it gave up waiting (its deadline), so
 * the receiver may still have accepted and stored them. Stored spans may exceed the accepted ones
 * by up to this many without being duplicates.
 */
function unknownSpans(load: LoadResult): number {
  return ((load.refused['DEADLINE_EXCEEDED'] ?? 0) + (load.refused['CANCELLED'] ?? 0)) * load.spansPerRequest;
}

interface Row {
  side: Side; label: string; mode: Mode; offered: string; load: LoadResult; stored: number; dropped: number; duplicates: number;
  sustained: number; cpuS: number; cpuPerM: number; peakRss: number; peakReset: boolean; busyPct: number; drainS: number;
}

/** Requests sent so far: the next run's stampBase, so that no two runs send the same trace ids (the store would take them for duplicates). */
let stamped = 0;

/** One run: the load, then waiting until every accepted span is stored (or the drain times out). */
async function measure(t: Target, mode: Mode | 'warm-up', seconds: number, rate: number): Promise<Row> {
  let peakReset = false;
  let c0: Counts = { stored: 0, dropped: 0, duplicates: 0 };
  let cpu0 = 0;
  let busy0 = { busy: 0, total: 0 };
  let t0 = 0;
  const load = await runLoadProcess({ target: t.endpoint, rate, durationS: seconds, concurrency: CONCURRENCY, stampBase: stamped }, async () => {
    peakReset = resetPeakRss(t.pid);
    c0 = await t.counts();
    cpu0 = cpuSeconds(t.pid);
    busy0 = machineBusySeconds();
    t0 = performance.now();
  });
  stamped += load.requests;
  const drainStart = performance.now();
  // Every accepted span is accounted for once it is stored or was dropped on purpose.
  // Polled every 100 ms with one read each (ours: one /metrics scrape; two every 50 ms cost it about
  // 6% of its busy time, counted in its CPU per span).
  const accounted = async () => {
    const c = await t.counts();
    return c.stored - c0.stored + c.dropped - c0.dropped;
  };
  while ((await accounted()) < load.okSpans && performance.now() - drainStart < DRAIN_TIMEOUT_MS) {
    await new Promise((r) => setTimeout(r, 100));
  }
  const t1 = performance.now();
  const cpuS = cpuSeconds(t.pid) - cpu0;
  const busy1 = machineBusySeconds();
  // A moment more: anything beyond the accepted spans would be duplicates.
  await new Promise((r) => setTimeout(r, 200));
  const c1 = await t.counts();
  const stored = c1.stored - c0.stored;
  const dropped = c1.dropped - c0.dropped;
  return {
    side: t.side, label: t.label, mode: mode === 'warm-up' ? 'fixed' : mode,
    offered: rate > 0 ? `${rate.toLocaleString('en-US')} spans/s` : `saturation, ${CONCURRENCY} in flight`,
    load, stored, dropped, duplicates: c1.duplicates - c0.duplicates, sustained: load.okSpans / ((t1 - t0) / 1000), cpuS,
    cpuPerM: load.okSpans ? (cpuS / load.okSpans) * 1e6 : NaN, peakRss: peakRssBytes(t.pid), peakReset,
    busyPct: (100 * (busy1.busy - busy0.busy)) / (busy1.total - busy0.total), drainS: (t1 - drainStart) / 1000,
  };
}

async function main(): Promise<void> {
  const startedAll = Date.now();
  const targets: Target[] = [];
  const rows: Row[] = [];
  let failed = false;
  try {
    if (SIDES.includes('ours')) targets.push(await startOurs());
    if (SIDES.includes('otelcol')) targets.push(await startTheirs());
    for (const t of targets) {
      log(`warm-up ${t.side} ${WARMUP_S} s`);
      const w = await measure(t, 'warm-up', WARMUP_S, Math.min(RATE, 10_000));
      if (w.stored + w.dropped < w.load.okSpans) throw new Error(`${t.side}: the warm-up's ${w.load.okSpans} accepted spans were not all stored (${w.stored}, ${w.dropped} dropped on purpose) within ${DRAIN_TIMEOUT_MS / 1000} s`);
    }
    let order = 0;
    for (const mode of MODES) {
      const sides = order++ % 2 === 0 ? targets : [...targets].reverse();
      for (const t of sides) {
        await new Promise((r) => setTimeout(r, 2000));
        log(`${t.side} ${mode} ${SECONDS} s`);
        const row = await measure(t, mode, SECONDS, mode === 'fixed' ? RATE : 0);
        rows.push(row);
        if (row.stored + row.dropped < row.load.okSpans && t.side === 'ours') failed = true;
        log(`  ${Math.round(row.sustained)} spans/s, ${row.cpuPerM.toFixed(1)} CPU s/M spans, ${row.stored} (+ ${row.dropped} dropped) / ${row.load.okSpans} spans stored, refused ${JSON.stringify(row.load.refused)}`);
      }
    }
  } finally {
    for (const t of targets.reverse()) await t.stop().catch((e: Error) => log(`stop ${t.side}: ${e.message}`));
  }
  print(rows, (Date.now() - startedAll) / 1000);
  if (CPU_PROF) log(`CPU profiles in ${CPU_PROF}: ${readdirSync(CPU_PROF).join(', ')}`);
  process.exitCode = failed ? 1 : 0;
}

function print(rows: Row[], totalS: number): void {
  const n = (x: number, d = 0) => (Number.isFinite(x) ? x.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d }) : 'n/a');
  const first = rows[0]?.load;
  const lines: string[] = [];
  lines.push(`Load from a separate process over one gRPC channel: ${first?.spansPerRequest ?? 100}-span requests of ${n(first?.bytesPerRequest ?? 0)} B (kube-apiserver-shaped spans of the Deployment scenario, a fresh trace id per trace per request), ${SECONDS} s per run after a ${WARMUP_S} s warm-up; the two alternate within each mode. Stored = ours: span rows inserted in the embedded store (queryable), plus the lone authentication spans its correlator drops on purpose (one span per dropped trace: kube-apiserver's authentication span alone in its trace, with nothing to join it by); otelcol: spans in complete messages of its output file.`);
  lines.push('');
  lines.push('| process | load | sustained spans/s (first send → all stored) | CPU s / M spans | peak RSS MiB | refused | ack p50 / p99 ms | spans stored (ours: + dropped on purpose) / accepted | drain s | machine busy |');
  lines.push('|---|---|---:|---:|---:|---|---:|---|---:|---:|');
  for (const r of rows) {
    const refused = Object.entries(r.load.refused).map(([k, v]) => `${k} ${v}`).join(', ') || '0';
    const behind = r.load.behind ? ` (${r.load.behind} sends behind schedule)` : '';
    const got = r.stored + r.dropped;
    const unknown = unknownSpans(r.load);
    const figures = `${n(r.stored)}${r.side === 'ours' ? ` + ${n(r.dropped)}` : ''} / ${n(r.load.okSpans)}${unknown ? ` (+ ≤ ${n(unknown)} timed out at the sender)` : ''}`;
    const problem = got < r.load.okSpans ? 'lost' : got > r.load.okSpans + unknown || r.duplicates ? `duplicates${r.duplicates ? `: ${n(r.duplicates)} duplicate rows` : ''}` : '';
    const check = problem ? `**${figures}** (${problem})` : figures;
    lines.push(`| ${r.side} | ${r.offered}${behind} | ${n(r.sustained)} | ${n(r.cpuPerM, 1)} | ${n(r.peakRss / 2 ** 20)}${r.peakReset ? '' : ' (since start)'} | ${refused} | ${n(r.load.latencyMs.p50, 1)} / ${n(r.load.latencyMs.p99, 1)} | ${check} | ${n(r.drainS, 1)} | ${n(r.busyPct)}% |`);
  }
  if (slowMetrics) lines.push(`Our /metrics did not answer within 10 s ${slowMetrics} time(s) during the runs (one event loop carries ingest, the durable inbox, the join and the store).`, '');
  lines.push('');
  lines.push(`ours = ${rows.find((r) => r.side === 'ours')?.label ?? 'correlate start'}, collector-config/embedded.yaml; otelcol = ${rows.find((r) => r.side === 'otelcol')?.label ?? 'OpenTelemetry Collector'}, collector-config/otelcol/apiserver-to-file.yaml. Load generator CPU: ${rows.map((r) => `${r.side}/${r.mode} ${n(r.load.cpuS, 1)} s`).join(', ')}.`);
  lines.push('');
  for (const mode of MODES) {
    const ours = rows.find((r) => r.side === 'ours' && r.mode === mode);
    const theirs = rows.find((r) => r.side === 'otelcol' && r.mode === mode);
    if (!ours || !theirs) continue;
    lines.push(`- ${mode}: our CPU per span / theirs = **${(ours.cpuPerM / theirs.cpuPerM).toFixed(2)}×**; sustained ours/theirs ${(ours.sustained / theirs.sustained).toFixed(2)}×; peak RSS ours ${mib(ours.peakRss)} MiB vs ${mib(theirs.peakRss)} MiB.`);
  }
  lines.push('');
  lines.push('Refused counts every request the sender got no OK for, by status; DEADLINE_EXCEEDED is the sender giving up after 10 s, so such a request may still have been stored (the check allows for it).');
  lines.push('');
  lines.push('Work differs: ours decodes each request, correlates it (traces settle `settle_after` after their last span, so the drain includes that wait) and stores every span as a row of SQLite, indexed and queryable; the otelcol re-encodes each request and appends it to a file.');
  lines.push('');
  lines.push('Semantics differ: ours answers the sender once the request is committed to its inbox in SQLite (WAL, `sync: normal`: it survives a crash of the process; `sync: full` also a power loss), so its ack latency includes that commit; the file exporter answers once its write returned: through a 4 KiB buffer (larger writes go straight to the file) flushed every second (`flush_interval` 1s), never fsynced, so a crash of the process can lose the acknowledged bytes still in that buffer (up to 4 KiB, up to a second old), a power loss whatever the page cache held.');
  lines.push('');
  lines.push(`Total bench time: ${totalS.toFixed(0)} s`);
  process.stdout.write(`${lines.join('\n')}\n`);
}

if (process.argv[1]?.endsWith('embedded.js')) await main();
