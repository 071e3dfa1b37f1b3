import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { LAST_APPLIED_ANNOTATION, REDACTED, type AuditEvent } from '@kube-correlate/audit';
import { encodeTraceRequest, scanTraceRequest, type RawSpan, type Span } from '@kube-correlate/otlp';
import { makeSpan } from '@kube-correlate/fixtures';
import { Writable } from 'node:stream';
import { createLogger, PipelineMetrics, silentLogger } from '@kube-correlate/telemetry';
import { parseConfig, RetryableError, type Component, type CreateSettings, type Downstream } from '../../src/index.js';
import { downstreamOf } from '../../src/component/component.js';
import { statusOf, retryAfterHeaders } from '../../src/component/status.js';
import { k8sauditRedactionFactory } from '../../src/processors/k8saudit_redaction/factory.js';
import { memoryLimiterFactory } from '../../src/processors/memory_limiter/factory.js';

/**
 * The two in-process processors of issue 14: k8saudit_redaction (always on in `logs` pipelines) and
 * memory_limiter (the OpenTelemetry Collector's keys), as the loader places them and as they behave
 * when handed data.
 */

const yaml = (processors: string, traces = '', logs = '', extraPipelines = '') => `
receivers: { otlp: { protocols: { grpc: } }, k8saudit: }
${processors ? `processors:\n${processors}` : ''}
exporters: { correlator: }
extensions: { store: }
service:
  extensions: [store]
  pipelines:
    traces: { receivers: [otlp], ${traces ? `processors: [${traces}], ` : ''}exporters: [correlator] }
    logs: { receivers: [k8saudit], ${logs ? `processors: [${logs}], ` : ''}exporters: [correlator] }
${extraPipelines}`;

const pipelinesOf = (text: string) => Object.fromEntries(parseConfig(text, 'p.yaml', {}).pipelines.map((p) => [p.id, p.processors]));

test('k8saudit_redaction is put first in every logs pipeline that does not list it, and defined with its defaults', () => {
  const c = parseConfig(yaml(''), 'p.yaml', {});
  assert.equal(Object.fromEntries(c.pipelines.map((p) => [p.id, p.processors])), { traces: [], logs: ['k8saudit_redaction'] });
  assert.equal(c.processors, [{ type: 'k8saudit_redaction', name: 'k8saudit_redaction', config: { default_rules: true, rules: [] } }]);
  // After a leading memory_limiter (refusing is cheaper than redacting), before anything else.
  assert.equal(pipelinesOf(yaml('  memory_limiter: { limit_mib: 100 }', 'memory_limiter', 'memory_limiter')), { traces: ['memory_limiter'], logs: ['memory_limiter', 'k8saudit_redaction'] });
  // A pipeline that lists one (of any name) keeps its own; the others get the default one.
  const custom = yaml(
    '  k8saudit_redaction/strict: { rules: [{ resource: databases, paths: [spec.password] }] }', '', 'k8saudit_redaction/strict',
    '    logs/other: { receivers: [k8saudit], exporters: [correlator] }',
  );
  const c2 = parseConfig(custom, 'p.yaml', {});
  assert.equal(Object.fromEntries(c2.pipelines.map((p) => [p.id, p.processors])), { traces: [], logs: ['k8saudit_redaction/strict'], 'logs/other': ['k8saudit_redaction'] });
  assert.equal(c2.processors.map((p) => p.name).sort(), ['k8saudit_redaction', 'k8saudit_redaction/strict']);
  // Defining it only changes its rules: it is still put in the pipeline.
  const defined = parseConfig(yaml('  k8saudit_redaction: { default_rules: false, rules: [{ resource: databases, paths: [spec.password] }] }'), 'p.yaml', {});
  assert.equal(defined.pipelines.find((p) => p.id === 'logs')!.processors, ['k8saudit_redaction']);
  const cfg = defined.processors[0]!.config as { default_rules: boolean; rules: Array<{ resource: string; paths: string[] }> };
  assert.equal([cfg.default_rules, cfg.rules.map((r) => [r.resource, r.paths])], [false, [['databases', ['spec.password']]]]);
});

