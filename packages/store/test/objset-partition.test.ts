import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Counter } from 'prom-client';
import { encodeCorrelatedTrace, OBJSET_SCOPE } from '@kube-correlate/correlator';
import { generateDeploymentScenario, type ScenarioRequest } from '@kube-correlate/fixtures';
import { InMemoryKafka, javaPartition, type Consumer, type KafkaClient } from '@kube-correlate/kafka';
import { encodeTraceRequest, type Span } from '@kube-correlate/otlp';
import { PipelineMetrics } from '@kube-correlate/telemetry';
import { KafkaStoreLoader, planExport, TraceStore } from '../src/index.js';

/**
 * Object sets partitioned over `correlate store` instances (objset-partition.ts) on the in-process
 * Kafka: the shared objects table puts an owner that comes after its children, on another
 * partition, in the same set; two instances each export only their sets and together exactly what
 * one instance exports; a request filed under a set id that changes is re-published under the new
 * one; a restart reads on from the committed offsets.
 */
const dirs: string[] = [];
test.after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

const PARTITIONS = 4;
const GROUP = 'kube-correlate-store';

async function until(what: string, check: () => boolean | Promise<boolean>, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * The in-process Kafka gives a group's every member every partition; this client gives member
 * `index` of `of` only the partitions p with p % of == index of the groups shared by the instances
 * (the store loader's and the object-set requests'), as a broker's assignment would.
 */
function member(kafka: InMemoryKafka, index: number, of: number): KafkaClient {
  const mine = (p: number) => p % of === index;
  return {
    producer: () => kafka.producer(),
    admin: () => kafka.admin(),
    consumer: async (opts) => {
      const inner = await kafka.consumer(opts);
      if (opts.groupId !== GROUP && opts.groupId !== `${GROUP}-objsets`) return inner;
      const c: Consumer = {
        run: (onBatch) => inner.run(async (batch) => (batch[0] && mine(batch[0].partition) ? onBatch(batch) : undefined)),
        commit: (offsets) => inner.commit(offsets),
        onAssignment: (cb) => inner.onAssignment((a) => cb(Object.fromEntries(Object.entries(a).map(([t, ps]) => [t, ps.filter(mine)])))),
        get restarts() { return inner.restarts; },
        disconnect: () => inner.disconnect(),
      };
      return c;
    },
  };
}

interface Instance {
  store: TraceStore;
  loader: KafkaStoreLoader;
  metrics: PipelineMetrics;
  dir: string;
  /** What this instance's exporter sent. */
  sent: Span[];
}

async function instance(client: KafkaClient, shared: boolean, dir = mkdtempSync(join(tmpdir(), 'kc-objset-part-'))): Promise<Instance> {
  dirs.push(dir);
  const store = new TraceStore({ dir, exportQueue: true, now: () => 1_000_000 });
  const metrics = new PipelineMetrics();
  const loader = new KafkaStoreLoader({ client, store, groupId: GROUP, metrics, ...(shared ? { objectSets: { partitions: PARTITIONS, lagIntervalMs: 0 } } : {}) });
  await loader.start();
  return { store, loader, metrics, dir, sent: [] };
}

/** Export rounds as the exporter runs them, until nothing is due. */
function exportAll(i: Instance): void {
  for (let n = 0; n < 20; n++) {
    const entries = i.store.nextExports(10_000);
    if (entries.length === 0) return;
    const plan = planExport(i.store, entries, { now: 1_000_000, waitForOwnersMs: 60_000, waitForAuditMs: 60_000 });
    i.store.markExported(plan.spans, [...plan.stages.values()].flat(), entries);
    for (const r of plan.releases) i.store.scheduleRelease(r.key, r.atMs);
    for (const k of plan.complete) i.store.cancelRelease(k);
    i.sent.push(...plan.spans);
  }
}

/** A request as the correlators put it on otlp_correlated: its spans and audit, joined. */
function produce(kafka: InMemoryKafka, requests: ScenarioRequest[], partition: (r: ScenarioRequest) => number): void {
  for (const r of requests) kafka.append({ topic: 'otlp_correlated', key: r.traceId, partition: partition(r), value: encodeTraceRequest(encodeCorrelatedTrace(r.traceId, r.spans, r.auditEvents)) });
}

/** Every instance read every topic to its end (loader and requests groups committed, objects table read). */
async function quiet(kafka: InMemoryKafka, instances: Instance[]): Promise<void> {
  const admin = await kafka.admin();
  const committedAll = async (group: string, topic: string) => {
    const [end, done] = await Promise.all([admin.endOffsets(topic), admin.committedOffsets(group, topic)]);
    return end.every((e, p) => e === 0 || done[p] === e);
  };
  await until('every topic read', async () => {
    if (!(await committedAll(GROUP, 'otlp_correlated'))) return false;
    if (!kafka.topics.has('kc_objset_requests')) return true;
    if (!(await committedAll(`${GROUP}-objsets`, 'kc_objset_requests'))) return false;
    for (const i of instances) if ((await i.loader.objectSets!.measureLag()).objects > 0) return false;
    return true;
  });
}

/** What Jaeger shows of a span, without the times of object and root spans (those are as of their first export). */
const view = (s: Span) => ({
  traceId: s.traceId, spanId: s.spanId, parentSpanId: s.parentSpanId, name: s.name,
  attributes: Object.fromEntries(s.attributes.map((kv) => [kv.key, JSON.stringify(kv.value)])),
  links: s.links.map((l) => `${l.traceId}/${l.spanId}`),
  ...(s.scope.name !== OBJSET_SCOPE || s.attributes.some((kv) => kv.key === 'k8s.audit.id') ? { start: s.startTimeUnixNano, end: s.endTimeUnixNano } : {}),
});
const sorted = (spans: Span[]) => spans.map(view).sort((a, b) => (`${a.traceId}/${a.spanId}` < `${b.traceId}/${b.spanId}` ? -1 : 1));
const keyOf = (s: Span) => `${s.traceId}/${s.spanId}`;

/** What one instance without partitioned object sets (the design before) exports for these requests. */
async function baseline(order: ScenarioRequest[][]): Promise<Span[]> {
  const kafka = new InMemoryKafka();
  const one = await instance(kafka, false);
  for (const batch of order) {
    produce(kafka, batch, () => 0);
    await quiet(kafka, []);
    exportAll(one);
  }
  await one.loader.stop();
  one.store.close();
  return one.sent;
}

const isOwner = (r: ScenarioRequest) => r.auditEvents.some((e) => e.objectRef?.resource === 'deployments');

for (const annotations of [false, true]) {
  test(`two instances, the owner after its children on another partition (${annotations ? 'webhook set id: the set id changes' : 'ownerReferences'}): together exactly one instance's export, each span once, each set from its owner`, async () => {
    const s = generateDeploymentScenario({ seed: 51, annotations });
    const children = s.requests.filter((r) => !isOwner(r));
    const owners = s.requests.filter(isOwner);
    const want = await baseline([children, owners]);

    const kafka = new InMemoryKafka();
    const a = await instance(member(kafka, 0, 2), true);
    const b = await instance(member(kafka, 1, 2), true);
    // Children on partitions 1 and 3 (instance b), the Deployment's requests later on partition 0 (instance a).
    produce(kafka, children, (r) => (children.indexOf(r) % 2 ? 1 : 3));
    await quiet(kafka, [a, b]);
    exportAll(a);
    exportAll(b);
    produce(kafka, owners, () => 0);
    await quiet(kafka, [a, b]);
    exportAll(a);
    exportAll(b);
    exportAll(a);
    exportAll(b);

    const all = [...a.sent, ...b.sent];
    assert.is(new Set(all.map(keyOf)).size, all.length, 'no span exported twice, by one instance or by both');
    assert.equal(sorted(all), sorted(want), 'the two instances export exactly what one exports');
    const objset = (i: Instance) => new Set(i.sent.filter((x) => x.scope.name === OBJSET_SCOPE).map((x) => x.traceId));
    const owner = a.loader.objectSets!.owns(s.deploymentUid) ? a : b;
    const other = owner === a ? b : a;
    assert.ok(objset(owner).size > 0, 'the set\'s owner exported it');
    assert.is(objset(other).size, 0, 'the other instance exported no object-set span');
    const reemitted = async (i: Instance) => (await (i.metrics.registry.getSingleMetric('kube_correlate_objset_reemitted_total') as Counter).get()).values[0]?.value ?? 0;
    const total = (await reemitted(a)) + (await reemitted(b));
    // A Pod read before its ReplicaSet was filed under the ReplicaSet's uid; with the webhook, the
    // children were filed under the Deployment's uid until the Deployment's set id came.
    assert.ok(total > 0, 'requests filed under a set id that changed were re-published under the new one');
    for (const i of [a, b]) {
      await i.loader.stop();
      i.store.close();
    }
  });
}

test('one instance with partitioned object sets exports what it exported before', async () => {
  const s = generateDeploymentScenario({ seed: 52 });
  const want = await baseline([s.requests]);
  const kafka = new InMemoryKafka();
  const one = await instance(kafka, true);
  produce(kafka, s.requests, () => 0);
  await quiet(kafka, [one]);
  exportAll(one);
  exportAll(one);
  assert.ok(want.some((x) => x.scope.name === OBJSET_SCOPE), 'the baseline has the object set');
  assert.equal(sorted(one.sent), sorted(want));
  await one.loader.stop();
  one.store.close();
});

test('a restart reads on from the committed offsets: nothing lost, nothing exported twice', async () => {
  const s = generateDeploymentScenario({ seed: 53 });
  const half = Math.floor(s.requests.length / 2);
  const want = await baseline([s.requests]);
  const kafka = new InMemoryKafka();
  let a = await instance(member(kafka, 0, 2), true);
  const b = await instance(member(kafka, 1, 2), true);
  produce(kafka, s.requests.slice(0, half), (r) => s.requests.indexOf(r) % PARTITIONS);
  await quiet(kafka, [a, b]);
  exportAll(a);
  exportAll(b);
  const before = a.sent;
  await a.loader.stop();
  a.store.close();
  produce(kafka, s.requests.slice(half), (r) => s.requests.indexOf(r) % PARTITIONS);
  a = await instance(member(kafka, 0, 2), true, a.dir);
  await quiet(kafka, [a, b]);
  exportAll(a);
  exportAll(b);
  exportAll(a);
  exportAll(b);
  const all = [...before, ...a.sent, ...b.sent];
  assert.is(new Set(all.map(keyOf)).size, all.length, 'no span exported twice');
  // The set went out in two rounds here: its root and objects carry the times of their first export.
  const requestsOnly = (spans: Span[]) => sorted(spans).filter((v) => v.start !== undefined);
  assert.equal(requestsOnly(all), requestsOnly(want), 'every request span and request trace, as one instance exports them');
  assert.equal(new Set(all.map(keyOf)), new Set(want.map(keyOf)), 'the same span ids');
  for (const i of [a, b]) {
    await i.loader.stop();
    i.store.close();
  }
});

test('a request on an object its reader learns of only later, from its own next batch (a GET before the create): filed under the set then, exported by the set\'s owner', async () => {
  const s = generateDeploymentScenario({ seed: 54 });
  const want = await baseline([s.requests]);
  // Every request goes to the instance that does not own the set (no fact from elsewhere), the GET (404) first.
  const reader = 1 - (javaPartition(s.deploymentUid, PARTITIONS) % 2);
  const [get, ...rest] = s.requests;
  assert.ok(get!.label.includes('get deployment'), get!.label);
  const kafka = new InMemoryKafka();
  const a = await instance(member(kafka, 0, 2), true);
  const b = await instance(member(kafka, 1, 2), true);
  produce(kafka, [get!], () => reader);
  await quiet(kafka, [a, b]);
  produce(kafka, rest, () => reader + 2);
  await quiet(kafka, [a, b]);
  exportAll(a);
  exportAll(b);
  const all = [...a.sent, ...b.sent];
  assert.is(new Set(all.map(keyOf)).size, all.length, 'no span exported twice');
  assert.equal(sorted(all), sorted(want), 'the two instances export exactly what one exports, the GET in the set');
  for (const i of [a, b]) {
    await i.loader.stop();
    i.store.close();
  }
});

test('a message on the shared topics that is not what it should be is skipped and counted', async () => {
  const kafka = new InMemoryKafka();
  const one = await instance(kafka, true);
  kafka.append({ topic: 'kc_objects', key: 'x', value: 'not json' });
  kafka.append({ topic: 'kc_objects', key: 'y', value: JSON.stringify({ v: 1, object: { uid: 'y' } }) });
  kafka.append({ topic: 'kc_objset_requests', key: 'set', partition: 0, value: JSON.stringify({ v: 1, setId: 'set', auditId: 'a', events: [{}], traces: [] }) });
  await quiet(kafka, [one]);
  const refused = (await (one.metrics.registry.getSingleMetric('kube_correlate_objset_refused_total') as Counter).get()).values;
  assert.is(refused.find((v) => v.labels.topic === 'kc_objects')?.value, 2);
  assert.is(refused.find((v) => v.labels.topic === 'kc_objset_requests')?.value, 1);
  await one.loader.stop();
  one.store.close();
});

test.run();
