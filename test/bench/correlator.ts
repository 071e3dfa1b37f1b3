/**
 * Correlator benchmarks (issue benchmarks 3 "Correlator" and 4 "Scale"), against a real Kafka 4.2.0
 * broker (test/harness/kafka.ts) and real correlator processes (`correlate correlator --config`).
 *
 * 3. Correlator, one instance:
 *    - throughput: otlp_spans and k8s_audit are pre-filled (as the collector writes them), then a
 *      correlator starts; spans/s from its first consumed message to the last settled tree on
 *      otlp_correlated, with its CPU, the broker's CPU and the machine's busy share;
 *    - latency: with that correlator caught up, traces are produced live at a fixed rate (spans, then
 *      audit events); for each, the time from its last message being appended to its input topic
 *      to its complete tree being appended to otlp_correlated, minus settle_after;
 *    - memory: a correlator with settle_after and caps high enough that nothing settles; RSS (and
 *      heap) per in-flight span once the spans_in_flight gauge stops growing, against its RSS when
 *      connected and idle.
 * 4. Scale: 1 versus 2 instances (one consumer group) on the same pre-filled topics, at the default
 *    partition count and a raised one: throughput, 2/1 ratio, CPU per instance, broker, machine.
 *
 * Every run reads its otlp_correlated back and checks it (every span, every audit request joined by
 * an audit span with all its stages under a span of its trace, nothing unexpected; duplicates, split
 * trees and audit spans under another span than the route span are counted), and that the
 * group committed everything. Wrong output makes the script exit 1 after printing. Times are never
 * asserted. Each run uses its own internal topics, output topic and group; the input topics are
 * shared. Every topic uses LogAppendTime, so "appended" times are the broker's (one clock).
 *
 * Order (ABBA, so that neither instance count always goes first): default partitions with 2 then 1
 * instances (the 1-instance run is bench 3, followed by its latency phase and then the memory run,
 * on topics of its own), then the raised count with 1 then 2; runs after bench 3 are skipped when
 * the time budget runs short. The bench polls each correlator's /metrics every 200 ms (about 2% of a
 * correlator's CPU, per its profile).
 *
 * Build and run: `npx tsc -b test && node test/dist/bench/correlator.js` (markdown on stdout,
 * progress on stderr). Environment (defaults in brackets):
 *   BENCH_SPANS [150000]            spans pre-filled (whole scenario copies; ~5.4 spans per trace)
 *   BENCH_PARTITIONS [8]            default partition count (bench 3 and the first half of bench 4)
 *   BENCH_PARTITIONS_RAISED [16]    raised partition count for bench 4 (0: skip)
 *   BENCH_INSTANCES [1,2]           instance counts compared in bench 4 (1 is always run: bench 3)
 *   BENCH_SETTLE_MS [1000]          settle_after of the throughput and latency runs
 *   BENCH_LATENCY_RATE [200]        live traces per second (about 5.4 spans each)
 *   BENCH_LATENCY_SECONDS [10]      how long traces are produced live (0: skip)
 *   BENCH_MEM_SPANS [min(100000, BENCH_SPANS)] spans held in flight for the memory figure (0: skip)
 *   BENCH_JOIN_DELAY_MS [3000]      the broker's group.initial.rebalance.delay.ms (Kafka's default),
 *                                   so that instances started together join in one generation
 *   BENCH_TEMPLATE_SEEDS [100]      scenario seeds used as templates
 *   BENCH_TIME_LIMIT_S [330]        the script stops itself after this (prints what it measured);
 *                                   optional runs are skipped when the budget runs short
 *   BENCH_MAX_MESSAGE_BYTES [0]     max.message.bytes of the runs' otlp_correlated topics (0: the
 *                                   broker's default, 1 MiB, as in production; before the
 *                                   correlator bounded its produce calls to 512 KiB, a catch-up
 *                                   stalled on MESSAGE_TOO_LARGE there: test/e2e/kafka-message-size)
 *   BENCH_CPU_PROF [unset]          a directory: correlators run with --cpu-prof there, and the
 *                                   profile of the bench-3 instance is summarized on stdout
 * Tiny (every phase, about 45 s): BENCH_SPANS=2000 BENCH_PARTITIONS_RAISED=0 BENCH_LATENCY_SECONDS=2
 * BENCH_TEMPLATE_SEEDS=5 BENCH_JOIN_DELAY_MS=1500.
 */
import { mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { createKafkaClient, type Admin, type Consumer, type KafkaClient, type KafkaLogger, type OutgoingMessage, type Producer } from '@kube-correlate/kafka';
import { decodeTraceRequest } from '@kube-correlate/otlp';
import { startKafka, type KafkaBroker } from '../harness/kafka.js';
import { summarizeCpuProfile } from './cpu-profile.js';
import { CorrelatorProcess, killAllCorrelators, writeCorrelatorConfig, type CorrelatorMetrics, type RunTopics } from './correlator-process.js';
import { OutputCheck, WorkloadFactory, checkNotes, checkProblems, type CheckReport, type WorkItem, type Workload } from './correlator-workload.js';
import { cpuSeconds, loadAverage, machineBusySeconds, machineDescription, mib, peakRssBytes } from './proc.js';
import { stats, type Stats } from './stats.js';

// ---------------------------------------------------------------------------------------------
// Parameters

const num = (name: string, dflt: number): number => {
  const v = process.env[name];
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name}=${v}: not a non-negative number`);
  return n;
};
const SPANS = num('BENCH_SPANS', 150_000);
const PARTITIONS = num('BENCH_PARTITIONS', 8);
const RAISED = num('BENCH_PARTITIONS_RAISED', 16);
const INSTANCES = [...new Set([1, ...(process.env['BENCH_INSTANCES'] ?? '1,2').split(',').map((s) => Number(s.trim())).filter((n) => Number.isInteger(n) && n > 0)])].sort();
const SETTLE_MS = num('BENCH_SETTLE_MS', 1000);
const LAT_RATE = num('BENCH_LATENCY_RATE', 200);
const LAT_SECONDS = num('BENCH_LATENCY_SECONDS', 10);
const MEM_SPANS = num('BENCH_MEM_SPANS', Math.min(SPANS, 100_000));
const JOIN_DELAY_MS = num('BENCH_JOIN_DELAY_MS', 3000);
const TEMPLATE_SEEDS = Math.max(1, num('BENCH_TEMPLATE_SEEDS', 100));
const MAX_MESSAGE_BYTES = num('BENCH_MAX_MESSAGE_BYTES', 0);
const TIME_LIMIT_MS = num('BENCH_TIME_LIMIT_S', 330) * 1000;
const CPU_PROF = process.env['BENCH_CPU_PROF'] ? resolve(process.env['BENCH_CPU_PROF']) : undefined;
const KAFKA_VERSION = '4.2.0';
/** The correlator's input-progress tick (kafka-correlator.ts: settle_after / 4, within 20..1000 ms); idle traces settle by a timer set to the next due one. */
const TICK_MS = Math.max(20, Math.min(1000, Math.floor(SETTLE_MS / 4)));
const POLL_MS = 200;
const STOP_GRACE_MS = 30_000;
const TARGET_SPANS_S = 100_000;
const TARGET_BYTES_PER_SPAN = 1024;

const T0 = Date.now();
const left = () => T0 + TIME_LIMIT_MS - Date.now();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const step = (s: string) => process.stderr.write(`[bench correlator ${((Date.now() - T0) / 1000).toFixed(0)}s] ${s}\n`);
const fmt = (v: number | undefined, digits = 0) => (v === undefined || !Number.isFinite(v) ? '—' : v.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }));
const errText = (e: unknown) => (e instanceof Error ? `${e.name}: ${e.message}` : String(e)).replace(/\s+/g, ' ').slice(0, 600);

// ---------------------------------------------------------------------------------------------
// Kafka: topics, producing, reading the output back

/** LogAppendTime: record timestamps are the broker's append time ("appeared on the topic"). */
const APPEND_TIME = { 'message.timestamp.type': 'LogAppendTime' };

async function createTopics(admin: Admin, specs: Array<{ name: string; partitions: number; appendTime?: boolean; maxMessageBytes?: number }>): Promise<void> {
  // ensureTopics waits until every partition serves (ListOffsets answered by its leader), so the
  // first produce is not refused while a new partition's leader is still coming up.
  await admin.ensureTopics(specs.map((s) => ({
    name: s.name, partitions: s.partitions, replicationFactor: 1,
    configs: {
      'retention.ms': String(24 * 3600_000), 'cleanup.policy': 'delete', ...(s.appendTime ? APPEND_TIME : {}),
      ...(s.maxMessageBytes ? { 'max.message.bytes': String(s.maxMessageBytes) } : {}),
    },
  })));
}

async function endOffsets(admin: Admin, topic: string): Promise<number> {
  return (await admin.endOffsets(topic)).reduce((s, o) => s + o, 0);
}

/** True when `group` has committed every record of every topic. */
async function groupCaughtUp(admin: Admin, group: string, topics: string[]): Promise<boolean> {
  for (const t of topics) {
    const ends = await admin.endOffsets(t);
    const mine = await admin.committedOffsets(group, t);
    for (const [p, end] of ends.entries()) if (Math.max(0, mine[p] ?? -1) < end) return false;
  }
  return true;
}

/** Produces the items (each chunk: its traces' spans messages, then their audit events), `inFlight` sends at a time. */
async function produceItems(producer: Producer, items: WorkItem[], topics: { spans: string; audit: string }, what = { spans: true, audit: true }, chunk = 200, inFlight = 4): Promise<{ ms: number; messages: number }> {
  const t0 = performance.now();
  let next = 0;
  let messages = 0;
  await Promise.all(Array.from({ length: inFlight }, async () => {
    for (;;) {
      const i = next;
      next += chunk;
      if (i >= items.length) return;
      const slice = items.slice(i, i + chunk);
      const out: OutgoingMessage[] = what.spans ? slice.map((it) => ({ topic: topics.spans, key: it.spans.key, value: it.spans.value })) : [];
      if (what.audit) for (const it of slice) for (const a of it.audit) out.push({ topic: topics.audit, key: a.key, value: a.value });
      await producer.send(out);
      messages += out.length;
    }
  }));
  return { ms: performance.now() - t0, messages };
}

/**
 * Reads output topics back, each from its beginning, with a consumer of its own (packages/kafka)
 * created when the topic is first wanted (one group per topic, nothing committed). Done with a
 * topic, its consumer is disconnected.
 */
interface Reader {
  consumer: Promise<Consumer>;
  count: number;
  joined: boolean;
  paused: boolean;
  handle: (key: string | undefined, value: Buffer, timestamp: number) => void;
}

class OutputReader {
  private readonly readers = new Map<string, Reader>();
  private stopped = false;

  constructor(private readonly kafka: KafkaClient) {}

  /** Starts reading `topic` into `check`. */
  resume(topic: string, check: OutputCheck): void {
    this.read(topic, (key, value, ts) => check.add(key, value, ts));
  }

  /** Starts reading `topic`, handing each record's key and timestamp to `tap`. */
  resumeTap(topic: string, tap: (key: string, timestamp: number) => void): void {
    this.read(topic, (key, _value, ts) => tap(key ?? '', ts));
  }

  private read(topic: string, handle: (key: string | undefined, value: Buffer, timestamp: number) => void): void {
    if (this.stopped) throw new Error('output reader stopped');
    const known = this.readers.get(topic);
    if (known) {
      // Asked again (the same check, once the run ended): it keeps reading, into this handler.
      if (known.paused) throw new Error(`output reader: ${topic} was read and stopped; it cannot be read again`);
      known.handle = handle;
      return;
    }
    const consumer = this.kafka.consumer({ groupId: `kc-bench-reader-${process.pid}-${topic}`, topics: [topic], fromBeginning: true, maxWaitMs: 250 });
    const r: Reader = { consumer, count: 0, joined: false, paused: false, handle };
    this.readers.set(topic, r);
    void consumer.then(async (c) => {
      c.onAssignment(() => { r.joined = true; });
      await c.run(async (batch) => {
        for (const m of batch) if (m.value) r.handle(m.key?.toString('utf8'), m.value, Number(m.timestamp));
        r.count += batch.length;
      });
    });
  }

  /** Stops reading `topic` (what was read stays counted). */
  pause(topic: string): void {
    const r = this.readers.get(topic);
    if (!r || r.paused) return;
    r.paused = true;
    void r.consumer.then((c) => c.disconnect()).catch(() => undefined);
  }

  count(topic: string): number {
    return this.readers.get(topic)?.count ?? 0;
  }

  /** Waits until `n` messages of `topic` were read. */
  async readUpTo(topic: string, n: number, timeoutMs: number): Promise<void> {
    const r = this.readers.get(topic);
    if (!r) throw new Error(`output reader: ${topic} is not being read`);
    const deadline = Date.now() + timeoutMs;
    while (r.count < n) {
      if (Date.now() > deadline) throw new Error(`read ${r.count} of ${n} messages of ${topic} in ${timeoutMs} ms${r.joined ? '' : ' (its consumer never joined its group)'}`);
      await sleep(50);
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.race([Promise.all([...this.readers.values()].map((r) => r.consumer.then((c) => c.disconnect()).catch(() => undefined))), sleep(10_000)]);
  }
}

// ---------------------------------------------------------------------------------------------
// Measurement

interface PollSample {
  t: number;
  metrics: Array<CorrelatorMetrics | undefined>;
  cpu: number[];
  broker: number;
  machine: { busy: number; total: number };
  /** This process's CPU seconds (the polling itself, producing in the latency phase). */
  self: number;
}

const selfCpu = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1e6; };

function sample(procs: CorrelatorProcess[], broker: KafkaBroker, metrics: Array<CorrelatorMetrics | undefined>): PollSample {
  let b = NaN;
  try { b = broker.pid ? cpuSeconds(broker.pid) : NaN; } catch { /* gone */ }
  return { t: Date.now(), metrics, cpu: procs.map((p) => p.cpu()), broker: b, machine: machineBusySeconds(), self: selfCpu() };
}

/** CPU use between two samples: seconds per correlator, broker and this process, machine busy share. */
interface CpuWindow { seconds: number; correlators: number[]; broker: number; self: number; machineBusy: number; machineCores: number }

function cpuWindow(a: PollSample, b: PollSample): CpuWindow {
  const seconds = (b.t - a.t) / 1000;
  const total = b.machine.total - a.machine.total;
  return {
    seconds,
    correlators: b.cpu.map((c, i) => c - a.cpu[i]!),
    broker: b.broker - a.broker,
    self: b.self - a.self,
    machineBusy: total > 0 ? (b.machine.busy - a.machine.busy) / total : NaN,
    machineCores: cpus().length,
  };
}

/** The last sample at or before `t`, and the first at or after it. */
const sampleBefore = (s: PollSample[], t: number) => [...s].reverse().find((x) => x.t <= t) ?? s[0]!;
const sampleAfter = (s: PollSample[], t: number) => s.find((x) => x.t >= t) ?? s[s.length - 1]!;

// ---------------------------------------------------------------------------------------------
// Runs

interface InstanceResult {
  label: string;
  cpuSeconds: number;
  spansAccepted: number;
  assignments: number;
  warnings: string[];
  warningCount: number;
  peakRss: number;
  maxSpansInFlight: number;
  maxTracesInFlight: number;
  stop?: { graceful: boolean; ms: number; code: number | null; signal: NodeJS.Signals | null };
  profile?: string;
}

interface LatencyResult {
  traces: number;
  rate: number;
  seconds: number;
  fromAudit?: Stats;
  fromSpans?: Stats;
  /** Expected traces (lone authentication traces, which the correlator drops by design, are not expected) that did not complete. */
  incomplete: number;
  correlatorCores: number;
  check: CheckReport;
  /** Catch-up (the throughput run before): a request's pair appended → its last forwarded audit event appended. */
  catchUpGap?: Stats;
  /** Where the time goes, per request trace (appended = the broker's LogAppendTime on the internal topics). */
  breakdown: {
    /** Spans message appended → its audit id's pair appended to kc_audit_trace. */
    pair?: Stats;
    /** Last audit event appended → its last forwarded copy appended to kc_audit_by_trace. */
    forward?: Stats;
    /** Last forwarded copy appended → complete tree appended, minus settle_after. */
    settle?: Stats;
  };
}

interface RunResult {
  tag: string;
  partitions: number;
  instances: number;
  spans: number;
  /** First consumed message → last tree appended. */
  windowMs?: number;
  /** First consumed message → every input message consumed (poll resolution). */
  consumeMs?: number;
  /** Share of the audit events consumed when the last spans message was, and the reverse (catch-up skew). */
  auditAtSpansDone?: number;
  spansAtAuditDone?: number;
  spansPerSec?: number;
  cpu?: CpuWindow;
  inst: InstanceResult[];
  check?: CheckReport;
  failures: string[];
  notes: string[];
  latency?: LatencyResult;
}

interface Ctx {
  broker: KafkaBroker;
  kafka: KafkaClient;
  admin: Admin;
  producer: Producer;
  reader: OutputReader;
  work: Workload;
  factory: WorkloadFactory;
  dir: string;
}

const runTopics = (tag: string, inputs: { spans: string; audit: string }): RunTopics => ({
  ...inputs, auditTrace: `kc_audit_trace-${tag}`, auditByTrace: `kc_audit_by_trace-${tag}`, correlated: `otlp_correlated-${tag}`,
});

const inputTopics = (partitions: number) => ({ spans: `otlp_spans-p${partitions}`, audit: `k8s_audit-p${partitions}` });

/** Internal and output topics of a run, as the correlator would create them (auditTrace like the audit topic, the others like the spans topic). */
const runTopicSpecs = (t: RunTopics, partitions: number) => [
  { name: t.auditTrace, partitions, appendTime: true },
  { name: t.auditByTrace, partitions, appendTime: true },
  // See BENCH_MAX_MESSAGE_BYTES.
  { name: t.correlated, partitions, appendTime: true, ...(MAX_MESSAGE_BYTES ? { maxMessageBytes: MAX_MESSAGE_BYTES } : {}) },
];

async function throughputRun(ctx: Ctx, partitions: number, instances: number, withLatency: boolean): Promise<RunResult> {
  const tag = `p${partitions}-x${instances}`;
  const topics = runTopics(tag, inputTopics(partitions));
  const group = `kc-bench-${tag}`;
  const res: RunResult = { tag, partitions, instances, spans: ctx.work.spans, inst: [], failures: [], notes: [] };
  const check = new OutputCheck();
  for (const it of ctx.work.items) check.expect(it.expect);
  const config = writeCorrelatorConfig(ctx.dir, tag, topics, { settleAfter: `${SETTLE_MS}ms` });
  step(`${tag}: starting ${instances} correlator(s) on ${topics.spans} + ${topics.audit} (${partitions} partitions), settle_after ${SETTLE_MS} ms`);
  const procs = await Promise.all(Array.from({ length: instances }, (_, i) => CorrelatorProcess.start({
    label: `${tag}#${i + 1}`, config, brokers: ctx.broker.brokers, group, ...(CPU_PROF ? { cpuProfDir: CPU_PROF } : {}),
  })));
  const samples: PollSample[] = [];
  const maxInFlight = procs.map(() => ({ spans: 0, traces: 0 }));
  let tFirst: number | undefined;
  let tAllIn: number | undefined;
  let done = false;
  const budget = Math.min(Math.max(90_000, (ctx.work.spans / 2000) * 1000), left() - 20_000);
  const deadline = Date.now() + budget;
  try {
    let last: PollSample | undefined;
    while (!done) {
      const m = await Promise.all(procs.map((p) => p.metrics()));
      const s = sample(procs, ctx.broker, m);
      samples.push(s);
      m.forEach((x, i) => {
        if (!x) return;
        maxInFlight[i]!.spans = Math.max(maxInFlight[i]!.spans, x.spansInFlight);
        maxInFlight[i]!.traces = Math.max(maxInFlight[i]!.traces, x.tracesInFlight);
      });
      const dead = procs.find((p) => !p.running);
      if (dead) throw new Error(`correlator ${dead.label} exited (${JSON.stringify(dead.exitInfo)}):\n${dead.stderrTail(1500)}`);
      const sum = (k: keyof CorrelatorMetrics) => m.reduce((a, x) => a + ((x?.[k] as number | undefined) ?? 0), 0);
      const consumed = sum('spansAccepted') + sum('auditAccepted');
      if (tFirst === undefined && consumed > 0) tFirst = last ? (last.t + s.t) / 2 : s.t;
      if (tAllIn === undefined && sum('spansAccepted') >= ctx.work.spans && sum('auditAccepted') >= ctx.work.auditEvents) tAllIn = s.t;
      if (res.auditAtSpansDone === undefined && sum('spansAccepted') >= ctx.work.spans) res.auditAtSpansDone = Math.min(1, sum('auditAccepted') / ctx.work.auditEvents);
      if (res.spansAtAuditDone === undefined && sum('auditAccepted') >= ctx.work.auditEvents) res.spansAtAuditDone = Math.min(1, sum('spansAccepted') / ctx.work.spans);
      if (tAllIn !== undefined && m.every((x) => x) && sum('tracesInFlight') === 0 && sum('pendingAudits') === 0) {
        done = await groupCaughtUp(ctx.admin, group, [topics.spans, topics.audit, topics.auditTrace, topics.auditByTrace]);
      }
      if (!done) {
        if (Date.now() > deadline) {
          throw new Error(`not done after ${(budget / 1000).toFixed(0)} s: consumed ${sum('spansAccepted')}/${ctx.work.spans} spans, ${sum('auditAccepted')}/${ctx.work.auditEvents} audit events; in flight ${sum('tracesInFlight')} traces, ${sum('pendingAudits')} pending audits`);
        }
        await sleep(POLL_MS);
      }
      last = s;
    }
    step(`${tag}: every input consumed and settled, the group committed everything`);
    if (withLatency) res.latency = await latencyPhase(ctx, procs[0]!, topics, check);
  } catch (e) {
    res.failures.push(errText(e));
    for (const p of procs) process.stderr.write(`--- ${p.label} log (tail) ---\n${p.stderrTail(4000)}\n`);
  } finally {
    for (const [i, p] of procs.entries()) {
      let peak = NaN;
      try { peak = peakRssBytes(p.pid); } catch { /* gone */ }
      const final = samples[samples.length - 1]?.metrics[i];
      res.inst.push({
        label: p.label, cpuSeconds: NaN, spansAccepted: final?.spansAccepted ?? NaN, assignments: 0, warnings: [], warningCount: 0,
        peakRss: peak, maxSpansInFlight: maxInFlight[i]!.spans, maxTracesInFlight: maxInFlight[i]!.traces,
      });
    }
    // Everything is settled: read the output back while the correlators shut down.
    if (!withLatency && res.failures.length === 0) ctx.reader.resume(topics.correlated, check);
    const stops = await Promise.all(procs.map((p) => p.stop(STOP_GRACE_MS)));
    procs.forEach((p, i) => {
      const r = res.inst[i]!;
      r.stop = stops[i];
      r.assignments = p.assignments;
      r.warnings = p.warnings;
      r.warningCount = p.warningCount;
      if (!stops[i]!.graceful) res.failures.push(`${p.label} did not exit cleanly on SIGTERM (code ${stops[i]!.code}, signal ${stops[i]!.signal}, after ${stops[i]!.ms} ms)`);
      if (p.assignments !== 1) res.notes.push(`${p.label} was assigned partitions ${p.assignments} times (1 = no rebalance)`);
    });
  }

  // Read the output back (the latency phase already read it while it ran).
  try {
    const n = await endOffsets(ctx.admin, topics.correlated);
    ctx.reader.resume(topics.correlated, check);
    await ctx.reader.readUpTo(topics.correlated, n, 60_000);
    ctx.reader.pause(topics.correlated);
  } catch (e) {
    res.failures.push(`reading ${topics.correlated}: ${errText(e)}`);
  }
  const rep = check.report('main');
  res.check = rep;
  res.failures.push(...checkProblems(rep));
  res.notes.push(...checkNotes(rep));
  // Figures only from a run whose output is right (a stalled or wrong run's rate means nothing).
  if (res.failures.length === 0 && tFirst !== undefined && rep.lastAt !== undefined && samples.length) {
    res.windowMs = rep.lastAt - tFirst;
    res.spansPerSec = ctx.work.spans / (res.windowMs / 1000);
    if (tAllIn !== undefined) res.consumeMs = tAllIn - tFirst;
    const a = sampleBefore(samples, tFirst);
    const b = sampleAfter(samples, rep.lastAt);
    res.cpu = cpuWindow(a, b);
    res.cpu.correlators.forEach((c, i) => { res.inst[i]!.cpuSeconds = c; });
  }
  // Profiles: written at exit, named by pid.
  if (CPU_PROF) {
    for (const [i, p] of procs.entries()) {
      const f = readdirSync(CPU_PROF).find((x) => x.endsWith('.cpuprofile') && x.split('.').includes(String(p.pid)));
      if (!f) { res.notes.push(`no CPU profile of ${p.label} (pid ${p.pid}) in ${CPU_PROF}`); continue; }
      const to = join(CPU_PROF, `correlator-${tag}-${i + 1}.cpuprofile`);
      renameSync(join(CPU_PROF, f), to);
      res.inst[i]!.profile = to;
    }
  }
  step(`${tag}: ${fmt(res.spansPerSec)} spans/s; ${res.failures.length ? `FAILED: ${res.failures.join('; ')}` : 'output ok'}`);
  return res;
}

