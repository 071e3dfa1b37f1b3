/**
 * Kafka client benchmark (issues 3 and 15): the two libraries behind packages/kafka, kafkajs 2.2.4
 * (the brief's choice, unmaintained since 2023) and @platformatic/kafka 1.35.0 (the default), side
 * by side in one process, on our workload, against a real broker of every version in
 * KAFKA_VERSIONS started by test/harness/kafka.ts. Both run as the product runs them, through
 * `createKafkaClient({ client })`: idempotent producer (acks=all, one produce call in flight with
 * the waiting sends merged), the Java partitioner, the supervised consumer with manual commits.
 *
 * Workload (see test/bench/README.md, "Kafka clients"):
 * - produce (collector): realistic OTLP ExportTraceServiceRequest protobufs (one kube-apiserver
 *   request trace each, from the deployment fixture), keyed by a 32-hex trace id, acks=all,
 *   no compression, 50 messages per send call, 4 send calls in flight;
 * - consume (correlator): a fresh consumer group reads the topic from the beginning, commits
 *   offsets by hand after every batch, until all N messages are read.
 * Each client gets a fresh 8-partition topic per run, created with its own admin API, and a short
 * warm-up (produce + consume on a separate topic) before the measured run.
 *
 * Checks per run: every message read exactly once and on the partition the Java client would pick
 * (murmur2), the topic holds exactly N records (no duplicate writes), and the group's committed
 * offsets cover every record read.
 *
 * Build and run: `npx tsc -b test && node test/dist/bench/kafka-clients.js`
 * Environment: BENCH_N (default 20000), BENCH_VERSIONS (comma list, default all),
 * BENCH_CLIENTS (kafkajs,platformatic), BENCH_WARMUP (messages, default 2000), BENCH_ROUNDS (default 3;
 * later rounds are skipped when the time budget runs short).
 */
import { randomBytes } from 'node:crypto';
import { statSync, openSync, readSync, closeSync } from 'node:fs';
import { createKafkaClient, javaPartition, kafkajsApiVersionTable, type Admin, type KafkaClientLibrary, type KafkaLogger, type Producer } from '@kube-correlate/kafka';
import { generateDeploymentScenario } from '@kube-correlate/fixtures';
import { encodeTraceRequest } from '@kube-correlate/otlp';
import { KAFKA_VERSIONS, kafkaApiVersions, startKafka, type KafkaBroker } from '../harness/kafka.js';
import { loadAverage, machineDescription } from './proc.js';

// ---------------------------------------------------------------------------------------------
// Parameters

const N = Number(process.env['BENCH_N'] ?? 20_000);
const WARMUP = Number(process.env['BENCH_WARMUP'] ?? 2_000);
const BATCH = 50;
const IN_FLIGHT = 4;
const PARTITIONS = 8;
const PRODUCE_TIMEOUT_MS = 60_000;
const CONSUME_TIMEOUT_MS = 60_000;
const ADMIN_TIMEOUT_MS = 30_000;
const CLOSE_TIMEOUT_MS = 15_000;
/** The whole bench stops itself after this, whatever happens. */
const TOTAL_TIMEOUT_MS = 5 * 60_000 - 10_000;
/** Measured rounds per client and version; the client order alternates between rounds. */
const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 3);
/** Rounds after the first start only before this much time has passed. */
const EXTRA_ROUND_BUDGET_MS = 3 * 60_000;

const VERSIONS = (process.env['BENCH_VERSIONS']?.split(',').map((s) => s.trim()).filter(Boolean) ?? [...KAFKA_VERSIONS]);
const CLIENT_NAMES: readonly KafkaClientLibrary[] = ['kafkajs', 'platformatic'];
type ClientName = KafkaClientLibrary;
const CLIENTS = (process.env['BENCH_CLIENTS']?.split(',').map((s) => s.trim()) ?? [...CLIENT_NAMES]) as ClientName[];
const LABEL: Record<ClientName, string> = { kafkajs: 'kafkajs 2.2.4', platformatic: '@platformatic/kafka 1.35.0' };
/** Fetch size per partition: both clients use 1 MiB (packages/kafka). */