test('k8saudit_redaction: problems in a logs pipeline\'s processors name them as written, not as shifted by the inserted one', () => {
  assert.throws(() => parseConfig(yaml('', '', 'nope'), 'p.yaml', {}), /p\.yaml: service\.pipelines\.logs\.processors\[0\]: processor "nope" is not defined under processors/);
  assert.throws(
    () => parseConfig(yaml('  memory_limiter: { limit_mib: 100 }', '', 'memory_limiter, nope').replace('    logs:', '    logs/audit:'), 'p.yaml', {}),
    /service\.pipelines\.logs\/audit\.processors\[1\]: processor "nope" is not defined/,
  );
});

test('k8saudit_redaction: bad rules are config errors naming the rule and the character', () => {
  assert.throws(() => parseConfig(yaml('  k8saudit_redaction: { rules: [{ resource: x, paths: ["spec..x"] }] }'), 'p.yaml', {}), /p\.yaml: processors\.k8saudit_redaction\.rules\[0\]\.paths\[0\]: path "spec\.\.x": empty key at character 6/);
  assert.throws(() => parseConfig(yaml('  k8saudit_redaction: { rules: [{ paths: [a] }] }'), 'p.yaml', {}), /processors\.k8saudit_redaction\.rules\[0\]\.resource/);
  assert.throws(() => parseConfig(yaml('  k8saudit_redaction: { rule: [] }'), 'p.yaml', {}), /processors\.k8saudit_redaction\.rule: unknown key/);
  // It takes audit events only.
  assert.throws(() => parseConfig(yaml('  k8saudit_redaction:', 'k8saudit_redaction'), 'p.yaml', {}), /processor "k8saudit_redaction" does not handle traces/);
});

function settings(metrics: PipelineMetrics): CreateSettings {
  return { id: 'x', source: 'p.yaml', metrics, logger: silentLogger(), host: { getExtension: () => undefined, reportAddress: () => undefined, addresses: () => ({}) } };
}

function sink(): { next: Downstream; spans: Span[][]; audit: AuditEvent[][] } {
  const spans: Span[][] = [];
  const audit: AuditEvent[][] = [];
  return {
    spans, audit,
    next: { spans: { consumeSpans: (s) => void spans.push(s) }, audit: { consumeAuditEvents: (a) => void audit.push(a) }, kafkaTopics: undefined, kafkaOutput: undefined },
  };
}

type Consumers = Component & { consumeSpans(s: Span[]): Promise<void>; consumeAuditEvents(a: AuditEvent[]): Promise<void> };

const MARK = 'kc-marker-3b1f';
const b64 = (s: string) => Buffer.from(s).toString('base64');

function secretEvent(auditID: string): AuditEvent {
  const applied = JSON.stringify({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 's' }, data: { password: b64(`${MARK}-applied`) } });
  const secret = { apiVersion: 'v1', kind: 'Secret', metadata: { name: 's', namespace: 'd', annotations: { [LAST_APPLIED_ANNOTATION]: applied } }, data: { password: b64(`${MARK}-data`) }, stringData: { token: `${MARK}-string` } };
  return {
    level: 'RequestResponse', auditID, stage: 'ResponseComplete', requestURI: '/api/v1/namespaces/d/secrets', verb: 'create', user: { username: 'u' },
    objectRef: { resource: 'secrets', namespace: 'd', name: 's', apiVersion: 'v1' }, requestObject: secret, responseObject: { ...secret, stringData: undefined },
    requestReceivedTimestamp: '2025-01-01T00:00:00.000000Z', stageTimestamp: '2025-01-01T00:00:00.100000Z',
  } as AuditEvent;
}

