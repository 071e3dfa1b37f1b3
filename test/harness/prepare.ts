/**
 * Fetches and builds the real components the end-to-end suites run (Kafka jars from Maven Central,
 * the Jaeger v2, OpenTelemetry Collector (test/otelcol) and kustomize binaries, etcd, kube-apiserver, kube-controller-manager and kubectl
 * built with Go), once, into ~/.cache/kube-correlate, and Debian's chromium package for the HTML
 * report test (apt-get, as root). test/run.mjs runs this before the test files, so a first build
 * (Jaeger: about ten minutes on two cores; Kubernetes: about 18, more on a busy machine) does not count against one test
 * file's time limit. A missing tool fails here with a message naming it.
 *
 *   node test/dist/harness/prepare.js [kafka] [jaeger] [otelcol] [kustomize] [chromium] [kubernetes]
 */
import { existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { ensureJaeger } from './jaeger.js';
import { ensureKafka, KAFKA_VERSIONS } from './kafka.js';
import { ensureKubeTools, ETCD_VERSION, KUBERNETES_VERSION } from './kube.js';
import { ensureKustomize, KUSTOMIZE_VERSION } from './kustomize.js';
import { ensureOtelcol, OTELCOL_VERSION } from './otelcol.js';

/** Where Debian's chromium package puts the browser (test/e2e/coverage-html.test.ts launches it). */
const CHROMIUM = '/usr/bin/chromium';

/**
 * Debian's chromium, installed with apt-get when missing (`apt-get update` first: a fresh machine
 * has no package lists). Throws with what failed, under CI=true as anywhere else: never a skip.
 */
function ensureChromium(): string {
  if (existsSync(CHROMIUM)) return CHROMIUM;
  const apt = (args: string[]) => {
    const r = spawnSync('apt-get', args, { stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
    if (r.error || r.status !== 0) {
      const why = r.error ? r.error.message : `exit ${r.status ?? r.signal}`;
      throw new Error(`chromium: \`apt-get ${args.join(' ')}\` failed (${why}); install Debian's chromium package (as root: apt-get update && apt-get install -y chromium) so that ${CHROMIUM} exists${process.env['CI'] === 'true' ? ' (CI: this is an error, not a skip)' : ''}`);
    }
  };
  apt(['update']);
  apt(['install', '-y', 'chromium']);
  if (!existsSync(CHROMIUM)) throw new Error(`chromium: apt-get installed the chromium package but ${CHROMIUM} is missing`);
  return CHROMIUM;
}

const want = new Set(process.argv.slice(2));
const all = want.size === 0;
try {
  if (all || want.has('kafka')) {
    for (const v of KAFKA_VERSIONS) {
      const t0 = Date.now();
      const dir = await ensureKafka(v);
      process.stdout.write(`prepare: Kafka ${v} ready in ${dir} (${((Date.now() - t0) / 1000).toFixed(1)} s)\n`);
    }
  }
  if (all || want.has('jaeger')) {
    const t0 = Date.now();
    const bin = await ensureJaeger();
    process.stdout.write(`prepare: Jaeger ready at ${bin} (${((Date.now() - t0) / 1000).toFixed(1)} s)\n`);
  }
  if (all || want.has('otelcol')) {
    const t0 = Date.now();
    const bin = await ensureOtelcol();
    process.stdout.write(`prepare: OpenTelemetry Collector (test/otelcol, ${OTELCOL_VERSION}) ready at ${bin} (${((Date.now() - t0) / 1000).toFixed(1)} s)\n`);
  }
  if (all || want.has('kustomize')) {
    const t0 = Date.now();
    const bin = await ensureKustomize();
    process.stdout.write(`prepare: kustomize ${KUSTOMIZE_VERSION} ready at ${bin} (${((Date.now() - t0) / 1000).toFixed(1)} s)\n`);
  }
  if (all || want.has('chromium')) {
    const t0 = Date.now();
    const bin = ensureChromium();
    const version = spawnSync(bin, ['--version'], { encoding: 'utf8' }).stdout.trim();
    process.stdout.write(`prepare: ${version || 'chromium'} ready at ${bin} (${((Date.now() - t0) / 1000).toFixed(1)} s)\n`);
  }
  if (all || want.has('kubernetes')) {
    const t0 = Date.now();
    const tools = await ensureKubeTools((line) => process.stdout.write(`prepare: ${line}\n`));
    process.stdout.write(`prepare: etcd ${ETCD_VERSION} and Kubernetes ${KUBERNETES_VERSION} ready (${Object.values(tools).join(', ')}) (${((Date.now() - t0) / 1000).toFixed(1)} s)\n`);
  }
} catch (err) {
  process.stderr.write(`prepare: ${(err as Error).message}\n`);
  process.exitCode = 1;
}