// ---------------------------------------------------------------------------------------------
// Helpers

const now = () => performance.now();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

class TimeoutError extends Error {}

/** Resolves/rejects like `p`, or rejects with a TimeoutError after `ms`. */
async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new TimeoutError(`${what}: timed out after ${ms} ms`)), ms); });
  try {
    return await Promise.race([p, t]);
  } finally {
    clearTimeout(timer);
  }
}

/** Best-effort close: never throws, never hangs longer than CLOSE_TIMEOUT_MS. Returns an error text or undefined. */
async function safeClose(what: string, fn: () => Promise<unknown>): Promise<string | undefined> {
  try {
    await withTimeout(fn(), CLOSE_TIMEOUT_MS, what);
    return undefined;
  } catch (e) {
    return `${what}: ${errText(e)}`;
  }
}

function errText(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  const parts = [`${e.name}: ${e.message}`];
  // @platformatic/kafka wraps causes (MultipleErrors with .errors, or .cause).
  const inner = (e as { errors?: unknown[] }).errors ?? ((e as { cause?: unknown }).cause ? [(e as { cause?: unknown }).cause] : []);
  for (const c of inner.slice(0, 2)) parts.push(`<- ${errText(c)}`);
  return parts.join(' ').replace(/\s+/g, ' ').slice(0, 400);
}

// ---------------------------------------------------------------------------------------------
// The workload

