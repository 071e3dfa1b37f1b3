import type { ChildProcess } from 'node:child_process';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { AuditEvent } from '@kube-correlate/audit';
import { COLLECTOR_CONFIG_DIR } from '@kube-correlate/cli';
import * as grpc from '@grpc/grpc-js';
import { EXPORT_PATH, loadConfigFile, Pipeline } from '@kube-correlate/collector';
import { encodeTraceRequest, SpanKind, type Span } from '@kube-correlate/otlp';
import { Writable } from 'node:stream';
import { createKafkaClient } from '@kube-correlate/kafka';
import { createLogger, PipelineMetrics, silentLogger } from '@kube-correlate/telemetry';
import { KAFKA_VERSIONS, kafkaClientEnv, startKafka, type KafkaBroker } from '../harness/kafka.js';
import { eventList, reported, metricValue, spawnCorrelate, tempDir, waitFor } from '../harness/index.js';
import { killGroup } from '../harness/supervise.js';

/**
 * The issue's acceptance runs against a real broker: 10,000 requests through the collector and two
 * correlator processes give 10,000 complete trees, none twice; with one correlator killed (-9)
 * mid-stream; with the broker stopped and restarted mid-stream (senders retry); with deliveries
 * repeated.
 */
const REQUESTS = Number(process.env.KC_KAFKA_TEST_REQUESTS ?? 10_000);
const SPANS_PER_REQUEST = 4;

const resource = { attributes: [{ key: 'service.name', value: { stringValue: 'apiserver' } }], droppedAttributesCount: 0, schemaUrl: '' };
const scope = { name: 'k8s.io/apiserver', version: '', attributes: [], droppedAttributesCount: 0, schemaUrl: '' };
const hex = (n: number, len: number) => n.toString(16).padStart(len, '0');
const traceIdOf = (run: number, i: number) => hex(run, 8) + hex(i + 1, 24);
const auditIdOf = (run: number, i: number) => `${hex(run, 8)}-${hex(i, 4)}-4000-8000-${hex(i, 12)}`;

/** One kube-apiserver-shaped request: route span, handler, storage, etcd client; two audit stages. */
function request(run: number, i: number): { spans: Span[]; audit: AuditEvent[] } {
  const traceId = traceIdOf(run, i);
  const auditID = auditIdOf(run, i);
  const t0 = 1_790_000_000_000_000_000n + BigInt(i) * 1_000_000n;
  const mk = (n: number, parent: number, name: string, kind: number, from: number, to: number, audit: boolean): Span => ({
    traceId, spanId: hex(n, 16), parentSpanId: parent ? hex(parent, 16) : '', traceState: '', flags: 1, name, kind,
    startTimeUnixNano: (t0 + BigInt(from)).toString(), endTimeUnixNano: (t0 + BigInt(to)).toString(),
    attributes: audit ? [{ key: 'audit-id', value: { stringValue: auditID } }] : [], droppedAttributesCount: 0,
    events: [], droppedEventsCount: 0, links: [], droppedLinksCount: 0, status: { code: 0, message: '' }, resource, scope,
  });
  const spans = [
    mk(1, 0, 'POST /api/v1/namespaces/{:namespace}/configmaps', SpanKind.SERVER, 0, 900_000, true),
    mk(2, 1, 'Create', SpanKind.INTERNAL, 10_000, 800_000, true),
    mk(3, 2, 'Create etcd3', SpanKind.INTERNAL, 100_000, 500_000, true),
    mk(4, 3, 'etcdserverpb.KV/Txn', SpanKind.CLIENT, 110_000, 490_000, false),
  ];
  // RFC 3339 with microseconds, as kube-apiserver writes them.
  const ts = (us: number) => {
    const total = Number(t0 / 1000n) + us;
    return new Date(Math.floor(total / 1000)).toISOString().slice(0, -1) + String(total % 1000).padStart(3, '0') + 'Z';
  };
  const base = {
    level: 'Metadata', auditID, requestURI: `/api/v1/namespaces/default/configmaps`, verb: 'create',
    user: { username: 'load' }, userAgent: 'load/1.0', objectRef: { resource: 'configmaps', namespace: 'default', name: `cm-${i}`, apiVersion: 'v1' },
    requestReceivedTimestamp: ts(0),
  };
  const audit: AuditEvent[] = [
    { ...base, stage: 'RequestReceived', stageTimestamp: ts(0) },
    { ...base, stage: 'ResponseComplete', stageTimestamp: ts(900), responseStatus: { code: 201 } },
  ];
  return { spans, audit };
}