/** Live traces at a fixed rate into the run's input topics, with the (caught-up) correlator running. */
async function latencyPhase(ctx: Ctx, proc: CorrelatorProcess, topics: RunTopics, check: OutputCheck): Promise<LatencyResult> {
  const n = Math.max(1, Math.round(LAT_RATE * LAT_SECONDS));
  const items: WorkItem[] = [];
  while (items.length < n) items.push(...ctx.factory.make(1).items);
  items.length = n;
  for (const it of items) check.expect(it.expect, 'live');
  // The internal topics' append times: each audit id's (first) pair, each trace's last forwarded audit event.
  const pairAt = new Map<string, number>();
  const fwdAt = new Map<string, number>();
  ctx.reader.resumeTap(topics.auditTrace, (key, ts) => { if (!pairAt.has(key)) pairAt.set(key, ts); });
  ctx.reader.resumeTap(topics.auditByTrace, (key, ts) => { const v = fwdAt.get(key); if (v === undefined || ts > v) fwdAt.set(key, ts); });
  // Read the throughput run's output (and internal topics) first, so that this does not overlap the live phase.
  ctx.reader.resume(topics.correlated, check);
  for (const t of [topics.correlated, topics.auditTrace, topics.auditByTrace]) await ctx.reader.readUpTo(t, await endOffsets(ctx.admin, t), 60_000);
  // During the catch-up: from a trace's pair (its spans processed) to its audit events forwarded.
  const gap: number[] = [];
  for (const it of ctx.work.items) {
    const a = it.expect.audits[0];
    const p = a ? pairAt.get(a.auditId) : undefined;
    const f = fwdAt.get(it.expect.traceId);
    if (p !== undefined && f !== undefined) gap.push(f - p);
  }
  const ackSpans = new Map<string, number>();
  const ackAudit = new Map<string, number>();
  step(`latency: ${n} traces live at ${LAT_RATE} traces/s`);
  // Acknowledged = appended: the time the produce call resolved (acks=all), on this machine's clock
  // as the output's LogAppendTime is; it is later than the broker's append by the answer's way back.
  const live = ctx.producer;
  const appended = () => Date.now();
  const cpu0 = proc.cpu();
  const t0 = Date.now();
  let sent = 0;
  while (sent < n) {
    const due = Math.min(n, Math.floor(((Date.now() - t0) / 1000) * LAT_RATE) + 1);
    if (due > sent) {
      const slice = items.slice(sent, due);
      sent = due;
      // As a collector: the spans of these traces, then their audit events.
      await live.send(slice.map((it) => ({ topic: topics.spans, key: it.spans.key, value: it.spans.value })));
      const a = appended();
      for (const it of slice) ackSpans.set(it.expect.traceId, a);
      const audit: OutgoingMessage[] = slice.flatMap((it) => it.audit.map((m) => ({ topic: topics.audit, key: m.key, value: m.value })));
      let b = a;
      if (audit.length) {
        await live.send(audit);
        b = appended();
      }
      // A trace without audit events (the caller's, a detached span) ends with its spans.
      for (const it of slice) ackAudit.set(it.expect.traceId, it.audit.length ? b : a);
    }
    const next = t0 + (sent / LAT_RATE) * 1000;
    await sleep(Math.max(1, Math.min(50, next - Date.now())));
  }
  const seconds = (Date.now() - t0) / 1000;
  const deadline = Date.now() + SETTLE_MS + 10_000;
  // (Lone authentication traces are dropped by the correlator: not expected.)
  const expectedLive = check.report('live').expectedTraces;
  while (check.report('live').complete < expectedLive && Date.now() < deadline) await sleep(100);
  const cores = (proc.cpu() - cpu0) / ((Date.now() - t0) / 1000);
  const fromAudit: number[] = [];
  const fromSpans: number[] = [];
  const pair: number[] = [];
  const forward: number[] = [];
  const settle: number[] = [];
  for (const it of items) {
    const id = it.expect.traceId;
    const at = check.completedAt(id);
    if (at !== undefined) {
      fromAudit.push(at - ackAudit.get(id)! - SETTLE_MS);
      fromSpans.push(at - ackSpans.get(id)! - SETTLE_MS);
    }
    if (!it.expect.audits.length) continue;
    const p = pairAt.get(it.expect.audits[0]!.auditId);
    if (p !== undefined) pair.push(p - ackSpans.get(id)!);
    const f = fwdAt.get(id);
    if (f !== undefined) {
      forward.push(f - ackAudit.get(id)!);
      if (at !== undefined) settle.push(at - f - SETTLE_MS);
    }
  }
  for (const t of [topics.auditTrace, topics.auditByTrace]) ctx.reader.pause(t);
  const rep = check.report('live');
  return {
    traces: n, rate: LAT_RATE, seconds, fromAudit: stats(fromAudit), fromSpans: stats(fromSpans), incomplete: expectedLive - fromAudit.length, correlatorCores: cores, check: rep,
    breakdown: { pair: stats(pair), forward: stats(forward), settle: stats(settle) }, catchUpGap: stats(gap),
  };
}

