/**
 * Correlator processes for the correlator benchmark (see correlator.ts): a config file per run
 * (the shipped collector-config/kafka-correlator.yaml with the run's topics and limits), the
 * process behind the harness's watchdog (`correlate correlator --config <file>`), its /metrics.
 */
import type { ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { COLLECTOR_CONFIG_DIR } from '@kube-correlate/cli';
import { spawnCorrelate } from '../harness/index.js';
import { freePort, killGroup } from '../harness/supervise.js';
import { cpuSeconds, rssBytes } from './proc.js';

export interface RunTopics {
  spans: string;
  audit: string;
  auditTrace: string;
  auditByTrace: string;
  correlated: string;
}

export interface CorrelatorSettings {
  settleAfter: string;
  pendingAuditTtl?: string;
  maxTracesInFlight?: number;
  pairCacheSize?: number;
}

/** Writes a copy of the shipped correlator config with the run's topics and settings; returns its path. */
export function writeCorrelatorConfig(dir: string, name: string, topics: RunTopics, s: CorrelatorSettings): string {
  const doc = parseYaml(readFileSync(`${COLLECTOR_CONFIG_DIR}kafka-correlator.yaml`, 'utf8')) as {
    receivers: { kafka: { traces: { topic: string }; logs: { topic: string } } };
    processors: { correlator: Record<string, unknown> & { internal_topics: Record<string, string> } };
    exporters: { kafka: { traces: { topic: string } } };
  };
  doc.receivers.kafka.traces.topic = topics.spans;
  doc.receivers.kafka.logs.topic = topics.audit;
  const c = doc.processors.correlator;
  c['settle_after'] = s.settleAfter;
  if (s.pendingAuditTtl) c['pending_audit_ttl'] = s.pendingAuditTtl;
  if (s.maxTracesInFlight) c['max_traces_in_flight'] = s.maxTracesInFlight;
  if (s.pairCacheSize) c['pair_cache_size'] = s.pairCacheSize;
  c.internal_topics['audit_trace'] = topics.auditTrace;
  c.internal_topics['audit_by_trace'] = topics.auditByTrace;
  doc.exporters.kafka.traces.topic = topics.correlated;
  const path = join(dir, `${name}.yaml`);
  writeFileSync(path, stringifyYaml(doc));
  return path;
}

// ---------------------------------------------------------------------------------------------
// Prometheus text

export interface Sample { name: string; labels: Record<string, string>; value: number }

export function parseMetrics(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

/** Sum of the series of `name` whose labels include `labels`; undefined when there is none. */
export function metricSum(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  let sum: number | undefined;
  for (const s of samples) {
    if (s.name !== name) continue;
    if (Object.entries(labels).some(([k, v]) => s.labels[k] !== v)) continue;
    sum = (sum ?? 0) + s.value;
  }
  return sum;
}

const P = 'kube_correlate_';
/** The correlator's figures the benchmark follows. */
export interface CorrelatorMetrics {
  at: number;
  spansAccepted: number;
  auditAccepted: number;
  spansInFlight: number;
  tracesInFlight: number;
  pendingAudits: number;
  joined: number;
  settled: number;
  duplicates: number;
  refused: number;
  heapUsed?: number;
  heapTotal?: number;
  external?: number;
  rss?: number;
}

export function correlatorMetrics(samples: Sample[], at: number): CorrelatorMetrics {
  const v = (name: string, labels?: Record<string, string>) => metricSum(samples, P + name, labels) ?? 0;
  const o = (name: string) => metricSum(samples, P + name);
  return {
    at,
    spansAccepted: v('receiver_accepted_items_total', { signal: 'spans' }),
    auditAccepted: v('receiver_accepted_items_total', { signal: 'audit_events' }),
    spansInFlight: v('correlator_spans_in_flight'),
    tracesInFlight: v('correlator_traces_in_flight'),
    pendingAudits: v('correlator_pending_audits'),
    joined: v('correlator_joined_total'),
    settled: v('correlator_settled_total'),
    duplicates: v('correlator_duplicates_total'),
    refused: v('receiver_refused_total'),
    heapUsed: o('nodejs_heap_size_used_bytes'),
    heapTotal: o('nodejs_heap_size_total_bytes'),
    external: o('nodejs_external_memory_bytes'),
    rss: o('process_resident_memory_bytes'),
  };
}

// ---------------------------------------------------------------------------------------------
// The process

const live = new Set<CorrelatorProcess>();
let hooked = false;
function hookExit(): void {
  if (hooked) return;
  hooked = true;
  // Whatever way this process ends, no correlator (or its watchdog) outlives it.
  process.on('exit', () => { for (const c of live) killGroup(c.pid, 'SIGKILL'); });
}

export interface StartOptions {
  label: string;
  config: string;
  brokers: string;
  group: string;
  /** `--cpu-prof --cpu-prof-dir=<dir>` */
  cpuProfDir?: string;
}

export class CorrelatorProcess {
  readonly label: string;
  readonly child: ChildProcess;
  readonly pid: number;
  readonly metricsUrl: string;
  readonly started = Date.now();
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private err = '';
  private lines = 0;
  /** 'partitions assigned' log lines (one per rebalance this member took part in). */
  assignments = 0;
  /** Log lines at warn or above (pino levels ≥ 40), first few kept. */
  warnings: string[] = [];
  warningCount = 0;
  exitInfo: { code: number | null; signal: NodeJS.Signals | null } | undefined;

  private constructor(o: StartOptions, port: number) {
    this.label = o.label;
    this.metricsUrl = `http://127.0.0.1:${port}/metrics`;
    const nodeArgs = o.cpuProfDir ? ['--cpu-prof', `--cpu-prof-dir=${o.cpuProfDir}`] : [];
    const { child, exited } = spawnCorrelate(['correlator', '--config', o.config], {
      nodeArgs,
      // info: the 'partitions assigned' line tells how many rebalances a member went through.
      env: { KAFKA_BROKERS: o.brokers, KC_CORRELATOR_GROUP: o.group, KC_METRICS_ENDPOINT: `127.0.0.1:${port}`, LOG_LEVEL: 'info', NODE_OPTIONS: '' },
    });
    this.child = child;
    if (!this.child.pid) throw new Error(`could not start correlator ${o.label}`);
    this.pid = this.child.pid;
    let partial = '';
    this.child.stderr!.on('data', (d: Buffer) => {
      const text = partial + d.toString('utf8');
      const parts = text.split('\n');
      partial = parts.pop() ?? '';
      for (const line of parts) this.onLine(line);
    });
    this.exited = exited.then((info) => {
      this.exitInfo = info;
      live.delete(this);
      return info;
    });
    live.add(this);
    hookExit();
  }

  static async start(o: StartOptions): Promise<CorrelatorProcess> {
    return new CorrelatorProcess(o, await freePort());
  }

  private onLine(line: string): void {
    this.lines++;
    this.err = (this.err + line + '\n').slice(-20_000);
    if (line.includes('"partitions assigned"')) this.assignments++;
    const level = /"level":(\d+)/.exec(line);
    if (level && Number(level[1]) >= 40) {
      this.warningCount++;
      if (this.warnings.length < 3) {
        let text = line;
        try {
          const o = JSON.parse(line) as { msg?: string; error?: string; err?: { message?: string } };
          text = [o.msg, o.error, o.err?.message].filter((x, i, all) => x && all.indexOf(x) === i).join(': ');
        } catch { /* not JSON */ }
        this.warnings.push(text.slice(0, 300));
      }
    }
  }

  stderrTail(chars = 3000): string {
    return this.err.slice(-chars);
  }

  get running(): boolean {
    return this.exitInfo === undefined;
  }

  cpu(): number {
    try { return cpuSeconds(this.pid); } catch { return NaN; }
  }

  rss(): number {
    try { return rssBytes(this.pid); } catch { return NaN; }
  }

  async metrics(timeoutMs = 2000): Promise<CorrelatorMetrics | undefined> {
    try {
      const res = await fetch(this.metricsUrl, { signal: AbortSignal.timeout(timeoutMs) });
      if (!res.ok) return undefined;
      const text = await res.text();
      return correlatorMetrics(parseMetrics(text), Date.now());
    } catch {
      return undefined;
    }
  }

  /** Resolves once /metrics answers (the pipeline started) and the member got its partitions. */
  async ready(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (!this.running) throw new Error(`correlator ${this.label} exited (${JSON.stringify(this.exitInfo)}) before it was ready:\n${this.stderrTail()}`);
      if (this.assignments > 0 && (await this.metrics(1000))) return;
      if (Date.now() > deadline) throw new Error(`correlator ${this.label} not ready (assigned: ${this.assignments > 0}) after ${timeoutMs} ms:\n${this.stderrTail()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /**
   * SIGTERM (the correlator settles what is in flight, commits and leaves the group), SIGKILL after
   * `graceMs`; then SIGKILL to the group for the watchdog. Returns whether it exited on its own, and
   * how long that took.
   */
  async stop(graceMs: number): Promise<{ graceful: boolean; ms: number; code: number | null; signal: NodeJS.Signals | null }> {
    const t0 = Date.now();
    if (this.running) {
      try { process.kill(this.pid, 'SIGTERM'); } catch { /* gone */ }
    }
    let timer: NodeJS.Timeout | undefined;
    const res = await Promise.race([this.exited, new Promise<undefined>((r) => { timer = setTimeout(() => r(undefined), graceMs); })]);
    clearTimeout(timer);
    killGroup(this.pid, 'SIGKILL');
    const info = res ?? (await this.exited);
    return { graceful: res !== undefined && res.code === 0, ms: Date.now() - t0, code: info.code, signal: info.signal };
  }
}

/** Kills every correlator still running (for the watchdog path). */
export function killAllCorrelators(): void {
  for (const c of live) killGroup(c.pid, 'SIGKILL');
}