/** POSTs until accepted, retrying what the collector says is retryable and connection failures. */
async function postUntilAccepted(url: string, body: Uint8Array | string, type: string, seen: { retryable: number }): Promise<void> {
  const deadline = Date.now() + 120_000;
  for (;;) {
    let status = 0;
    try {
      const res = await fetch(url, { method: 'POST', headers: { 'content-type': type }, body, signal: AbortSignal.timeout(15_000) });
      status = res.status;
      await res.arrayBuffer();
      if (res.ok) return;
      if (status !== 503 && status !== 429) throw new Error(`${url} answered ${status}`);
      seen.retryable++;
    } catch (err) {
      if (status && status !== 503 && status !== 429) throw err;
    }
    if (Date.now() > deadline) throw new Error(`${url}: not accepted within 120 s`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Sends requests [from, to) with a few requests in flight; audit events in EventLists of 200. */
async function send(run: number, from: number, to: number, collector: Pipeline, seen: { retryable: number }): Promise<void> {
  const http = `http://${collector.addresses.otlpHttp}/v1/traces`;
  const webhook = `http://${collector.addresses.auditWebhook}/`;
  const BATCH = 50;
  const jobs: Array<() => Promise<void>> = [];
  for (let i = from; i < to; i += BATCH) {
    const reqs = Array.from({ length: Math.min(BATCH, to - i) }, (_, k) => request(run, i + k));
    jobs.push(() => postUntilAccepted(http, encodeTraceRequest(reqs.flatMap((r) => r.spans)), 'application/x-protobuf', seen));
    jobs.push(() => postUntilAccepted(webhook, JSON.stringify(eventList(reqs.flatMap((r) => r.audit))), 'application/json', seen));
  }
  let next = 0;
  await Promise.all(Array.from({ length: 4 }, async () => {
    while (next < jobs.length) await jobs[next++]!();
  }));
}

/** One OTLP/gRPC Export; returns the status code. */
function exportOverGrpc(target: string, body: Uint8Array): Promise<number> {
  const client = new grpc.Client(target, grpc.credentials.createInsecure());
  return new Promise((resolve) => {
    client.makeUnaryRequest(EXPORT_PATH, (b: Buffer) => b, (b: Buffer) => b, Buffer.from(body), (err) => {
      client.close();
      resolve(err ? err.code : grpc.status.OK);
    });
  });
}

/**
 * A correlator process, behind the harness's watchdog: if this test process is killed (run.mjs's
 * per-file limit), the correlator goes too, instead of living on and joining the consumer group of
 * a later test's broker that happens to get the same port.
 */
function correlatorProcess(env: NodeJS.ProcessEnv): { child: ChildProcess; exited: Promise<unknown>; stderr: () => string; metricsUrl: () => string | undefined } {
  const { child, exited } = spawnCorrelate(['correlator', '--config', `${COLLECTOR_CONFIG_DIR}kafka-correlator.yaml`], { env });
  let err = '';
  let metricsUrl: string | undefined;
  child.stderr!.on('data', (d: Buffer) => {
    err = (err + d).slice(-20_000);
    metricsUrl ??= /metrics\s+(http:\/\/\S+\/metrics)/.exec(err)?.[1];
  });
  return { child, exited, stderr: () => err, metricsUrl: () => metricsUrl };
}

/** Each consumer group's lag, per topic-partition that has any: where a stalled pipeline stops. */
async function groupLags(brokers: string): Promise<string> {
  let admin: Awaited<ReturnType<ReturnType<typeof createKafkaClient>['admin']>> | undefined;
  try {
    admin = await createKafkaClient({ brokers: [brokers], clientId: 'kc-test-lag' }).admin();
    const out: string[] = [];
    const groups: Record<string, string[]> = {
      'kube-correlate-correlator': ['otlp_spans', 'k8s_audit', 'kc_audit_trace', 'kc_audit_by_trace'],
      'kube-correlate-store': ['otlp_correlated'],
    };
    for (const [groupId, topics] of Object.entries(groups)) {
      for (const topic of topics) {
        const ends = await admin.endOffsets(topic);
        const committed = await admin.committedOffsets(groupId, topic);
        ends.forEach((end, p) => {
          const lag = end - Math.max(0, committed[p] ?? -1);
          if (lag > 0) out.push(`${groupId} ${topic}[${p}] ${lag} behind (committed ${committed[p]} of ${end})`);
        });
      }
    }
    return out.join('; ') || 'none: every group committed everything';
  } catch (err) {
    return `unknown (${(err as Error).message})`;
  } finally {
    await admin?.disconnect().catch(() => undefined);
  }
}

/** What a correlator process says of its work: the counters that show where a stall is. */
async function correlatorFigures(url: string | undefined): Promise<string> {
  if (!url) return 'no metrics URL yet';
  try {
    const text = await (await fetch(url, { signal: AbortSignal.timeout(5000) })).text();
    const keep = /^kube_correlate_(receiver_accepted_items_total|correlator_settled_total|correlator_traces_in_flight|correlator_pending_audits|exporter_sent_items_total|exporter_failed_total|correlator_joined_total)/;
    return text.split('\n').filter((l) => keep.test(l)).join('; ') || '(no counters yet)';
  } catch (err) {
    return `metrics unreachable: ${(err as Error).message}`;
  }
}

for (const version of KAFKA_VERSIONS) {
  const t = suite(`Kafka ${version}: scale and failures`);
  let broker: KafkaBroker;
  const tmp = tempDir();
  let collector: Pipeline;
  let store: Pipeline;
  let storeMetrics: PipelineMetrics;
  let collectorMetrics: PipelineMetrics;
  let stalled: string | undefined;
  let storeLog = '';
  const correlators: Array<ReturnType<typeof correlatorProcess>> = [];

  t.before(reported('setup', async () => {
    broker = await startKafka({ version, partitions: 4 });
    const env = {
      KAFKA_BROKERS: broker.brokers,
      KC_OTLP_GRPC_ENDPOINT: '127.0.0.1:0', KC_OTLP_HTTP_ENDPOINT: '127.0.0.1:0', KC_AUDIT_WEBHOOK_ENDPOINT: '127.0.0.1:0',
      KC_METRICS_ENDPOINT: '127.0.0.1:0', KC_QUERY_ENDPOINT: '127.0.0.1:0', KC_DATA_DIR: tmp.dir, KC_SETTLE_AFTER: '1s', LOG_LEVEL: 'warn', ...kafkaClientEnv(),
    };
    collectorMetrics = new PipelineMetrics();
    collector = new Pipeline({ config: loadConfigFile(`${COLLECTOR_CONFIG_DIR}kafka-collector.yaml`, env), metrics: collectorMetrics, logger: silentLogger() });
    await collector.start();
    for (let i = 0; i < 2; i++) correlators.push(correlatorProcess(env));
    storeMetrics = new PipelineMetrics();
    // The store loader's warnings and errors are kept, for the diagnostics of a stall.
    const storeLogger = createLogger({ level: 'warn', destination: new Writable({ write(chunk: Buffer, _enc, cb) { storeLog = (storeLog + chunk.toString()).slice(-20_000); cb(); } }) });
    store = new Pipeline({ config: loadConfigFile(`${COLLECTOR_CONFIG_DIR}kafka-store.yaml`, env), metrics: storeMetrics, logger: storeLogger });
    await store.start();
  }));

  t.after(async () => {
    for (const c of correlators) c.child.kill('SIGTERM');
    await Promise.all(correlators.map((c) => Promise.race([c.exited, new Promise((r) => setTimeout(r, 15_000))])));
    for (const c of correlators) killGroup(c.child.pid, 'SIGKILL'); // and their watchdogs
    await store?.shutdown();
    await collector?.shutdown();
    await broker?.stop();
    tmp.cleanup();
  });

  /** Waits until every request of `run` is a complete tree in the store, then checks none is there twice. */
  async function expectComplete(run: number, n: number): Promise<void> {
    // Once a run stalled, later runs of the suite would only wait out their deadlines too (and the
    // file would hit run.mjs's limit, losing the report): fail them at once, saying why.
    if (stalled) throw new Error(`not waiting for run ${run}: ${stalled}`);
    const s = store.store!;
    const started = Date.now();
    let complete = 0;
    let lastComplete = -1;
    let reported = started;
    // Progress goes to stderr as it happens: if the run is cut off (run.mjs's per-file limit), the
    // log still says how far the stores got, which uvu's end-of-suite report would not.
    await waitFor(`${n} complete trees of run ${run}`, () => {
      complete = 0;
      for (let i = 0; i < n; i++) {
        const tree = s.getTrace(traceIdOf(run, i));
        if (tree && tree.spanCount === SPANS_PER_REQUEST && tree.root.audit?.code === 201 && Object.keys(tree.root.audit.stages).length === 2) complete++;
      }
      if (Date.now() - reported > 30_000) {
        reported = Date.now();
        process.stderr.write(`  [Kafka ${version}] run ${run}: ${complete}/${n} complete after ${Math.round((reported - started) / 1000)} s; store counts ${JSON.stringify(s.counts())}\n`);
        if (complete === lastComplete) {
          // No progress: say where it stops (collector -> Kafka, correlators, store loader), with
          // each consumer group's lag per partition.
          void Promise.all([
            metricValue(collectorMetrics, 'kube_correlate_exporter_sent_items_total'),
            metricValue(storeMetrics, 'kube_correlate_receiver_accepted_items_total'),
            Promise.all(correlators.map((c) => correlatorFigures(c.metricsUrl()))),
            groupLags(broker.brokers),
          ]).then(([sent, loaded, figures, lags]) => process.stderr.write(`    collector sent ${sent} items to Kafka; store loader accepted ${loaded}; correlators alive: ${correlators.map((c) => c.child.exitCode === null).join(',')}\n    consumer lag: ${lags}\n${correlators.map((c, i) => `    correlator ${i}: ${figures[i]}\n    correlator ${i} stderr tail:\n${c.stderr().slice(-1500)}`).join('\n')}\n    store loader log tail:\n${storeLog.slice(-3000)}\n`));
        }
        lastComplete = complete;
      }
      return complete === n ? true : undefined;
    }, 150_000).catch((e: Error) => {
      stalled = `run ${run} stalled at ${complete}/${n}`;
      throw new Error(`${e.message} (${complete}/${n} complete)\ncorrelator logs:\n${correlators.map((c) => c.stderr().slice(-3000)).join('\n---\n')}\nstore loader log:\n${storeLog.slice(-3000)}`);
    });
  }

  t(`${REQUESTS} requests through the collector and 2 correlators give ${REQUESTS} complete trees, none twice`, async () => {
    const seen = { retryable: 0 };
    await send(1, 0, REQUESTS, collector, seen);
    await expectComplete(1, REQUESTS);
    const counts = store.store!.counts();
    assert.is(counts.traces, REQUESTS, 'no extra traces (no unjoined audit traces)');
    assert.is(counts.spans, REQUESTS * SPANS_PER_REQUEST);
    assert.is(counts.auditEvents, REQUESTS * 2);
    // A pending audit event goes out unjoined only once the span side (every otlp_spans partition,
    // through the group's committed offsets) was read past pending_audit_ttl after it, not after
    // 30 s of wall clock: a starved correlator whose span consumer lags makes it wait (before, 60 of
    // 20,000 went out unjoined under two busy loops, commit 37f8f06). Only a wait over max_lag_wait
    // (5 min here) would still let one go, and that is not this run.
    const unjoined = await metricValue(storeMetrics, 'kube_correlate_receiver_accepted_items_total', { signal: 'audit_events_unjoined' });
    assert.is(unjoined, 0, 'every audit event was joined by the correlators');
  });

  t('messages delivered twice give no duplicate spans', async () => {
    const seen = { retryable: 0 };
    await send(2, 0, 500, collector, seen);
    await send(2, 0, 500, collector, seen);
    await expectComplete(2, 500);
    assert.is(store.store!.counts().spans, (REQUESTS + 500) * SPANS_PER_REQUEST);
  });

  t('kill -9 of one correlator mid-stream: every tree is complete after the rebalance', async () => {
    const seen = { retryable: 0 };
    const n = 2000;
    const first = send(3, 0, n / 2, collector, seen);
    await first;
    correlators[0]!.child.kill('SIGKILL');
    await correlators[0]!.exited;
    await send(3, n / 2, n, collector, seen);
    await expectComplete(3, n);
  });

  t('broker stopped and restarted mid-stream: senders see retryable errors, retry, every request is stored', async () => {
    const seen = { retryable: 0 };
    const n = 1000;
    await send(4, 0, n / 2, collector, seen);
    await broker.stopBroker();
    const during = send(4, n / 2, n, collector, seen);
    await waitFor('senders to be refused with retryable codes', () => (seen.retryable > 0 ? true : undefined), 60_000);
    // OTLP/gRPC senders (kube-apiserver) get UNAVAILABLE, which their exporters retry.
    const grpcCode = await exportOverGrpc(collector.addresses.otlpGrpc!, encodeTraceRequest(request(4, n).spans));
    assert.is(grpcCode, grpc.status.UNAVAILABLE);
    await broker.startBroker();
    await during;
    assert.is(await exportOverGrpc(collector.addresses.otlpGrpc!, encodeTraceRequest(request(4, n).spans)), grpc.status.OK, 'the retried gRPC export succeeds');
    await postUntilAccepted(`http://${collector.addresses.auditWebhook}/`, JSON.stringify(eventList(request(4, n).audit)), 'application/json', seen);
    await expectComplete(4, n + 1);
    assert.ok(seen.retryable > 0);
  });

  t.run();
}
