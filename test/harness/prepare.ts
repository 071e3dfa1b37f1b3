/**
 * Fetches and builds the real components the end-to-end suites run (Kafka jars from Maven Central,
 * the Jaeger v2 and kustomize binaries built with Go), once, into ~/.cache/kube-correlate. test/run.mjs runs this
 * before the test files, so a first build (Jaeger: about ten minutes on two cores) does not count
 * against one test file's time limit. A missing tool fails here with a message naming it.
 *
 *   node test/dist/harness/prepare.js [kafka] [jaeger] [kustomize]
 */
import { ensureJaeger } from './jaeger.js';
import { ensureKafka, KAFKA_VERSIONS } from './kafka.js';
import { ensureKustomize, KUSTOMIZE_VERSION } from './kustomize.js';

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
  if (all || want.has('kustomize')) {
    const t0 = Date.now();
    const bin = await ensureKustomize();
    process.stdout.write(`prepare: kustomize ${KUSTOMIZE_VERSION} ready at ${bin} (${((Date.now() - t0) / 1000).toFixed(1)} s)\n`);
  }
} catch (err) {
  process.stderr.write(`prepare: ${(err as Error).message}\n`);
  process.exitCode = 1;
}