test('k8saudit_redaction: hands on the events redacted, counts each redaction by rule, passes other events as they are', async () => {
  const metrics = new PipelineMetrics();
  const out = sink();
  const config = parseConfig(yaml('  k8saudit_redaction: { rules: [{ name: db, resource: databases, group: example.com, paths: [spec.password] }] }'), 'p.yaml', {}).processors[0]!.config;
  const p = k8sauditRedactionFactory.create(settings(metrics), config as never, out.next) as unknown as Consumers;
  const plain = { ...secretEvent('a-2'), objectRef: { resource: 'configmaps', namespace: 'd', name: 'c', apiVersion: 'v1' }, requestObject: { data: { k: 'v' } }, responseObject: undefined };
  const db = { ...secretEvent('a-3'), objectRef: { resource: 'databases', apiGroup: 'example.com', namespace: 'd', name: 'x', apiVersion: 'v1' }, requestObject: { spec: { password: `${MARK}-db`, size: 3 } }, responseObject: undefined };
  const input = [secretEvent('a-1'), plain, db];
  await p.consumeAuditEvents(input);
  const [handed] = out.audit;
  const text = JSON.stringify(handed);
  assert.not.ok(text.includes(MARK), 'no secret as written');
  for (const s of ['data', 'applied']) assert.not.ok(text.includes(b64(`${MARK}-${s}`)), `no base64 of ${s}`);
  assert.is((handed![0]!.requestObject as { data: { password: string } }).data.password, REDACTED, 'keys kept');
  assert.is(handed![1], plain, 'an event no rule applies to is handed on as it is');
  assert.equal((handed![2]!.requestObject as { spec: unknown }).spec, { password: REDACTED, size: 3 });
  assert.equal((input[0]!.requestObject as { data: { password: string } }).data.password, b64(`${MARK}-data`), 'the input is not modified');
  const counted = (await metrics.registry.getSingleMetric('kube_correlate_audit_redactions_total')!.get()).values;
  const byRule = Object.fromEntries(counted.map((v) => [v.labels['rule'], v.value]));
  // request: data, stringData, the annotation's data; response: data, the annotation's data.
  assert.equal(byRule, { secret: 5, db: 1 });
  // A batch with nothing to redact is handed on as the same array.
  const clean = [plain];
  await p.consumeAuditEvents(clean);
  assert.is(out.audit[1], clean);
});

test('memory_limiter config: one limit, spike below it, of the same kind, check_interval above 0: each error names the key', () => {
  const bad: Array<[string, RegExp]> = [
    ['{ limit_mib: 512, spike_limit_mib: 512 }', /processors\.memory_limiter\.spike_limit_mib: must be below limit_mib \(512\)/],
    ['{ limit_mib: 512, spike_limit_mib: 600 }', /spike_limit_mib: must be below limit_mib/],
    ['{}', /processors\.memory_limiter: set limit_mib \(MiB of resident memory\) or limit_percentage/],
    ['', /processors\.memory_limiter: set limit_mib/],
    ['{ limit_mib: 100, limit_percentage: 50 }', /processors\.memory_limiter\.limit_percentage: set limit_mib or limit_percentage, not both/],
    ['{ limit_percentage: 50, spike_limit_mib: 10 }', /processors\.memory_limiter\.spike_limit_mib: goes with limit_mib/],
    ['{ limit_mib: 50, spike_limit_percentage: 10 }', /processors\.memory_limiter\.spike_limit_percentage: goes with limit_percentage/],
    ['{ limit_percentage: 50, spike_limit_percentage: 50 }', /spike_limit_percentage: must be below limit_percentage \(50\)/],
    ['{ limit_percentage: 150 }', /processors\.memory_limiter\.limit_percentage: /],
    ['{ limit_mib: 0 }', /processors\.memory_limiter\.limit_mib: /],
    ['{ limit_mib: 100, check_interval: 0s }', /processors\.memory_limiter\.check_interval: must be above 0/],
    ['{ limit_mib: 100, check_interval: soon }', /processors\.memory_limiter\.check_interval: expected a duration/],
    ['{ limit_mib: 100, limit: 5 }', /processors\.memory_limiter\.limit: unknown key/],
  ];
  for (const [v, re] of bad) assert.throws(() => parseConfig(yaml(`  memory_limiter: ${v}`, 'memory_limiter', 'memory_limiter'), 'p.yaml', {}), re, v);
  const ok = parseConfig(yaml('  memory_limiter: { limit_percentage: 80, spike_limit_percentage: 20 }', 'memory_limiter', 'memory_limiter'), 'p.yaml', {});
  assert.equal(ok.processors.find((p) => p.type === 'memory_limiter')!.config, { check_interval: '1s', limit_percentage: 80, spike_limit_percentage: 20 });
  // It hands on what it takes: a pipeline of only memory_limiter still needs an exporter that takes the data.
  const onlyOtlp = yaml('  memory_limiter: { limit_mib: 1 }', 'memory_limiter')
    .replace('exporters: { correlator: }', 'exporters: { correlator:, otlp/j: { endpoint: "j:4317" } }')
    .replace(/(traces: .*)exporters: \[correlator\]/, '$1exporters: [otlp/j]');
  assert.throws(() => parseConfig(onlyOtlp, 'p.yaml', {}), /p\.yaml: service\.pipelines\.traces: nothing takes the spans of processors\.memory_limiter \(what takes spans: the correlator exporter, the kafka exporter\)/);
});