/** Realistic payloads: every request trace of the deployment scenario, seeds 1..20 (200 traces). */
function makePayloads(): Buffer[] {
  const out: Buffer[] = [];
  for (let seed = 1; seed <= 20; seed++) {
    const s = generateDeploymentScenario({ seed, annotations: true });
    for (const t of s.traces) {
      if (t.kind !== 'request') continue;
      const b = encodeTraceRequest(t.spans);
      out.push(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
    }
  }
  return out;
}

interface Msg { key: string; keyBuf: Buffer; value: Buffer }

interface Workload {
  messages: Msg[];
  bytes: number;
  /** key -> partition as the Java client would choose. */
  expected: Map<string, number>;
}

function makeWorkload(payloads: Buffer[], n: number): Workload {
  const messages: Msg[] = [];
  const expected = new Map<string, number>();
  let bytes = 0;
  for (let i = 0; i < n; i++) {
    const key = randomBytes(16).toString('hex'); // a fresh 32-hex trace id per message
    const keyBuf = Buffer.from(key);
    const value = payloads[i % payloads.length]!;
    messages.push({ key, keyBuf, value });
    expected.set(key, javaPartition(keyBuf, PARTITIONS));
    bytes += value.length;
  }
  return { messages, bytes, expected };
}

/** What the consumer saw, checked against the workload. */
class Tally {
  /** Distinct partition:offset pairs read. */
  readonly seen = new Set<string>();
  /** Distinct keys read (a key at two offsets is a duplicate write, e.g. a producer retry). */
  readonly keys = new Set<string>();
  duplicates = 0;
  keyDuplicates = 0;
  wrongPartition = 0;
  unknownKeys = 0;
  batches = 0;
  commits = 0;
  constructor(private readonly expected: Map<string, number>) {}
  /** Distinct messages of the workload read. */
  get count(): number { return this.keys.size; }
  add(partition: number, offset: string | bigint, key: Buffer | string | null | undefined): void {
    const id = `${partition}:${offset}`;
    if (this.seen.has(id)) { this.duplicates++; return; }
    this.seen.add(id);
    const k = key == null ? undefined : typeof key === 'string' ? key : key.toString();
    const want = k === undefined ? undefined : this.expected.get(k);
    if (k !== undefined && want !== undefined) {
      if (this.keys.has(k)) this.keyDuplicates++;
      else this.keys.add(k);
    }
    if (want === undefined) this.unknownKeys++;
    else if (want !== partition) this.wrongPartition++;
  }
  problems(): string[] {
    const p: string[] = [];
    if (this.duplicates) p.push(`${this.duplicates} duplicate deliveries`);
    if (this.keyDuplicates) p.push(`${this.keyDuplicates} messages stored twice (at two offsets)`);
    if (this.unknownKeys) p.push(`${this.unknownKeys} unknown keys`);
    if (this.wrongPartition) p.push(`${this.wrongPartition} keys not on the Java-murmur2 partition`);
    return p;
  }
}

/** Runs `send` over the messages in batches of BATCH, IN_FLIGHT batches at a time. */
async function produceAll(msgs: Msg[], send: (batch: Msg[]) => Promise<void>): Promise<number> {
  let next = 0;
  const t0 = now();
  const worker = async () => {
    for (;;) {
      const i = next;
      next += BATCH;
      if (i >= msgs.length) return;
      await send(msgs.slice(i, i + BATCH));
    }
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
  return now() - t0;
}

// ---------------------------------------------------------------------------------------------
// The two clients behind one small interface

interface ConsumeResult {
  /** From subscribing/joining to the first message. */
  firstMs: number;
  /** From the first message to the last batch's commit. */
  ms: number;
}

interface BenchClient {
  /** Creates the topic with the client's admin API and waits until every partition has a leader. */
  createTopic(topic: string): Promise<void>;
  send(topic: string, batch: Msg[]): Promise<void>;
  /** A fresh consumer group reads `topic` from the beginning until `n` distinct messages were seen. */
  consume(topic: string, groupId: string, n: number, tally: Tally): Promise<ConsumeResult>;
  /** Sum of the group's committed offsets on `topic`. */
  committed(groupId: string, topic: string): Promise<number>;
  /** Sum of the partitions' end offsets (high watermarks): the records in the topic. */
  endOffsets(topic: string): Promise<number>;
  close(): Promise<string[]>;
  /** Warnings and errors the client logged or emitted. */
  warnings: string[];
}

/** One library through packages/kafka, as the collector and the correlator use it. */
function productClient(lib: ClientName, brokers: string): BenchClient & { connect(): Promise<void> } {
  const warnings: string[] = [];
  const logger: KafkaLogger = {
    error: (o, m) => { warnings.push(`${m ?? ''} ${JSON.stringify(o).slice(0, 160)}`); },
    warn: (o, m) => { warnings.push(`${m ?? ''} ${JSON.stringify(o).slice(0, 160)}`); },
    info: () => {},
    debug: () => {},
  };
  const client = createKafkaClient({ client: lib, brokers: [brokers], clientId: `kc-bench-${lib}`, connectionTimeoutMs: 3000, requestTimeoutMs: 10000, logger });
  let producer: Producer | undefined;
  let admin: Admin | undefined;
  return {
    warnings,
    async connect() {
      producer = await client.producer();
      admin = await client.admin();
    },
    async createTopic(topic) {
      // Waits until every partition serves (packages/kafka's ensureTopics).
      await admin!.ensureTopics([{ name: topic, partitions: PARTITIONS, replicationFactor: 1 }]);
    },
    async send(topic, batch) {
      await producer!.send(batch.map((m) => ({ topic, key: m.keyBuf, value: m.value })));
    },
    async consume(topic, groupId, n, tally) {
      const consumer = await client.consumer({ groupId, topics: [topic], fromBeginning: true });
      let finished = false;
      let first = 0;
      let end = 0;
      try {
        const t0 = now();
        await consumer.run(async (batch) => {
          if (finished || batch.length === 0) return;
          if (!first) first = now();
          for (const m of batch) tally.add(m.partition, m.offset, m.key);
          tally.batches++;
          const last = batch[batch.length - 1]!;
          await consumer.commit([{ topic, partition: last.partition, offset: (BigInt(last.offset) + 1n).toString() }]);
          tally.commits++;
          if (tally.count >= n && !finished) { finished = true; end = now(); }
        });
        const deadline = Date.now() + CONSUME_TIMEOUT_MS;
        while (!finished) {
          if (Date.now() > deadline) throw new TimeoutError(`${lib} consume (${tally.count}/${n} read): timed out after ${CONSUME_TIMEOUT_MS} ms`);
          await sleep(5);
        }
        if (consumer.restarts) warnings.push(`the consumer restarted ${consumer.restarts} time(s)`);
        return { firstMs: first - t0, ms: end - first };
      } finally {
        finished = true;
        const e = await safeClose(`${lib} consumer.disconnect`, () => consumer.disconnect());
        if (e) warnings.push(e);
      }
    },
    async committed(groupId, topic) {
      return (await admin!.committedOffsets(groupId, topic)).reduce((s, o) => s + Math.max(0, o), 0);
    },
    async endOffsets(topic) {
      return (await admin!.endOffsets(topic)).reduce((s, o) => s + o, 0);
    },
    async close() {
      const errs = [
        await safeClose(`${lib} producer.disconnect`, () => producer?.disconnect() ?? Promise.resolve()),
        await safeClose(`${lib} admin.disconnect`, () => admin?.disconnect() ?? Promise.resolve()),
      ];
      return errs.filter((e): e is string => e !== undefined);
    },
  };
}

// ---------------------------------------------------------------------------------------------
// One run: warm-up, then the measured produce and consume

interface RunResult {
  client: ClientName;
  version: string;
  round: number;
  produceMsgS?: number;
  produceMBs?: number;
  consumeMsgS?: number;
  firstMsgMs?: number;
  batches?: number;
  /** CPU time (user+system) of this Node process per message, in µs. */
  produceCpuUs?: number;
  consumeCpuUs?: number;
  failures: string[];
  /** Warnings and errors while measuring (client logs/events, broker log). */
  notes: string[];
  /** Client warnings during setup and warm-up (topic creation, first group join). */
  setupWarnings: string[];
}

/** New lines of the broker's log since `from` that are ERROR (or WARN mentioning a request/version problem). */
function brokerLogProblems(broker: KafkaBroker, from: number): string[] {
  let text = '';
  try {
    const size = statSync(broker.logPath).size;
    if (size <= from) return [];
    const fd = openSync(broker.logPath, 'r');
    const buf = Buffer.alloc(size - from);
    readSync(fd, buf, 0, buf.length, from);
    closeSync(fd);
    text = buf.toString('utf8');
  } catch { return []; }
  return text.split('\n').filter((l) => / ERROR /.test(l) || (/ WARN /.test(l) && /(nsupported|InvalidRequest|version|Unexpected error)/i.test(l)));
}

const logSize = (broker: KafkaBroker) => { try { return statSync(broker.logPath).size; } catch { return 0; } };

async function runOne(name: ClientName, broker: KafkaBroker, payloads: Buffer[], round: number): Promise<RunResult> {
  const version = broker.version;
  const res: RunResult = { client: name, version, round, failures: [], notes: [], setupWarnings: [] };
  const tag = `${name}_${version.replace(/\./g, '_')}_${randomBytes(3).toString('hex')}`;
  const step = (s: string) => process.stderr.write(`[bench] Kafka ${version} round ${round} ${name}: ${s}\n`);
  let client: BenchClient | undefined;
  let warnFrom = 0;
  let logFrom = logSize(broker);
  try {
    const c = productClient(name, broker.brokers);
    client = c;
    await withTimeout(c.connect(), ADMIN_TIMEOUT_MS, `${name} connect`);
    const cl = client;

    // Warm-up: the same code paths (and the same producer and admin connections) on a throwaway topic and group.
    if (WARMUP > 0) {
      step(`warm-up (${WARMUP} messages)`);
      const w = makeWorkload(payloads, WARMUP);
      const wt = `bench_warm_${tag}`;
      await withTimeout(cl.createTopic(wt), ADMIN_TIMEOUT_MS, 'warm-up createTopic');
      await withTimeout(produceAll(w.messages, (b) => cl.send(wt, b)), PRODUCE_TIMEOUT_MS, 'warm-up produce');
      await cl.consume(wt, `bench_warm_${tag}`, WARMUP, new Tally(w.expected));
    }

    // Measured run.
    const work = makeWorkload(payloads, N);
    const topic = `bench_${tag}`;
    const groupId = `bench_group_${tag}`;
    await withTimeout(cl.createTopic(topic), ADMIN_TIMEOUT_MS, 'createTopic');
    warnFrom = cl.warnings.length;
    logFrom = logSize(broker);
    step(`produce ${N} messages`);
    let produced = false;
    try {
      const cpu0 = process.cpuUsage();
      const ms = await withTimeout(produceAll(work.messages, (b) => cl.send(topic, b)), PRODUCE_TIMEOUT_MS, 'produce');
      const cpu = process.cpuUsage(cpu0);
      res.produceCpuUs = (cpu.user + cpu.system) / N;
      res.produceMsgS = N / (ms / 1000);
      res.produceMBs = work.bytes / 1e6 / (ms / 1000);
      produced = true;
    } catch (e) {
      res.failures.push(`produce: ${errText(e)}`);
    }
    if (produced) {
      step(`consume ${N} messages`);
      const tally = new Tally(work.expected);
      try {
        const cpu0 = process.cpuUsage();
        const r = await cl.consume(topic, groupId, N, tally); // CPU includes the join and the close
        const cpu = process.cpuUsage(cpu0);
        res.consumeCpuUs = (cpu.user + cpu.system) / N;
        res.consumeMsgS = N / (r.ms / 1000);
        res.firstMsgMs = r.firstMs;
        res.batches = tally.batches;
      } catch (e) {
        res.failures.push(`consume: ${errText(e)}`);
      }
      res.failures.push(...tally.problems().map((p) => `consume: ${p}`));
      try {
        const stored = await withTimeout(cl.endOffsets(topic), ADMIN_TIMEOUT_MS, 'end offsets');
        if (stored !== N) res.failures.push(`the topic holds ${stored} records for ${N} messages sent`);
        if (res.consumeMsgS !== undefined) {
          // Every record read (partition:offset) must be covered by the group's commits.
          const sum = await withTimeout(cl.committed(groupId, topic), ADMIN_TIMEOUT_MS, 'committed offsets');
          if (sum !== tally.seen.size) res.failures.push(`committed offsets sum to ${sum}, but ${tally.seen.size} records were read`);
        }
      } catch (e) {
        res.failures.push(`reading offsets: ${errText(e)}`);
      }
    }
  } catch (e) {
    res.failures.push(errText(e));
  } finally {
    if (client) {
      const measured = client.warnings.slice(warnFrom);
      res.setupWarnings = [...new Set(client.warnings.slice(0, warnFrom))];
      const closeErrs = await client.close();
      res.notes.push(...closeErrs);
      const uniq = [...new Set(measured)];
      if (uniq.length) res.notes.push(`${measured.length} client warnings: ${uniq.slice(0, 2).join(' | ').slice(0, 300)}`);
    }
  }
  const bl = brokerLogProblems(broker, logFrom);
  if (bl.length) res.notes.push(`${bl.length} broker ERROR/WARN lines: ${bl[0]!.slice(0, 200)}`);
  return res;
}

/** The APIs our workload makes kafkajs send. */
const WORKLOAD_APIS = ['ApiVersions', 'Metadata', 'CreateTopics', 'Produce', 'ListOffsets', 'GroupCoordinator', 'JoinGroup', 'SyncGroup', 'Heartbeat', 'Fetch', 'OffsetCommit', 'OffsetFetch', 'LeaveGroup'];

/**
 * Which version of each API kafkajs negotiates with this broker (the highest both support), from
 * kafkajs's own request table (an internal module: best effort) and the broker's ApiVersions.
 * An API whose highest kafkajs version is below the broker's lowest would fail (Kafka 4.0 dropped
 * old versions, KIP-896).
 */
async function kafkajsApiReport(broker: KafkaBroker): Promise<string> {
  try {
    const table = kafkajsApiVersionTable();
    const broker_ = await kafkaApiVersions(broker.brokers);
    const used: string[] = [];
    const unusable: string[] = [];
    let implemented = 0;
    for (const { name, apiKey, versions } of table) {
      const range = broker_.get(apiKey);
      if (!versions.length || !range) continue;
      implemented++;
      const v = Math.min(Math.max(...versions), range.max);
      if (v < range.min) unusable.push(`${name} (kafkajs ≤ v${Math.max(...versions)}, broker v${range.min}–${range.max})`);
      if (WORKLOAD_APIS.includes(name)) used.push(`${name} v${v} (broker v${range.min}–${range.max})`);
    }
    return `kafkajs ↔ Kafka ${broker.version}: ${used.join(', ')}; APIs kafkajs implements that this broker refuses: ${unusable.length ? unusable.join(', ') : `none of ${implemented}`}`;
  } catch (e) {
    return `kafkajs ↔ Kafka ${broker.version}: API versions not inspected (${errText(e)})`;
  }
}

// ---------------------------------------------------------------------------------------------
// Main


const fmt = (v: number | undefined, digits = 0) => (v === undefined ? '—' : v.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }));
const minOf = (xs: (number | undefined)[]) => { const v = xs.filter((x): x is number => x !== undefined); return v.length ? Math.min(...v) : undefined; };
const cpuNote = (runs: RunResult[]) => {
  const p = minOf(runs.map((r) => r.produceCpuUs));
  const c = minOf(runs.map((r) => r.consumeCpuUs));
  return p === undefined && c === undefined ? '' : `Node CPU/msg (lowest round): produce ${fmt(p)} µs, consume ${fmt(c)} µs`;
};
const load = () => loadAverage();
const best = <K extends 'produceMsgS' | 'consumeMsgS'>(runs: RunResult[], k: K) => runs.filter((r) => r[k] !== undefined).sort((a, b) => b[k]! - a[k]!)[0];