interface MemoryResult {
  spans: number;
  traces: number;
  auditEvents: number;
  baseline: { rss: number; heap?: number };
  spansOnly?: { rss: number; heap?: number; spansInFlight: number; tracesInFlight: number };
  withAudit?: { rss: number; heap?: number; external?: number; spansInFlight: number; tracesInFlight: number; pending: number };
  peakRss?: number;
  shutdown?: { graceful: boolean; ms: number };
  failures: string[];
  notes: string[];
}

/** RSS per in-flight span: nothing settles (settle_after 1 h, caps far above the workload). */
async function memoryPhase(ctx: Ctx): Promise<MemoryResult> {
  const items: WorkItem[] = [];
  let spans = 0;
  for (const it of ctx.work.items) {
    if (spans >= MEM_SPANS) break;
    items.push(it);
    spans += it.expect.spanIds.length;
  }
  const auditEvents = items.reduce((a, it) => a + it.audit.length, 0);
  const auditIds = items.reduce((a, it) => a + it.expect.audits.length, 0);
  const res: MemoryResult = { spans, traces: items.length, auditEvents, baseline: { rss: NaN }, failures: [], notes: [] };
  const inputs = { spans: `otlp_spans-mem`, audit: `k8s_audit-mem` };
  const topics = runTopics('mem', inputs);
  await createTopics(ctx.admin, [{ name: inputs.spans, partitions: PARTITIONS }, { name: inputs.audit, partitions: PARTITIONS }, ...runTopicSpecs(topics, PARTITIONS)]);
  const big = 10 * (items.length + auditIds) + 100_000;
  const config = writeCorrelatorConfig(ctx.dir, 'mem', topics, { settleAfter: '1h', pendingAuditTtl: '1h', maxTracesInFlight: big, pairCacheSize: big });
  step(`memory: starting a correlator that settles nothing (settle_after 1h, max_traces_in_flight ${big})`);
  const proc = await CorrelatorProcess.start({ label: 'mem', config, brokers: ctx.broker.brokers, group: 'kc-bench-mem', ...(CPU_PROF ? { cpuProfDir: CPU_PROF } : {}) });
  /** RSS and heap once `cond` holds and RSS stopped moving. */
  const settle = async (what: string, cond: (m: CorrelatorMetrics) => boolean, timeoutMs: number) => {
    const deadline = Date.now() + timeoutMs;
    const hist: Array<{ t: number; rss: number }> = [];
    for (;;) {
      const m = await proc.metrics();
      if (!proc.running) throw new Error(`the memory correlator exited: ${proc.stderrTail(1500)}`);
      if (m && cond(m)) {
        const rss = proc.rss();
        hist.push({ t: Date.now(), rss });
        // Stable: over the last 1.5 s RSS moved by at most 1% (or 2 MiB).
        const recent = hist.filter((h) => h.t >= Date.now() - 1500);
        if (hist[0]!.t <= Date.now() - 1500 && recent.length >= 3) {
          const lo = Math.min(...recent.map((h) => h.rss));
          const hi = Math.max(...recent.map((h) => h.rss));
          if (hi - lo <= Math.max(0.01 * hi, 2 * 2 ** 20)) return { m, rss };
        }
      } else hist.length = 0;
      if (Date.now() > deadline) throw new Error(`memory: ${what} not reached in ${timeoutMs} ms (${JSON.stringify(m)})`);
      await sleep(250);
    }
  };
  try {
    await proc.ready(30_000 + JOIN_DELAY_MS);
    const base = await settle('idle baseline', () => true, 20_000);
    res.baseline = { rss: base.rss, ...(base.m.heapUsed !== undefined ? { heap: base.m.heapUsed } : {}) };
    step(`memory: baseline RSS ${mib(base.rss)} MiB; producing ${spans} spans`);
    await produceItems(ctx.producer, items, inputs, { spans: true, audit: false });
    const a = await settle('every span in flight', (m) => m.spansInFlight >= spans && m.joined >= auditIds, 90_000);
    res.spansOnly = { rss: a.rss, spansInFlight: a.m.spansInFlight, tracesInFlight: a.m.tracesInFlight, ...(a.m.heapUsed !== undefined ? { heap: a.m.heapUsed } : {}) };
    step(`memory: spans only: RSS ${mib(a.rss)} MiB for ${a.m.spansInFlight} spans; producing ${auditEvents} audit events`);
    await produceItems(ctx.producer, items, inputs, { spans: false, audit: true });
    // Forwarded copies: all on kc_audit_by_trace first, then RSS stops growing as the correlator reads them.
    const fwdDeadline = Date.now() + 60_000;
    while ((await endOffsets(ctx.admin, topics.auditByTrace)) < auditEvents) {
      if (Date.now() > fwdDeadline) throw new Error('memory: the audit events were not all forwarded within 60 s');
      await sleep(250);
    }
    const b = await settle('every audit event joined', (m) => m.auditAccepted >= auditEvents && m.pendingAudits === 0, 60_000);
    res.withAudit = {
      rss: b.rss, spansInFlight: b.m.spansInFlight, tracesInFlight: b.m.tracesInFlight, pending: b.m.pendingAudits,
      ...(b.m.heapUsed !== undefined ? { heap: b.m.heapUsed } : {}), ...(b.m.external !== undefined ? { external: b.m.external } : {}),
    };
    if (b.m.spansInFlight !== spans) res.failures.push(`spans_in_flight is ${b.m.spansInFlight}, ${spans} spans were produced`);
    if (b.m.tracesInFlight !== items.length) res.failures.push(`traces_in_flight is ${b.m.tracesInFlight}, ${items.length} traces were produced`);
    if (b.m.settled !== 0) res.failures.push(`${b.m.settled} traces settled although settle_after is 1 h`);
    step(`memory: with audit events: RSS ${mib(b.rss)} MiB`);
  } catch (e) {
    res.failures.push(errText(e));
    try {
      const parts = async (t: string) => (await ctx.admin.endOffsets(t)).join(',');
      process.stderr.write(`[bench correlator] memory run failed; end offsets: ${inputs.spans} ${await parts(inputs.spans)}; ${topics.auditTrace} ${await parts(topics.auditTrace)}; ${topics.auditByTrace} ${await parts(topics.auditByTrace)}\n${proc.stderrTail(3000)}\n`);
    } catch { /* diagnostics only */ }
  } finally {
    try { res.peakRss = peakRssBytes(proc.pid); } catch { /* gone */ }
    const st = await proc.stop(STOP_GRACE_MS);
    res.shutdown = { graceful: st.graceful, ms: st.ms };
    if (!st.graceful) res.failures.push(`did not exit cleanly on SIGTERM within ${STOP_GRACE_MS} ms (code ${st.code}, signal ${st.signal})`);
    if (proc.warningCount) res.notes.push(`${proc.warningCount} warnings logged: ${proc.warnings[0]}`);
  }
  return res;
}

