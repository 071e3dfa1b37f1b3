import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { TreeNode } from '@kube-correlate/correlator';
import { generateDeploymentScenario, writeScenarioFiles } from '@kube-correlate/fixtures';
import { CLI, freePort, ROOT, runCli, tempDir, waitFor } from '../harness/index.js';

/**
 * The real processes, as a user runs them: `correlate start` (and `npm start`), `correlate replay`,
 * queries, SIGTERM that drains in-flight traces into the store, and a restart that still has them.
 */
const tmp = tempDir();
test.after(() => tmp.cleanup());

interface Running {
  child: ChildProcess;
  stderr: () => string;
  exited: Promise<number | null>;
  env: NodeJS.ProcessEnv;
  query: string;
}

async function start(cmd: string[], dataDir: string, extraEnv: NodeJS.ProcessEnv = {}): Promise<Running> {
  const [grpc, http, audit, query] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const env = {
    ...process.env,
    KC_OTLP_GRPC_ENDPOINT: `127.0.0.1:${grpc}`,
    KC_OTLP_HTTP_ENDPOINT: `127.0.0.1:${http}`,
    KC_AUDIT_WEBHOOK_ENDPOINT: `127.0.0.1:${audit}`,
    KC_QUERY_ENDPOINT: `127.0.0.1:${query}`,
    KC_DATA_DIR: dataDir,
    ...extraEnv,
  };
  const child = spawn(cmd[0]!, cmd.slice(1), { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d));
  child.stdout!.resume();
  const exited = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
  await waitFor('the pipeline to start', () => (err.includes('kube-correlate is running') ? true : undefined), 120_000).catch((e: Error) => {
    child.kill('SIGKILL');
    throw new Error(`${e.message}; stderr:\n${err}`);
  });
  return { child, stderr: () => err, exited, env, query: `http://127.0.0.1:${query}` };
}

async function stop(r: Running, group = false): Promise<number | null> {
  if (group) process.kill(-r.child.pid!, 'SIGTERM');
  else r.child.kill('SIGTERM');
  const code = await Promise.race([r.exited, new Promise<'timeout'>((res) => setTimeout(() => res('timeout'), 20_000))]);
  if (code === 'timeout') {
    process.kill(-r.child.pid!, 'SIGKILL');
    throw new Error(`did not exit within 20 s of SIGTERM; stderr:\n${r.stderr()}`);
  }
  return code;
}

test('start, replay, SIGTERM drains in-flight traces into the store, restart keeps them', async () => {
  const scenario = generateDeploymentScenario({ seed: 3 });
  const files = writeScenarioFiles(scenario, tmp.dir);
  const dataDir = join(tmp.dir, 'data');
  // An idle window of an hour: nothing settles on its own, only the shutdown stores the traces.
  const first = await start([process.execPath, CLI, 'start'], dataDir, { KC_SETTLE_AFTER: '1h' });
  const replay = await runCli(['replay', '--otlp', files.otlpPath, '--audit', files.auditPath, '--otlp-endpoint', `http://${first.env.KC_OTLP_HTTP_ENDPOINT}`, '--audit-endpoint', `http://${first.env.KC_AUDIT_WEBHOOK_ENDPOINT}/`, '--no-progress']);
  assert.is(replay.code, 0, replay.stderr);
  assert.match(replay.stderr, `replayed ${scenario.traces.length} OTLP requests and ${scenario.auditEvents.length} audit events; 0 refused`);
  const traceId = scenario.applyRequest.traceId;
  const before = await runCli(['--trace', traceId, '--endpoint', first.query]);
  assert.is(before.code, 1, 'not settled yet');

  const metrics = await (await fetch(`${first.query}/metrics`)).text();
  assert.match(metrics, new RegExp(`kube_correlate_receiver_accepted_items_total\\{receiver="otlp",signal="spans"\\} ${scenario.spans.length}`));
  assert.match(metrics, new RegExp(`kube_correlate_receiver_accepted_items_total\\{receiver="k8saudit",signal="audit_events"\\} ${scenario.auditEvents.length}`));
  assert.match(metrics, /kube_correlate_correlator_traces_in_flight \d+/);

  assert.is(await stop(first), 0, first.stderr());
  assert.match(first.stderr(), 'draining in-flight traces into the store');

  const direct = await runCli(['--trace', traceId, '--json', '--data', dataDir]);
  assert.is(direct.code, 0, direct.stderr);
  const tree = JSON.parse(direct.stdout) as { root: TreeNode };
  assert.is(tree.root.audit?.auditID, scenario.applyRequest.auditID);

  const second = await start([process.execPath, CLI, 'start'], dataDir);
  try {
    const again = await runCli(['--trace', traceId, '--json', '--endpoint', second.query]);
    assert.is(again.code, 0, again.stderr);
    assert.equal(JSON.parse(again.stdout), tree);
  } finally {
    assert.is(await stop(second), 0);
  }
});

