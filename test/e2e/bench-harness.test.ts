import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ROOT, tempDir } from '../harness/index.js';

/**
 * `npm run bench`'s harness on tiny inputs: every benchmark runs (the real code paths, a real Kafka
 * broker for the client benchmark) and lands in RESULTS.md with the machine's description. Times
 * are not checked: benchmarks are for reading, the suite only proves they run.
 */
test('test/bench/run.js --tiny runs every benchmark and writes the results with the machine description', () => {
  const tmp = tempDir('kc-bench-');
  try {
    const out = join(tmp.dir, 'RESULTS.md');
    const r = spawnSync(process.execPath, [join(ROOT, 'test/dist/bench/run.js'), '--tiny', '--out', out], { cwd: ROOT, encoding: 'utf8', timeout: 9 * 60_000 });
    assert.is(r.status, 0, `bench harness failed:\n${r.stderr.slice(-3000)}`);
    const md = readFileSync(out, 'utf8');
    assert.match(md, /^Machine: \d+ cores, .+, Node v\d+/m);
    const titles = [...md.matchAll(/^## (.+)$/gm)].map((m) => m[1]);
    assert.equal(titles, [
      'OTLP decode: our decoder vs protobufjs',
      'Kafka clients: kafkajs vs @platformatic/kafka (produce and consume paths)',
      'Collector ingest: OTLP/gRPC -> Kafka, ours vs the OpenTelemetry Collector',
      'Embedded mode: OTLP/gRPC -> stored, `correlate start` vs the OpenTelemetry Collector\'s file exporter',
      'Correlator (one instance) and scale (1 vs 2 instances, 8 and 16 partitions)',
      'Admission webhook: latency per review',
      'Audit event -> API operation mapping',
    ]);
    // Each section holds a table of figures from its own run.
    for (const section of md.split(/^## /m).slice(1)) assert.match(section, /^\|.*\d.*\|$/m, `a table with figures in: ${section.slice(0, 60)}`);
  } finally {
    tmp.cleanup();
  }
});

test.run();
