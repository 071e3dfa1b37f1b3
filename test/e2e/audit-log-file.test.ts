import { appendFileSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { generateDeploymentScenario } from '@kube-correlate/fixtures';
import { encodeTraceRequest } from '@kube-correlate/otlp';
import { metricValue, startPipeline, tempDir, waitFor, waitForTree } from '../harness/index.js';

/**
 * Audit events from files as kube-apiserver's --audit-log-path writes them: a bad line is reported
 * with its file and line number and counted; every other event still joins its trace.
 */
const tmp = tempDir();
test.after(() => tmp.cleanup());

async function sendAllSpans(http: string, spans: Parameters<typeof encodeTraceRequest>[0]) {
  const res = await fetch(`${http}/v1/traces`, { method: 'POST', headers: { 'content-type': 'application/x-protobuf' }, body: encodeTraceRequest(spans) });
  assert.is(res.status, 200);
}

test('read once: a bad line is named by line number, the other events join their traces', async () => {
  const scenario = generateDeploymentScenario({ seed: 11 });
  const lines = scenario.auditEvents.map((e) => JSON.stringify(e));
  lines.splice(2, 0, '{"kind":"Event", this is not json');
  const path = join(tmp.dir, 'audit.log');
  writeFileSync(path, lines.join('\n') + '\n');
  const logs: string[] = [];
  const p = await startPipeline({ auditLog: [path], logs });
  try {
    await sendAllSpans(p.http, scenario.spans);
    for (const r of scenario.requests) {
      const tree = await waitForTree(p.query, r.traceId, r.spans.length, true);
      assert.ok(JSON.stringify(tree.root).includes(r.auditID), r.label);
    }
    // The file is read one event at a time, each counted once the correlator took it: a tree can be
    // stored (with an earlier stage of its request) while the last lines are still being handed on.
    const accepted = () => metricValue(p.metrics, 'kube_correlate_receiver_accepted_items_total', { receiver: 'auditlog' });
    await waitFor('every event of the file read', async () => ((await accepted()) >= scenario.auditEvents.length ? true : undefined));
    assert.is(await metricValue(p.metrics, 'kube_correlate_receiver_refused_total', { receiver: 'auditlog', reason: 'invalid_json' }), 1);
    assert.is(await accepted(), scenario.auditEvents.length);
    const warning = logs.map((l) => JSON.parse(l) as { msg: string; line?: number }).find((l) => l.line === 3);
    assert.ok(warning, `a log line names line 3; logs:\n${logs.join('')}`);
    assert.match(warning.msg, `${path}:3: `);
  } finally {
    await p.stop();
  }
});

test('follow: appended events and a rotated file are read, nothing twice', async () => {
  const scenario = generateDeploymentScenario({ seed: 12 });
  const path = join(tmp.dir, 'follow.log');
  writeFileSync(path, '');
  const p = await startPipeline({ auditLog: [path], followAuditLog: true });
  try {
    await sendAllSpans(p.http, scenario.spans);
    const events = scenario.auditEvents.map((e) => JSON.stringify(e) + '\n');
    const half = Math.floor(events.length / 2);
    appendFileSync(path, events.slice(0, half).join(''));
    await waitFor('first half read', async () => ((await metricValue(p.metrics, 'kube_correlate_receiver_accepted_items_total', { receiver: 'auditlog' })) >= half ? true : undefined));
    // Rotation as kube-apiserver's logger does it: rename, then a new file at the path.
    renameSync(path, `${path}.1`);
    writeFileSync(path, events.slice(half).join(''));
    await waitFor('all events read', async () => ((await metricValue(p.metrics, 'kube_correlate_receiver_accepted_items_total', { receiver: 'auditlog' })) >= events.length ? true : undefined));
    for (const r of scenario.requests) await waitForTree(p.query, r.traceId, r.spans.length, true);
    assert.is(await metricValue(p.metrics, 'kube_correlate_receiver_accepted_items_total', { receiver: 'auditlog' }), events.length);
    assert.ok(readFileSync(`${path}.1`, 'utf8').length > 0);
  } finally {
    await p.stop();
  }
});

test.run();