// ---------------------------------------------------------------------------------------------
// Report


const pct = (v: number | undefined) => (v === undefined || !Number.isFinite(v) ? '—' : `${(100 * v).toFixed(0)}%`);
const cores = (cpuS: number | undefined, wallS: number | undefined) => (cpuS === undefined || !wallS ? '—' : (cpuS / wallS).toFixed(2));

interface Report {
  loadStart: string;
  reference?: ReturnType<typeof referenceHeap>;
  prefill: Array<{ partitions: number; ms: number; messages: number }>;
  runs: RunResult[];
  memory?: MemoryResult;
  skipped: string[];
  profileSummary?: string;
  brokerReadyMs?: number;
}

function render(r: Report): { text: string; failed: boolean } {
  const W = workSummary;
  const lines: string[] = [];
  let failed = false;
  lines.push(`Machine: ${machineDescription()}; load average ${r.loadStart} at start, ${loadAverage()} at end. Kafka ${KAFKA_VERSION}, one KRaft broker on loopback${r.brokerReadyMs ? ` (ready in ${(r.brokerReadyMs / 1000).toFixed(1)} s)` : ''}, group.initial.rebalance.delay.ms ${JOIN_DELAY_MS}.`);
  if (W) lines.push(`Workload: ${fmt(W.spans)} spans in ${fmt(W.traces)} traces (one otlp_spans message each, ${fmt(W.spanBytes / W.traces)} B on average) and ${fmt(W.auditEvents)} audit events (${fmt(W.auditIds)} requests, ${fmt(W.auditBytes / W.auditEvents)} B each), copies of generateDeploymentScenario seeds 1–${TEMPLATE_SEEDS} with fresh ids. Correlators: collector-config/kafka-correlator.yaml with settle_after ${SETTLE_MS} ms (a timer set to the next due trace, at most every 20 ms; input-progress tick every ${TICK_MS} ms), per-run internal and output topics.`);
  for (const p of r.prefill) lines.push(`Pre-fill at ${p.partitions} partitions: ${fmt(p.messages)} messages in ${(p.ms / 1000).toFixed(1)} s (packages/kafka producer, acks=all).`);
  if (CPU_PROF) lines.push(`**Correlators ran with --cpu-prof (${CPU_PROF}): throughput and CPU include the profiler's overhead.**`);
  const bench3 = r.runs.find((x) => x.partitions === PARTITIONS && x.instances === 1);

  // --- Bench 3
  lines.push('');
  lines.push(`### 3. Correlator: one instance, ${PARTITIONS} partitions`);
  lines.push('');
  lines.push('| measure | result | target |');
  lines.push('|---|---|---|');
  if (bench3) {
    const c = bench3.cpu;
    const met = bench3.spansPerSec !== undefined && bench3.spansPerSec >= TARGET_SPANS_S;
    lines.push(`| throughput: spans joined and settled per second, first consumed message → last tree appended | **${fmt(bench3.spansPerSec)} spans/s** (${fmt(bench3.spans)} spans in ${fmt((bench3.windowMs ?? NaN) / 1000, 2)} s) | ≥ ${fmt(TARGET_SPANS_S)}: **${bench3.spansPerSec === undefined ? 'not measured' : met ? 'met' : 'not met'}** |`);
    if (bench3.consumeMs !== undefined && bench3.windowMs !== undefined) {
      lines.push(`| of which consuming every input message | ${fmt(bench3.consumeMs / 1000, 2)} s (${fmt(bench3.spans / (bench3.consumeMs / 1000))} spans/s); the remaining ${fmt((bench3.windowMs - bench3.consumeMs) / 1000, 2)} s is the last traces' idle window (${SETTLE_MS} ms) and settling | |`);
    }
    if (c) {
      lines.push(`| correlator CPU | ${fmt(c.correlators[0], 1)} s = ${fmt((c.correlators[0]! / bench3.spans) * 1e6, 1)} CPU s per million spans (${cores(c.correlators[0], c.seconds)} cores) | |`);
      lines.push(`| broker CPU (JVM) | ${fmt(c.broker, 1)} s (${cores(c.broker, c.seconds)} cores) | |`);
      lines.push(`| machine busy | ${pct(c.machineBusy)} of ${c.machineCores} cores (this bench process: ${cores(c.self, c.seconds)} cores) | |`);
    }
    if (bench3.check) {
      const late = bench3.check.auditsJoinedLate;
      const g = bench3.latency?.catchUpGap;
      lines.push(`| catch-up: requests whose audit events reached their trace after it had settled | ${fmt(late)} of ${fmt(W?.auditIds)} (${pct(late / (W?.auditIds ?? NaN))}): such a trace is written twice (its spans without k8s.audit.*, then an update holding the audit span), ${fmt(bench3.check.messages)} messages for ${fmt(bench3.check.expectedTraces)} traces${g ? `. A request's pair appended (its spans processed) → its audit events forwarded: p50 ${fmt(g.p50 / 1000, 2)} s, p99 ${fmt(g.p99 / 1000, 2)} s, against settle_after ${fmt(SETTLE_MS / 1000, 2)} s` : ''}${bench3.auditAtSpansDone !== undefined ? `; when the last spans message was consumed, ${pct(bench3.auditAtSpansDone)} of the audit events had been` : ''} | |`);
    }
    const i0 = bench3.inst[0];
    if (i0) lines.push(`| in flight during the run (max) | ${fmt(i0.maxTracesInFlight)} traces, ${fmt(i0.maxSpansInFlight)} spans; peak RSS ${mib(i0.peakRss)} MiB | |`);
    const L = bench3.latency;
    if (L) {
      const a = L.fromAudit;
      const s = L.fromSpans;
      lines.push(`| latency beyond the idle window: last message (audit event) appended to k8s_audit → complete tree appended to otlp_correlated, minus settle_after ${SETTLE_MS} ms | ${a ? `p50 **${fmt(a.p50)} ms**, p99 **${fmt(a.p99)} ms**, max ${fmt(a.max)} ms (min ${fmt(a.min)}, n=${fmt(a.n)})` : '—'} | |`);
      lines.push(`| same, from the trace's spans message appended to otlp_spans | ${s ? `p50 ${fmt(s.p50)} ms, p99 ${fmt(s.p99)} ms, max ${fmt(s.max)} ms` : '—'} | |`);
      const st = (x: Stats | undefined) => (x ? `p50 ${fmt(x.p50)}, p99 ${fmt(x.p99)}, max ${fmt(x.max)} ms` : '—');
      lines.push(`| where it goes (request traces): spans appended → pair appended to kc_audit_trace | ${st(L.breakdown.pair)} | |`);
      lines.push(`| … last audit event appended → its forwarded copy appended to kc_audit_by_trace | ${st(L.breakdown.forward)} | |`);
      lines.push(`| … forwarded copy appended → tree appended, minus settle_after (due timer + settle write) | ${st(L.breakdown.settle)} | |`);
      lines.push(`| live load | ${fmt(L.traces)} traces at ${L.rate}/s (${fmt(L.rate * (W ? W.spans / W.traces : 5.4))} spans/s) for ${L.seconds.toFixed(1)} s; correlator ${L.correlatorCores.toFixed(2)} cores${L.incomplete ? `; **${L.incomplete} traces incomplete**` : ''} | |`);
    }
  } else {
    lines.push(`| throughput | not measured | ≥ ${fmt(TARGET_SPANS_S)} spans/s |`);
  }
  const M = r.memory;
  if (M) {
    const per = (x: number | undefined, base: number | undefined, n: number | undefined) => (x === undefined || base === undefined || !n ? undefined : (x - base) / n);
    const rssPer = per(M.withAudit?.rss, M.baseline.rss, M.withAudit?.spansInFlight);
    const rssPerSpansOnly = per(M.spansOnly?.rss, M.baseline.rss, M.spansOnly?.spansInFlight);
    const heapPer = per(M.withAudit?.heap, M.baseline.heap, M.withAudit?.spansInFlight);
    const heapPerSpansOnly = per(M.spansOnly?.heap, M.baseline.heap, M.spansOnly?.spansInFlight);
    const met = rssPer !== undefined && rssPer <= TARGET_BYTES_PER_SPAN;
    lines.push(`| memory: RSS per in-flight span, spans with their audit events in flight | **${fmt(rssPer)} B** ((${mib(M.withAudit?.rss ?? NaN)} − ${mib(M.baseline.rss)} MiB) / ${fmt(M.withAudit?.spansInFlight)} spans, ${fmt(M.withAudit?.tracesInFlight)} traces, ${fmt(M.auditEvents)} audit events); heap used ${fmt(heapPer)} B per span | ≤ ${TARGET_BYTES_PER_SPAN} B: **${rssPer === undefined ? 'not measured' : met ? 'met' : 'not met'}** |`);
    lines.push(`| memory: the same with spans only (before the audit events were produced) | ${fmt(rssPerSpansOnly)} B RSS, ${fmt(heapPerSpansOnly)} B heap used per span | |`);
    const R = r.reference;
    if (R) lines.push(`| reference, measured in the bench process: the in-flight objects alone | decoded Span objects ${fmt(R.perSpan)} B of heap per span (from ${fmt(R.wirePerSpan)} B of protobuf); parsed audit Events ${fmt(R.perEvent)} B each (from ${fmt(R.wirePerEvent)} B of JSON), ${fmt(R.auditPerSpan)} B per span of this workload | |`);
    lines.push(`| memory: baseline (connected, idle) / peak | RSS ${mib(M.baseline.rss)} MiB, heap used ${mib(M.baseline.heap ?? NaN)} MiB / peak RSS ${mib(M.peakRss ?? NaN)} MiB${M.shutdown ? `; SIGTERM settled everything and exited in ${(M.shutdown.ms / 1000).toFixed(1)} s` : ''} | |`);
  }
  lines.push('');
  if (bench3) {
    lines.push(`Checks (bench 3 run): ${checkLine(bench3)}`);
    if (bench3.latency) {
      const lc = bench3.latency.check;
      const p = checkProblems(lc).filter((x) => !/unexpected|under another|undecodable/.test(x));
      lines.push(`Checks (live traces): ${lc.complete}/${lc.expectedTraces} complete${p.length ? `; **${p.join('; ')}**` : ''}${lc.splitTraces ? `; ${lc.splitTraces} split` : ''}.`);
      if (p.length) failed = true;
    }
    if (bench3.failures.length) failed = true;
  }
  if (M) {
    lines.push(`Checks (memory run): ${M.failures.length ? `**FAILED: ${M.failures.join('; ')}**` : 'ok (spans_in_flight and traces_in_flight equal what was produced, nothing settled, no audit pending, clean exit)'}${M.notes.length ? `; ${M.notes.join('; ')}` : ''}`);
    if (M.failures.length) failed = true;
  }
  if (bench3?.latency) {
    const L = bench3.latency;
    const p50 = (x: Stats | undefined) => (x ? `${fmt(x.p50)} ms` : '—');
    lines.push('');
    lines.push(`How a trace settles (packages/correlator/src/kafka-correlator.ts): each trace keeps the wall time of its last update (a spans message, or a forwarded audit event read back from kc_audit_by_trace); a timer set to the earliest due time (last update + settle_after, ${SETTLE_MS} ms; at most every 20 ms) settles the traces idle for ≥ settle_after and writes them to otlp_correlated (acks=all); a tick every ${TICK_MS} ms (settle_after/4, within 20–1000 ms) reads the input's progress, lets go what waited for it, and commits. A live request's last update is its forwarded audit events, so its p50 of ${p50(L.fromAudit)} beyond the idle window is made of: (a) its audit events' way through the correlator: read from k8s_audit, paired (the pair from kc_audit_trace is there since the spans came first), written to kc_audit_by_trace: p50 ${p50(L.breakdown.forward)} from the audit event's append; (b) reading that copy back (which starts the idle window), then the due timer (0–20 ms after the due time), then encoding and writing the settle batch: p50 ${p50(L.breakdown.settle)} from the copy's append, minus settle_after. The spans' own way (spans appended → pair appended) took p50 ${p50(L.breakdown.pair)}, in parallel with (a).`);
  }

  // --- Bench 4
  lines.push('');
  lines.push('### 4. Scale: 1 versus 2 instances in one group, same pre-filled topics');
  lines.push('');
  lines.push('| partitions | instances | spans/s | ×1 instance | spans per instance (each) | correlator CPU s per M spans | correlator cores (each) | broker cores | machine busy | checks |');
  lines.push('|---:|---:|---:|---:|---|---:|---|---:|---:|---|');
  const parts = [...new Set(r.runs.map((x) => x.partitions))].sort((a, b) => a - b);
  for (const p of parts) {
    const one = r.runs.find((x) => x.partitions === p && x.instances === 1);
    for (const run of r.runs.filter((x) => x.partitions === p).sort((a, b) => a.instances - b.instances)) {
      const c = run.cpu;
      const ratio = one?.spansPerSec && run.spansPerSec ? `${(run.spansPerSec / one.spansPerSec).toFixed(2)}×` : '—';
      const tot = c ? c.correlators.reduce((a, b) => a + b, 0) : undefined;
      lines.push(`| ${p} | ${run.instances} | ${fmt(run.spansPerSec)} | ${run.instances === 1 ? '1.00×' : ratio} | ${run.inst.map((i) => fmt(i.spansAccepted)).join(', ')} | ${tot === undefined ? '—' : fmt((tot / run.spans) * 1e6, 1)} | ${c ? c.correlators.map((x) => cores(x, c.seconds)).join(', ') : '—'} | ${cores(c?.broker, c?.seconds)} | ${pct(c?.machineBusy)} | ${run.failures.length ? '**FAILED**' : 'ok'} |`);
      if (run.failures.length) failed = true;
    }
  }
  for (const run of r.runs.filter((x) => x !== bench3)) lines.push(`- ${run.tag}: ${checkLine(run)}`);
  if (r.skipped.length) lines.push(`- skipped: ${r.skipped.join('; ')}`);
  lines.push('');
  lines.push(`**What limits the result:** ${limits(r.runs)}`);
  if (r.profileSummary) {
    lines.push('');
    lines.push(`### CPU profile of the bench-3 correlator`);
    lines.push('');
    lines.push(r.profileSummary);
  }
  return { text: lines.join('\n'), failed };
}

function checkLine(run: RunResult): string {
  const c = run.check;
  const base = c ? `${fmt(c.complete)}/${fmt(c.expectedTraces)} traces complete (every span; every audit request joined: an audit span with all its stages under a span of its trace), ${fmt(c.messages)} messages (${fmt(c.bytes / Math.max(1, c.messagesRead))} B on average, largest ${fmt(c.maxBytes)} B)` : 'output not read';
  const inst = run.inst.map((i) => `${i.label}: ${i.assignments} assignment(s), exit ${i.stop ? `${i.stop.graceful ? 'clean' : 'NOT clean'} in ${(i.stop.ms / 1000).toFixed(1)} s` : '?'}${i.warningCount ? `, ${i.warningCount} warnings (${i.warnings[0]?.slice(0, 160)})` : ''}`).join('; ');
  const notes = run.notes.length ? `; notes: ${run.notes.join('; ')}` : '';
  return `${run.failures.length ? `**FAILED: ${run.failures.join('; ')}**; ` : 'ok; '}${base}; ${inst}${notes}`.replace(/\|/g, '\\|');
}

/** What limits one instance, and 1 → 2 instances, reasoned from the measured CPU figures. */
function limits(runs: RunResult[]): string {
  const out: string[] = [];
  const n = cpus().length;
  const describe = (run: RunResult) => {
    const c = run.cpu!;
    const corr = c.correlators.map((x) => x / c.seconds);
    const busy = c.machineBusy * n;
    const broker = c.broker / c.seconds;
    const self = c.self / c.seconds;
    const other = Math.max(0, busy - corr.reduce((a, b) => a + b, 0) - broker - self);
    return { corr, broker, self, busy, other, perM: (c.correlators.reduce((a, b) => a + b, 0) / run.spans) * 1e6 };
  };
  const singles = runs.filter((x) => x.instances === 1 && x.cpu && x.spansPerSec).map((x) => describe(x).perM);
  const spread = singles.length > 1 && Math.max(...singles) / Math.min(...singles) > 1.1 ? `${((Math.max(...singles) / Math.min(...singles) - 1) * 100).toFixed(0)}% (${singles.map((x) => x.toFixed(0)).join(' vs ')} CPU-µs per span)` : undefined;
  for (const p of [...new Set(runs.map((x) => x.partitions))].sort((a, b) => a - b)) {
    const one = runs.find((x) => x.partitions === p && x.instances === 1 && x.cpu && x.spansPerSec);
    const two = runs.find((x) => x.partitions === p && x.instances === 2 && x.cpu && x.spansPerSec);
    if (!one) continue;
    const a = describe(one);
    let s = `**${p} partitions.** 1 instance: ${a.corr[0]!.toFixed(2)} cores of correlator, ${a.broker.toFixed(2)} broker, ${(a.busy).toFixed(2)} of ${n} cores busy in all`;
    if (a.corr[0]! >= 0.85) s += ` — the instance is bound by its single JavaScript thread (${a.perM.toFixed(0)} CPU-µs per span, i.e. about ${fmt(1e6 / a.perM)} spans/s per core).`;
    else if (a.busy >= 0.85 * n) s += ' — the machine\'s cores are saturated (other processes included).';
    else s += ' — neither its thread nor the cores are saturated: it waits on Kafka round trips.';
    if (two) {
      const b = describe(two);
      const ratio = two.spansPerSec! / one.spansPerSec!;
      // Cores left for correlators with two instances, and the ratio that allows.
      const room = n - b.broker - b.self - b.other;
      const cap = Math.min(2, room / a.corr[0]!);
      const got = b.corr.reduce((x, y) => x + y, 0);
      s += ` 2 instances: ${b.corr.map((x) => x.toFixed(2)).join(' + ')} cores of correlator, ${b.broker.toFixed(2)} broker, ${b.self.toFixed(2)} this bench, ${b.other.toFixed(2)} other processes: ${b.busy.toFixed(2)} of ${n} cores busy (${(100 * b.busy / n).toFixed(0)}%); ratio **${ratio.toFixed(2)}×**, while the two instances together got ${got.toFixed(2)} cores, ${(got / a.corr[0]!).toFixed(2)}× what the single instance used: throughput roughly follows the CPU the instances get${spread ? ` (CPU per span is noisy on this shared machine: the single-instance runs differ by ${spread})` : ''}.`;
      if (b.busy >= 0.85 * n) s += ` The cores are saturated: after the broker and the rest, ${room.toFixed(2)} cores were left for the two instances, which bounds the ratio at about ${room.toFixed(2)} / ${a.corr[0]!.toFixed(2)} ≈ ${cap.toFixed(2)}× — CPU, not the partitioning, limits scaling here.`;
      else if (Math.max(...b.corr) >= 0.85) s += ' Each instance is bound by its own thread and the cores are not saturated: scaling is near its ideal.';
      else s += ' Neither the cores nor the instances\' threads are saturated: the instances wait on Kafka round trips (fetch, acks=all writes).';
      const cpuUp = b.perM / a.perM;
      if (cpuUp > 1.1) s += ` CPU per span rose ${((cpuUp - 1) * 100).toFixed(0)}% with 2 instances (${a.perM.toFixed(0)} → ${b.perM.toFixed(0)} CPU-µs per span): two processes time-sliced on shared cores, and each pays per-batch costs on smaller batches.`;
    }
    out.push(s);
  }
  return out.length ? out.join(' ') : 'not measured.';
}

let workSummary: Workload | undefined;

/**
 * Reference for the memory figure: the heap that the correlator's in-flight representation takes
 * by itself, measured in this process (forced GCs around it): decoded Span objects, parsed audit
 * Events, against the protobuf/JSON bytes they came from.
 */
function referenceHeap(items: WorkItem[]): { perSpan: number; perEvent: number; auditPerSpan: number; wirePerSpan: number; wirePerEvent: number } {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const heap = () => { for (let i = 0; i < 3; i++) gc(); return process.memoryUsage().heapUsed; };
  const keep: unknown[] = [];
  let spans = 0, wire = 0, events = 0, ewire = 0;
  const h0 = heap();
  for (const it of items) {
    const d = decodeTraceRequest(it.spans.value).spans;
    spans += d.length;
    wire += it.spans.value.length;
    keep.push(d);
  }
  const h1 = heap();
  for (const it of items) for (const a of it.audit) {
    const text = typeof a.value === 'string' ? a.value : Buffer.from(a.value).toString('utf8');
    keep.push(JSON.parse(text));
    events++;
    ewire += Buffer.byteLength(text);
  }
  const h2 = heap();
  const r = { perSpan: (h1 - h0) / spans, perEvent: (h2 - h1) / events, auditPerSpan: (h2 - h1) / spans, wirePerSpan: wire / spans, wirePerEvent: ewire / events };
  keep.length = 0;
  return r;
}

// ---------------------------------------------------------------------------------------------
// Main

async function main(): Promise<number> {
  const report: Report = { loadStart: loadAverage(), prefill: [], runs: [], skipped: [] };
  const dir = mkdtempSync(join(tmpdir(), 'kc-bench-correlator-'));
  const watchdog = setTimeout(() => {
    process.stderr.write(`[bench correlator] time limit of ${TIME_LIMIT_MS / 1000} s reached: printing what was measured\n`);
    killAllCorrelators();
    rmSync(dir, { recursive: true, force: true }); // the broker's exit hook removes its own
    try { process.stdout.write(`${render(report).text}\n\nINCOMPLETE: stopped at the time limit (BENCH_TIME_LIMIT_S=${TIME_LIMIT_MS / 1000})\n`); } catch { /* nothing measured */ }
    process.exit(2);
  }, TIME_LIMIT_MS);
  watchdog.unref();

  if (CPU_PROF) mkdirSync(CPU_PROF, { recursive: true });
  let broker: KafkaBroker | undefined;
  let kafka: KafkaClient | undefined;
  let admin: Admin | undefined;
  let producer: Producer | undefined;
  let reader: OutputReader | undefined;
  try {
    step(`generating the workload (${fmt(SPANS)} spans from ${TEMPLATE_SEEDS} template seeds)`);
    const factory = new WorkloadFactory(TEMPLATE_SEEDS);
    const work = factory.make(SPANS);
    workSummary = work;
    if (MEM_SPANS > 0) report.reference = referenceHeap(work.items.slice(0, Math.ceil(work.items.length * Math.min(1, MEM_SPANS / work.spans))));
    step(`starting Kafka ${KAFKA_VERSION}`);
    broker = await startKafka({ version: KAFKA_VERSION, partitions: PARTITIONS, config: { 'group.initial.rebalance.delay.ms': JOIN_DELAY_MS } });
    report.brokerReadyMs = broker.readyMs;
    const quiet: KafkaLogger = {
      error: (o, m) => {
        const text = `${m ?? ''} ${JSON.stringify(o)}`;
        // Expected for a moment after topic creation and broker start (the bench waits them out).
        if (/not the leader|coordinator is not available|does not host this topic-partition/i.test(text)) return;
        process.stderr.write(`[bench correlator] kafka: ${text.slice(0, 400)}\n`);
      },
      warn: () => {}, info: () => {}, debug: () => {},
    };
    kafka = createKafkaClient({ client: (process.env['KC_KAFKA_CLIENT'] as 'kafkajs' | 'platformatic' | undefined) || 'platformatic', clientId: 'kc-bench-correlator', brokers: [broker.brokers], logger: quiet });
    admin = await kafka.admin();
    producer = await kafka.producer();

    // Runs: ABBA order (8 partitions: 2 then 1 instance, the raised count: 1 then 2), the
    // bench-3 run (default partitions, 1 instance) followed by the latency phase, which adds live
    // traces to the default-partition inputs after every run on them.
    const plan: Array<{ partitions: number; instances: number }> = [];
    for (const i of [...INSTANCES].reverse()) plan.push({ partitions: PARTITIONS, instances: i });
    const raised = RAISED > 0 && RAISED !== PARTITIONS ? RAISED : undefined;
    if (raised) for (const i of INSTANCES) plan.push({ partitions: raised, instances: i });
    const allTopics = plan.map((p) => runTopics(`p${p.partitions}-x${p.instances}`, inputTopics(p.partitions)));
    await createTopics(admin, [
      ...[PARTITIONS, ...(raised ? [raised] : [])].flatMap((p) => [{ name: inputTopics(p).spans, partitions: p, appendTime: true }, { name: inputTopics(p).audit, partitions: p, appendTime: true }]),
      ...plan.flatMap((p, i) => runTopicSpecs(allTopics[i]!, p.partitions)),
    ]);
    reader = new OutputReader(kafka);
    const ctx: Ctx = { broker, kafka, admin, producer, reader, work, factory, dir };

    const prefilled = new Set<number>();
    const prefill = async (partitions: number) => {
      if (prefilled.has(partitions)) return;
      prefilled.add(partitions);
      step(`pre-filling ${inputTopics(partitions).spans} and ${inputTopics(partitions).audit} (${partitions} partitions)`);
      const r = await produceItems(producer!, work.items, inputTopics(partitions));
      report.prefill.push({ partitions, ms: r.ms, messages: r.messages });
      const stored = (await endOffsets(admin!, inputTopics(partitions).spans)) + (await endOffsets(admin!, inputTopics(partitions).audit));
      if (stored !== r.messages) throw new Error(`the input topics hold ${stored} records for ${r.messages} messages produced (producer retries wrote duplicates)`);
    };

    let lastRunMs = 0;
    for (const [i, p] of plan.entries()) {
      const isBench3 = p.partitions === PARTITIONS && p.instances === 1;
      // The bench-3 run always; the others only while the budget lasts (keeping time for the memory run).
      const needed = (lastRunMs || 40_000) * 1.2 + (prefilled.has(p.partitions) ? 0 : (report.prefill[0]?.ms ?? 20_000) * 1.2) + (MEM_SPANS > 0 && !report.memory ? 45_000 : 0) + 10_000;
      if (!isBench3 && i > 0 && left() < needed) {
        report.skipped.push(`${p.partitions} partitions × ${p.instances} instances (time budget)`);
        continue;
      }
      await prefill(p.partitions);
      const t = Date.now();
      const run = await throughputRun(ctx, p.partitions, p.instances, isBench3 && LAT_SECONDS > 0 && LAT_RATE > 0);
      lastRunMs = Date.now() - t;
      report.runs.push(run);
      if (isBench3 && MEM_SPANS > 0) report.memory = await memoryPhase(ctx);
    }
    if (CPU_PROF) {
      const b3 = report.runs.find((x) => x.partitions === PARTITIONS && x.instances === 1);
      const f = b3?.inst[0]?.profile;
      if (f) report.profileSummary = `${summarizeCpuProfile(f, 20)}\n\nProfiles of every correlator: ${report.runs.flatMap((x) => x.inst.map((i) => i.profile)).filter(Boolean).join(', ')}`;
    }
  } finally {
    await reader?.stop();
    await producer?.disconnect().catch(() => undefined);
    await admin?.disconnect().catch(() => undefined);
    killAllCorrelators();
    await broker?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  const { text, failed } = render(report);
  process.stdout.write(`${text}\n\nTotal bench time: ${((Date.now() - T0) / 1000).toFixed(0)} s\n`);
  clearTimeout(watchdog);
  return failed ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (e) => { process.stderr.write(`[bench correlator] ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`); killAllCorrelators(); process.exit(1); },
);