test('`correlate start --data <dir>` puts the store in <dir> (an option after the command is the command\'s)', async () => {
  const envDir = join(tmp.dir, 'from-env');
  const flagDir = join(tmp.dir, 'from-flag');
  const r = await start([process.execPath, CLI, 'start', '--data', flagDir], envDir);
  assert.is(await stop(r), 0);
  assert.ok(existsSync(join(flagDir, 'kube-correlate.db')), '--data wins over KC_DATA_DIR');
  assert.not.ok(existsSync(join(envDir, 'kube-correlate.db')));
});

test('the README quickstart command `npm start` runs the embedded pipeline', async () => {
  const run = await start(['npm', 'start', '--silent'], join(tmp.dir, 'npm-start-data'));
  const health = await fetch(`${run.query}/healthz`);
  assert.is(health.status, 200);
  assert.match(run.stderr(), `OTLP/gRPC      ${run.env.KC_OTLP_GRPC_ENDPOINT}`);
  await stop(run, true);
});

test('`npm run demo` replays the Deployment scenario and prints the kubectl apply tree', async () => {
  const r = await new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
    const child = spawn('npm', ['run', 'demo', '--silent'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d));
    child.stderr.on('data', (d: Buffer) => (err += d));
    const t = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('close', (code) => {
      clearTimeout(t);
      resolve({ code, out, err });
    });
  });
  assert.is(r.code, 0, r.err);
  assert.match(r.out, /^trace [0-9a-f]{32}  \d+ spans  1 audited request\n/);
  assert.match(r.out, /^POST \/apis\/apps\/v1\/namespaces\/\{:namespace\}\/deployments  /m);
  assert.match(r.out, /audit  create  deployments  default\/web  user=\S+  ua="kubectl\/v1\.\d+\.\d+[^"]*"  code=201/);
  assert.match(r.out, /Call mutating webhook/);
  assert.match(r.out, /etcdserverpb\.KV\/Txn/);
  assert.match(r.out, /link → trace [0-9a-f]{32} span [0-9a-f]{16}: kubectl apply \(kubectl\)/);
});

test('`correlate demo --endpoint <url>` sends to the receivers of the pipeline at that URL (not the default ports)', async () => {
  const run = await start([process.execPath, CLI, 'start'], join(tmp.dir, 'demo-endpoint'));
  try {
    const receivers = (await (await fetch(`${run.query}/api/v1/receivers`)).json()) as { otlpHttp?: string; auditWebhook?: string };
    assert.is(receivers.otlpHttp, run.env.KC_OTLP_HTTP_ENDPOINT, 'the query API says where the receivers listen');
    assert.is(receivers.auditWebhook, run.env.KC_AUDIT_WEBHOOK_ENDPOINT);
    const demo = await runCli(['demo', '--endpoint', run.query], { timeoutMs: 120_000 });
    assert.is(demo.code, 0, demo.stderr);
    assert.not.match(demo.stderr, 'starting a temporary one', 'the running pipeline answered');
    const traceId = /^trace ([0-9a-f]{32}) /.exec(demo.stdout)?.[1];
    assert.ok(traceId, demo.stdout);
    // The tree came from the pipeline on the other ports: its store has it.
    const again = await runCli(['--trace', traceId, '--endpoint', run.query]);
    assert.is(again.code, 0, again.stderr);
    assert.match(again.stdout, 'audit  create  deployments  default/web');
  } finally {
    await stop(run);
  }
});

test.run();
