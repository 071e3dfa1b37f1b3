import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MemoryLimiter, PipelineMetrics } from '../src/index.js';

const MiB = 1024 * 1024;

test('refuses above the soft limit (limit - spike) and accepts again below it', async () => {
  let used = 100 * MiB;
  const metrics = new PipelineMetrics();
  const m = new MemoryLimiter({ checkIntervalMs: 1000, limitBytes: 500 * MiB, spikeBytes: 100 * MiB, usage: () => used, metrics });
  m.check();
  assert.is(m.refusing(), undefined);
  used = 401 * MiB;
  m.check();
  assert.match(m.refusing() ?? '', /above the soft limit of 400 MiB/);
  used = 600 * MiB;
  m.check();
  assert.match(m.refusing() ?? '', /above the limit of 500 MiB/);
  used = 399 * MiB;
  m.check();
  assert.is(m.refusing(), undefined);
  const g = (await metrics.registry.getSingleMetric('kube_correlate_memory_limiter_limit_bytes')!.get()).values[0]!.value;
  assert.is(g, 500 * MiB);
});

test('the spike defaults to 20% of the limit, and bad settings are refused with their names', () => {
  assert.is(new MemoryLimiter({ checkIntervalMs: 1000, limitBytes: 1000 * MiB, usage: () => 0 }).softLimitBytes, 800 * MiB);
  assert.throws(() => new MemoryLimiter({ checkIntervalMs: 1000, limitBytes: 0 }), /limit/);
  assert.throws(() => new MemoryLimiter({ checkIntervalMs: 1000, limitBytes: 10, spikeBytes: 10 }), /spike_limit_mib/);
  assert.throws(() => new MemoryLimiter({ checkIntervalMs: 0, limitBytes: 10 }), /check_interval/);
});

test('start samples at once and on a timer; stop is safe twice', () => {
  let calls = 0;
  const m = new MemoryLimiter({ checkIntervalMs: 60_000, limitBytes: 10 * MiB, usage: () => (calls++, 0) });
  m.start();
  assert.is(calls, 1);
  m.stop();
  m.stop();
});

test.run();
