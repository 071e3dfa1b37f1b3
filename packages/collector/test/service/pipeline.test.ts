import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { makeSpan } from '@kube-correlate/fixtures';
import type { Span } from '@kube-correlate/otlp';
import { PipelineMetrics, silentLogger } from '@kube-correlate/telemetry';
import { z } from 'zod';
import {
  builtinRegistry, exporterFactory, extensionFactory, parseConfig, Pipeline, processorFactory, receiverFactory, RetryableError,
  type Component, type Downstream,
} from '../../src/index.js';

/**
 * The pipeline is built from factories only: a registry with components of the test's own shows
 * that a new component is a factory and nothing else, that processors chain in process (where
 * memory_limiter and redaction go), and the order things start and stop in.
 */
function registry(log: string[], handle: { next?: Downstream }) {
  const lifecycle = (name: string, extra: object = {}): Component => ({
    start: async () => void log.push(`start ${name}`),
    shutdown: async () => void log.push(`shutdown ${name}`),
    ...extra,
  });
  const sunk: Span[][] = [];
  const r = builtinRegistry()
    .register(receiverFactory({
      kind: 'receiver', type: 'fake', signal: 'traces', emits: 'spans', config: z.strictObject({}),
      create: ({ id }, _c, next) => {
        handle.next = next;
        return lifecycle(id);
      },
    }))
    .register(processorFactory({
      kind: 'processor', type: 'limit', signals: ['traces'], takes: ['spans'], emits: 'spans',
      config: z.strictObject({ max_spans: z.number().int().positive().default(2) }),
      create: ({ id }, c, next) => lifecycle(id, {
        consumeSpans: async (spans: Span[]) => {
          if (spans.length > c.max_spans) throw new RetryableError(`over ${c.max_spans} spans`, 500, { reason: 'memory_limit' });
          await next.spans.consumeSpans(spans.map((s) => ({ ...s, name: `${id}:${s.name}` })));
        },
      }),
    }))
    .register(exporterFactory({
      kind: 'exporter', type: 'sink', signals: ['traces', 'logs'], takes: ['spans', 'audit_events'], config: z.strictObject({}),
      create: ({ id }) => lifecycle(id, { consumeSpans: (s: Span[]) => void sunk.push(s) }),
    }))
    .register(exporterFactory({
      kind: 'exporter', type: 'drain', signals: ['traces'], takes: [], fedByExtension: true, config: z.strictObject({}),
      create: ({ id }) => lifecycle(id),
    }))
    .register(extensionFactory({ kind: 'extension', type: 'ext', config: z.strictObject({}), create: ({ id }) => lifecycle(id) }));
  return { registry: r, sunk };
}

const YAML = `
receivers: { fake: {}, fake/2: {} }
processors: { limit: { max_spans: 2 }, limit/outer: {} }
exporters: { sink: {}, sink/2: {}, drain: {} }
extensions: { ext: {} }
service:
  extensions: [ext]
  pipelines:
    traces: { receivers: [fake, fake/2], processors: [limit/outer, limit], exporters: [sink, drain, sink/2] }
`;

test('components come from the registry; processors chain; start downstream first, stop upstream first', async () => {
  const log: string[] = [];
  const handle: { next?: Downstream } = {};
  const { registry: reg, sunk } = registry(log, handle);
  const config = parseConfig(YAML, 'p.yaml', {}, { registry: reg });
  const p = new Pipeline({ config, registry: reg, metrics: new PipelineMetrics(), logger: silentLogger() });
  await p.start();
  await p.start();
  assert.equal(log, ['start ext', 'start drain', 'start sink', 'start sink/2', 'start limit', 'start limit/outer', 'start fake', 'start fake/2']);

  await handle.next!.spans.consumeSpans([makeSpan({ trace: 1, id: 1, name: 'a' })]);
  assert.equal(sunk.map((s) => s.map((x) => x.name)), [['limit:limit/outer:a'], ['limit:limit/outer:a']], 'through both processors, to both sinks, not to the drain');
  await Promise.resolve(handle.next!.spans.consumeSpans([1, 2, 3].map((i) => makeSpan({ trace: 1, id: i, name: 'x' })))).then(() => assert.unreachable(), (err: unknown) => {
    assert.instance(err, RetryableError);
    assert.is((err as RetryableError).reason, 'memory_limit');
  });

  log.length = 0;
  await Promise.all([p.shutdown(), p.shutdown()]);
  assert.equal(log, ['shutdown fake/2', 'shutdown fake', 'shutdown limit/outer', 'shutdown limit', 'shutdown sink/2', 'shutdown sink', 'shutdown drain', 'shutdown ext']);
});

test('shutdown without start, and twice, is safe', async () => {
  const { registry: reg } = registry([], {});
  const p = new Pipeline({ config: parseConfig(YAML, 'p.yaml', {}, { registry: reg }), registry: reg, metrics: new PipelineMetrics(), logger: silentLogger() });
  await p.shutdown();
  await p.shutdown();
});

test('a config of unknown components is refused at load, naming the known ones', () => {
  assert.throws(() => parseConfig(YAML, 'p.yaml', {}), /p\.yaml: receivers\.fake: unknown receiver type "fake" \(known: otlp, k8saudit, auditlog, kafka\)/);
});

test.run();