function report(results: RunResult[], payloads: Buffer[], loadBefore: string, apiLines: string[]): string {
  const avg = payloads.reduce((s, b) => s + b.length, 0) / payloads.length;
  const rounds = Math.max(...results.map((r) => r.round));
  const lines: string[] = [];
  lines.push(`Machine: ${machineDescription()}; load average (1/5/15 min) ${loadBefore} at start, ${load()} at end`);
  lines.push(`Workload: N=${N} messages per run, OTLP protobuf values avg ${avg.toFixed(0)} B (${Math.min(...payloads.map((b) => b.length))}–${Math.max(...payloads.map((b) => b.length))} B), 32-hex keys, acks=all, no compression, ${BATCH} messages/send, ${IN_FLIGHT} sends in flight, ${PARTITIONS} partitions, warm-up ${WARMUP} messages. MB = 10^6 bytes of values. ${rounds} round(s) per client and version (client order alternates); the table shows the best round, the notes every round (produce/consume msg/s).`);
  lines.push('');
  lines.push('| client | kafka | produce msg/s | produce MB/s | consume msg/s | notes |');
  lines.push('|---|---|---:|---:|---:|---|');
  const cells = new Map<string, RunResult[]>();
  for (const r of results) {
    const k = `${r.client}\0${r.version}`;
    if (!cells.has(k)) cells.set(k, []);
    cells.get(k)!.push(r);
  }
  const bests = new Map<string, { p?: RunResult; c?: RunResult }>();
  for (const [k, runs] of cells) {
    const { client, version } = runs[0]!;
    const p = best(runs, 'produceMsgS');
    const c = best(runs, 'consumeMsgS');
    bests.set(k, { p, c });
    const failures = runs.flatMap((r) => r.failures.map((f) => `r${r.round}: ${f}`));
    const notes = [
      failures.length ? `**FAILED** ${failures.join('; ')}` : 'ok (every message read once, on its Java-murmur2 partition, commits cover all reads)',
      runs.length > 1 ? `rounds ${runs.map((r) => `${fmt(r.produceMsgS)}/${fmt(r.consumeMsgS)}`).join(', ')}` : '',
      c ? `join→first msg ${fmt(c.firstMsgMs)} ms, ${c.batches} commits` : '',
      cpuNote(runs),
      ...runs.flatMap((r) => r.notes.map((n) => (runs.length > 1 ? `r${r.round}: ${n}` : n))),
    ].filter(Boolean).join('; ').replace(/\|/g, '\\|');
    lines.push(`| ${LABEL[client]} | ${version} | ${fmt(p?.produceMsgS)} | ${fmt(p?.produceMBs, 1)} | ${fmt(c?.consumeMsgS)} | ${notes} |`);
  }
  lines.push('');
  const ratio = (x?: number, y?: number) => (x && y ? `${(x / y).toFixed(2)}×` : 'n/a');
  for (const v of VERSIONS) {
    const a = bests.get(`kafkajs\0${v}`);
    const b = bests.get(`platformatic\0${v}`);
    if (!a || !b) continue;
    lines.push(`Kafka ${v}: platformatic/kafkajs produce ${ratio(b.p?.produceMsgS, a.p?.produceMsgS)}, consume ${ratio(b.c?.consumeMsgS, a.c?.consumeMsgS)}`);
  }
  if (apiLines.length) {
    lines.push('');
    lines.push('Protocol versions (highest both sides support):');
    for (const l of apiLines) lines.push(`- ${l}`);
  }
  const setup = [...new Set(results.flatMap((r) => r.setupWarnings.map((w) => `${r.client}: ${w}`)))];
  if (setup.length) {
    lines.push('');
    lines.push('Client warnings outside the measured phases (topic creation, warm-up):');
    for (const w of setup.slice(0, 8)) lines.push(`- ${w.slice(0, 240)}`);
  }
  return lines.join('\n');
}

