/**
 * `npm run bench`: runs every benchmark, each in its own process and each side by side with its
 * reference in that process, and writes their tables with the machine's description to
 * test/bench/RESULTS.md. Benchmarks print markdown on stdout and progress on stderr; none asserts
 * a time. `--tiny` runs each on a tiny input (what the test suite does, to check the harness).
 *
 *   node test/dist/bench/run.js [--tiny] [--out <file>] [--only <name>[,<name>...]]
 */
import { spawn, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadAverage, machineDescription } from './proc.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

interface Bench {
  name: string;
  title: string;
  /** Script relative to the repository root, run with node. */
  script: string;
  args?: string[];
  /** Environment for the full run and for --tiny. */
  env: Record<string, string>;
  tinyEnv: Record<string, string>;
  tinyArgs?: string[];
  /** The run is stopped after this long (it prints what it measured before that, or fails). */
  timeoutMs: number;
  /** Real components it runs, fetched or built first by test/harness/prepare.ts (not timed with the bench). */
  tools?: Array<'kafka' | 'jaeger' | 'otelcol'>;
}

const BENCHES: Bench[] = [
  {
    name: 'otlp-decode', title: 'OTLP decode: our decoder vs protobufjs', script: 'packages/otlp/dist/bench/decode.js',
    env: {}, tinyEnv: {}, tinyArgs: ['--rounds', '1', '--ms', '20'], timeoutMs: 5 * 60_000,
  },
  {
    name: 'kafka-clients', title: 'Kafka clients: kafkajs vs @platformatic/kafka (produce and consume paths)', script: 'test/dist/bench/kafka-clients.js',
    env: {}, tinyEnv: { BENCH_N: '300', BENCH_WARMUP: '50', BENCH_ROUNDS: '1', BENCH_VERSIONS: '4.2.0' }, timeoutMs: 6 * 60_000, tools: ['kafka'],
  },
  {
    name: 'ingest', title: 'Collector ingest: OTLP/gRPC -> Kafka, ours vs the OpenTelemetry Collector', script: 'test/dist/bench/ingest.js',
    env: {}, tinyEnv: { BENCH_SECONDS: '2', BENCH_WARMUP_SECONDS: '1', BENCH_RATE: '2000' }, timeoutMs: 12 * 60_000, tools: ['kafka', 'jaeger'],
  },
  {
    name: 'embedded', title: 'Embedded mode: OTLP/gRPC -> stored, `correlate start` vs the OpenTelemetry Collector\'s file exporter', script: 'test/dist/bench/embedded.js',
    // Tiny: settle_after 1 s instead of the shipped 5 s, so the drains stay short.
    env: {}, tinyEnv: { BENCH_SECONDS: '2', BENCH_WARMUP_SECONDS: '1', BENCH_RATE: '2000', BENCH_SETTLE_AFTER: '1s', BENCH_DRAIN_SECONDS: '60' }, timeoutMs: 25 * 60_000, tools: ['otelcol'],
  },
  {
    name: 'correlator', title: 'Correlator (one instance) and scale (1 vs 2 instances, 8 and 16 partitions)', script: 'test/dist/bench/correlator.js',
    env: {}, tinyEnv: { BENCH_SPANS: '2000', BENCH_PARTITIONS_RAISED: '0', BENCH_LATENCY_SECONDS: '2', BENCH_TEMPLATE_SEEDS: '5', BENCH_JOIN_DELAY_MS: '1500' },
    timeoutMs: 7 * 60_000, tools: ['kafka'],
  },
  {
    name: 'webhook', title: 'Admission webhook: latency per review', script: 'test/dist/bench/webhook.js',
    env: {}, tinyEnv: { BENCH_N: '200', BENCH_WARMUP: '20' }, timeoutMs: 3 * 60_000,
  },
  {
    name: 'apimapping', title: 'Audit event -> API operation mapping', script: 'test/dist/bench/apimapping.js',
    env: {}, tinyEnv: { BENCH_N: '2000', BENCH_PASSES: '1' }, timeoutMs: 3 * 60_000,
  },
];

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : undefined;
}

interface Outcome { bench: Bench; code: number | null; stdout: string; seconds: number }

function runOne(b: Bench, tiny: boolean): Promise<Outcome> {
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [b.script, ...(b.args ?? []), ...(tiny ? (b.tinyArgs ?? []) : [])], {
      cwd: ROOT, env: { ...process.env, ...(tiny ? b.tinyEnv : b.env) }, stdio: ['ignore', 'pipe', 'inherit'],
    });
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), b.timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ bench: b, code, stdout, seconds: (Date.now() - started) / 1000 });
    });
  });
}


async function main(): Promise<void> {
  const tiny = process.argv.includes('--tiny');
  const out = arg('--out') ?? fileURLToPath(new URL('../../bench/RESULTS.md', import.meta.url));
  const only = arg('--only')?.split(',');
  const selected = BENCHES.filter((b) => !only || only.includes(b.name));
  if (selected.length === 0) throw new Error(`--only ${only?.join(',')}: no such benchmark (have ${BENCHES.map((b) => b.name).join(', ')})`);
  // Kafka jars and the Jaeger and otelcol binaries first (a first Jaeger build takes minutes), so no benchmark's time limit pays for them.
  const tools = [...new Set(selected.flatMap((b) => b.tools ?? []))];
  let prepared = '';
  if (tools.length) {
    const t0 = Date.now();
    process.stderr.write(`\n=== preparing ${tools.join(', ')}\n`);
    const prep = spawnSync(process.execPath, [join(ROOT, 'test/dist/harness/prepare.js'), ...tools], { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'] });
    if (prep.status !== 0) throw new Error(`test/harness/prepare.js ${tools.join(' ')} failed (exit ${prep.status ?? prep.signal}): the benchmarks need them`);
    prepared = `Tools (${tools.join(', ')}) ready in ${((Date.now() - t0) / 1000).toFixed(0)} s before the benchmarks (cached in ~/.cache/kube-correlate after the first run).\n`;
  }
  const started = new Date();
  const head = `# Benchmark results\n\n${tiny ? '**Tiny inputs (`--tiny`): checks the harness, the figures mean nothing.**\n\n' : ''}Machine: ${machineDescription()}; load average ${loadAverage(2)} at start.\nRun: ${started.toISOString()}, \`npm run bench\` (test/bench/run.ts).\n${prepared}`;
  const sections: string[] = [];
  let failed = 0;
  for (const b of selected) {
    process.stderr.write(`\n=== bench ${b.name}\n`);
    const r = await runOne(b, tiny);
    if (r.code !== 0) failed++;
    sections.push(`## ${b.title}\n\n\`node ${b.script}\`, ${r.seconds.toFixed(0)} s${r.code === 0 ? '' : `, **exited ${r.code ?? 'on timeout'}**`}\n\n${r.stdout.trim()}\n`);
    // Written after each one, so a stopped run keeps what it measured.
    writeFileSync(out, `${head}\n${sections.join('\n')}`);
  }
  const total = `Total: ${((Date.now() - started.getTime()) / 1000).toFixed(0)} s for ${selected.length} benchmarks${failed ? `, ${failed} failed` : ''}.`;
  writeFileSync(out, `${head}\n${sections.join('\n')}\n${total}\n`);
  process.stderr.write(`\nwrote ${out}: ${total}\n`);
  process.exitCode = failed ? 1 : 0;
}

await main();