test('memory_limiter: above the soft limit it refuses retryably (UNAVAILABLE / 503 + Retry-After, reason memory_limit), below it hands on', async () => {
  const MiB = 1024 * 1024;
  const real = process.memoryUsage.rss;
  let rss = 50 * MiB;
  process.memoryUsage.rss = () => rss;
  const metrics = new PipelineMetrics();
  const out = sink();
  const config = parseConfig(yaml('  memory_limiter: { check_interval: 20ms, limit_mib: 100, spike_limit_mib: 20 }', 'memory_limiter'), 'p.yaml', {}).processors.find((p) => p.type === 'memory_limiter')!.config;
  const p = memoryLimiterFactory.create(settings(metrics), config as never, out.next) as unknown as Consumers;
  try {
    await p.start({ getExtension: () => undefined, reportAddress: () => undefined, addresses: () => ({}) });
    await p.consumeSpans([]);
    assert.is(out.spans.length, 1, 'below the soft limit: handed on');
    rss = 81 * MiB; // soft limit 80 MiB
    await new Promise((r) => setTimeout(r, 100));
    const err = await p.consumeAuditEvents([]).then(() => undefined, (e: unknown) => e);
    assert.instance(err, RetryableError);
    assert.match((err as Error).message, /memory limit: memory usage 81 MiB is above the soft limit of 80 MiB/);
    const r = statusOf(err);
    assert.equal([r.grpc, r.http, r.reason, retryAfterHeaders(r)], [14, 503, 'memory_limit', { 'retry-after': '1' }]);
    await p.consumeSpans([]).then(() => assert.unreachable('refused'), (e: unknown) => assert.instance(e, RetryableError));
    assert.is(out.spans.length + out.audit.length, 1, 'nothing handed on while refusing');
    assert.is((await metrics.registry.getSingleMetric('kube_correlate_memory_limiter_limit_bytes')!.get()).values[0]!.value, 100 * MiB);
    assert.is((await metrics.registry.getSingleMetric('kube_correlate_memory_limiter_usage_bytes')!.get()).values[0]!.value, 81 * MiB);
    rss = 79 * MiB;
    await new Promise((r) => setTimeout(r, 100));
    await p.consumeAuditEvents([]);
    assert.is(out.audit.length, 1, 'below the soft limit again: handed on');
  } finally {
    process.memoryUsage.rss = real;
    await p.shutdown();
  }
});