async function main(): Promise<number> {
  const loadBefore = load();
  const payloads = makePayloads();
  const results: RunResult[] = [];
  const apiLines: string[] = [];
  const t0 = Date.now();
  const watchdog = setTimeout(() => {
    process.stderr.write(`[bench] total time limit of ${TOTAL_TIMEOUT_MS} ms reached; printing what was measured and exiting (the harness stops the brokers)\n`);
    if (results.length) process.stdout.write(`${report(results, payloads, loadBefore, apiLines)}\n\nINCOMPLETE: stopped at the time limit\n`);
    process.exit(2);
  }, TOTAL_TIMEOUT_MS);
  watchdog.unref();
  for (const [vi, version] of VERSIONS.entries()) {
    process.stderr.write(`[bench] starting Kafka ${version}\n`);
    let broker: KafkaBroker | undefined;
    try {
      broker = await startKafka({ version, partitions: PARTITIONS });
      process.stderr.write(`[bench] Kafka ${version} ready at ${broker.brokers} in ${broker.readyMs} ms\n`);
      if (CLIENTS.includes('kafkajs')) apiLines.push(await kafkajsApiReport(broker));
      for (let round = 1; round <= ROUNDS; round++) {
        // Later rounds only while the time budget lasts (leaving room for the other versions' first round).
        const left = VERSIONS.length - vi - 1;
        if (round > 1 && Date.now() - t0 > EXTRA_ROUND_BUDGET_MS - left * 45_000) {
          process.stderr.write(`[bench] Kafka ${version}: skipping rounds ${round}..${ROUNDS} (time budget)\n`);
          break;
        }
        const order = round % 2 === 1 ? CLIENTS : [...CLIENTS].reverse();
        for (const c of order) results.push(await runOne(c, broker, payloads, round));
      }
    } catch (e) {
      for (const c of CLIENTS) if (!results.some((r) => r.client === c && r.version === version)) {
        results.push({ client: c, version, round: 1, failures: [`broker: ${errText(e)}`], notes: [], setupWarnings: [] });
      }
    } finally {
      await broker?.stop();
    }
  }
  process.stdout.write(`${report(results, payloads, loadBefore, apiLines)}\n\nTotal bench time: ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
  return 0;
}

main().then(
  (code) => process.exit(code),
  (e) => { process.stderr.write(`[bench] ${errText(e)}\n`); process.exit(1); },
);
