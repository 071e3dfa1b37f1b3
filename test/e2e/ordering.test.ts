import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { AuditEvent } from '@kube-correlate/audit';
import type { RequestTree } from '@kube-correlate/correlator';
import { generateDeploymentScenario, type Scenario } from '@kube-correlate/fixtures';
import { encodeTraceRequest, type Span } from '@kube-correlate/otlp';
import { eventList, postJson, startPipeline, waitForScenarioTrees, waitForTree, type TestPipeline } from '../harness/index.js';

/**
 * The stored trees do not depend on arrival order: audit before spans, spans before audit,
 * everything delivered twice, stages shuffled across batches, and a trace that settled and was
 * updated later all give the same trees as the plain order.
 */
const scenario: Scenario = generateDeploymentScenario({ seed: 42 });
/** Traces that belong to no audit request: kubectl's own (linked from the apply request) and detached filter spans. */
const otherSpans = scenario.traces.filter((t) => t.kind !== 'request').flatMap((t) => t.spans);

function rng(seed: number) {
  let s = seed;
  return () => (s = (s * 1103515245 + 12345) % 2147483648) / 2147483648;
}
function shuffle<T>(xs: readonly T[], seed: number): T[] {
  const r = rng(seed);
  const a = [...xs];
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

async function sendSpans(p: TestPipeline, spans: Span[]) {
  const res = await fetch(`${p.http}/v1/traces`, { method: 'POST', headers: { 'content-type': 'application/x-protobuf' }, body: encodeTraceRequest(spans) });
  assert.is(res.status, 200);
}
async function sendAudit(p: TestPipeline, events: AuditEvent[]) {
  const r = await postJson(p.audit, eventList(events));
  assert.is(r.status, 200, JSON.stringify(r.body));
}

/**
 * The request trees, read once every trace is stored and each request has all its audit stages: a
 * settled tree is queryable before a stage in a later batch re-settles it, and the apply request's
 * link is followed to the caller's trace only once that trace (settling on its own) is stored.
 */
function treesOf(p: TestPipeline): Promise<Record<string, RequestTree>> {
  return waitForScenarioTrees(p.query, scenario);
}

async function run(deliver: (p: TestPipeline) => Promise<void>): Promise<Record<string, RequestTree>> {
  const p = await startPipeline({ settleAfter: '150ms' });
  try {
    await deliver(p);
    const trees = await treesOf(p);
    // Every audit request of the scenario got all its stages.
    for (const r of scenario.requests) {
      const stages = r.auditEvents.map((e) => e.stage).sort();
      const found = JSON.stringify(trees[r.traceId]);
      for (const s of stages) assert.ok(found.includes(`"${s}"`), `${r.label}: stage ${s}`);
    }
    return trees;
  } finally {
    await p.stop();
  }
}

let reference: Record<string, RequestTree>;

test('spans before audit (reference)', async () => {
  reference = await run(async (p) => {
    for (const r of scenario.requests) await sendSpans(p, r.spans);
    await sendSpans(p, otherSpans);
    await sendAudit(p, scenario.auditEvents);
  });
  const apply = reference[scenario.applyRequest.traceId]!;
  assert.is(apply.root.audit?.auditID, scenario.applyRequest.auditID, 'the apply request carries its audit on the route span');
  assert.is(apply.root.links?.[0]?.target?.name, 'kubectl apply', 'the link to the caller trace is followed');
});

test('audit before spans', async () => {
  const trees = await run(async (p) => {
    await sendAudit(p, scenario.auditEvents);
    await sendSpans(p, otherSpans);
    for (const r of scenario.requests) await sendSpans(p, r.spans);
  });
  assert.equal(trees, reference);
});

test('duplicate deliveries of spans and events', async () => {
  const trees = await run(async (p) => {
    for (const r of scenario.requests) {
      await sendSpans(p, r.spans);
      await sendSpans(p, [...r.spans].reverse());
    }
    await sendSpans(p, otherSpans);
    await sendSpans(p, otherSpans);
    await sendAudit(p, scenario.auditEvents);
    await sendAudit(p, scenario.auditEvents);
  });
  assert.equal(trees, reference);
});

test('shuffled stages and spans across many small batches, interleaved', async () => {
  const trees = await run(async (p) => {
    const spans = shuffle(scenario.spans, 7);
    const events = shuffle(scenario.auditEvents, 8);
    for (let i = 0; i < Math.max(spans.length, events.length); i += 3) {
      if (i < events.length) await sendAudit(p, events.slice(i, i + 3));
      if (i < spans.length) await sendSpans(p, spans.slice(i, i + 3));
    }
  });
  assert.equal(trees, reference);
});

test('a trace that settled is updated by later spans and events', async () => {
  const trees = await run(async (p) => {
    const r = scenario.applyRequest;
    const half = Math.ceil(r.spans.length / 2);
    await sendSpans(p, r.spans.slice(0, half));
    const partial = await waitForTree(p.query, r.traceId, half, false);
    assert.is(partial.spanCount, half, 'settled with half the spans first');
    await sendSpans(p, r.spans.slice(half));
    await sendAudit(p, [...r.auditEvents].reverse());
    for (const other of scenario.requests.filter((x) => x !== r)) await sendSpans(p, other.spans);
    await sendSpans(p, otherSpans);
    await sendAudit(p, scenario.auditEvents.filter((e) => e.auditID !== r.auditID));
  });
  assert.equal(trees, reference);
});

test.run();