test('scanned spans: memory_limiter takes them only when everything after it does (so a receiver before it scans instead of decoding), and refuses them alike', async () => {
  const MiB = 1024 * 1024;
  const real = process.memoryUsage.rss;
  let rss = 10 * MiB;
  process.memoryUsage.rss = () => rss;
  const metrics = new PipelineMetrics();
  const config = parseConfig(yaml('  memory_limiter: { check_interval: 20ms, limit_mib: 100 }', 'memory_limiter'), 'p.yaml', {}).processors.find((p) => p.type === 'memory_limiter')!.config;
  const raw: RawSpan[][] = [];
  const decoded: Span[][] = [];
  const rawTaker = { consumeSpans: (s: Span[]) => void decoded.push(s), consumeRawSpans: (s: RawSpan[]) => void raw.push(s) };
  const spansOnly = { consumeSpans: (s: Span[]) => void decoded.push(s) };
  const next = (consumers: unknown[]): Downstream => downstreamOf(consumers);
  assert.type(next([rawTaker]).spans.consumeRawSpans, 'function', 'one consumer that takes scanned spans');
  assert.type(next([rawTaker, spansOnly]).spans.consumeRawSpans, 'undefined', 'a consumer that needs decoded spans: the receiver decodes');
  assert.type(next([]).spans.consumeRawSpans, 'undefined', 'nothing takes spans');
  const create = (d: Downstream) => memoryLimiterFactory.create({ ...settings(metrics), id: `memory_limiter/${Math.random()}` }, config as never, d) as unknown as Consumers & { consumeRawSpans?(s: RawSpan[]): Promise<void> };
  assert.type(create(next([rawTaker, spansOnly])).consumeRawSpans, 'undefined');
  const p = create(next([rawTaker, { ...rawTaker }]));
  try {
    await p.start({ getExtension: () => undefined, reportAddress: () => undefined, addresses: () => ({}) });
    const scanned = scanTraceRequest(encodeTraceRequest([makeSpan({ trace: 1, id: 1, name: 'GET' })])).spans;
    await p.consumeRawSpans!(scanned);
    assert.is(raw.length, 2, 'handed to both consumers');
    assert.is(raw[0], scanned);
    assert.is(decoded.length, 0);
    rss = 95 * MiB;
    await new Promise((r) => setTimeout(r, 100));
    await p.consumeRawSpans!(scanned).then(() => assert.unreachable('refused'), (e: unknown) => assert.instance(e, RetryableError));
    assert.is(raw.length, 2, 'nothing handed on while refusing');
  } finally {
    process.memoryUsage.rss = real;
    await p.shutdown();
  }
});

test('memory_limiter: one limiter per component id, shared by the pipelines that list it (one timer, one log line), until the last stops', async () => {
  const MiB = 1024 * 1024;
  const real = process.memoryUsage.rss;
  let rss = 10 * MiB;
  process.memoryUsage.rss = () => rss;
  const lines: string[] = [];
  const logger = createLogger({ level: 'info', destination: new Writable({ write(chunk: Buffer, _e, cb) { lines.push(chunk.toString()); cb(); } }) });
  const metrics = new PipelineMetrics();
  const config = parseConfig(yaml('  memory_limiter: { check_interval: 20ms, limit_mib: 100 }', 'memory_limiter', 'memory_limiter'), 'p.yaml', {}).processors.find((p) => p.type === 'memory_limiter')!.config;
  const host = { getExtension: () => undefined, reportAddress: () => undefined, addresses: () => ({}) };
  const [a, b] = [0, 1].map(() => memoryLimiterFactory.create({ ...settings(metrics), id: 'memory_limiter', logger }, config as never, sink().next) as unknown as Consumers);
  try {
    await a!.start(host);
    await b!.start(host);
    rss = 90 * MiB;
    await new Promise((r) => setTimeout(r, 100));
    await a!.shutdown();
    rss = 95 * MiB;
    await new Promise((r) => setTimeout(r, 100));
    await b!.consumeSpans([]).then(() => assert.unreachable('refused'), (e: unknown) => assert.match((e as Error).message, /95 MiB/));
    assert.is(lines.filter((l) => l.includes('memory limiter started')).length, 1, 'started once');
    assert.is(lines.filter((l) => l.includes('memory usage above the soft limit')).length, 1, 'one line per crossing');
  } finally {
    process.memoryUsage.rss = real;
    await b!.shutdown();
  }
});

test('memory_limiter: limit_percentage is of the container\'s memory limit or the machine\'s', async () => {
  const metrics = new PipelineMetrics();
  const config = parseConfig(yaml('  memory_limiter: { limit_percentage: 50 }', 'memory_limiter'), 'p.yaml', {}).processors.find((p) => p.type === 'memory_limiter')!.config;
  const p = memoryLimiterFactory.create(settings(metrics), config as never, sink().next);
  const limit = (await metrics.registry.getSingleMetric('kube_correlate_memory_limiter_limit_bytes')!.get()).values[0]!.value;
  const { totalmem } = await import('node:os');
  assert.ok(limit > 0 && limit <= totalmem() / 2 + 1, `${limit} <= half of ${totalmem()}`);
  await p.shutdown();
});

test.run();
