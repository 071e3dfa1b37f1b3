import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { silentLogger } from '@kube-correlate/telemetry';
import type { Component, Host } from '../../src/component/component.js';
import { guarded, Lifecycle } from '../../src/component/lifecycle.js';

const host: Host = { getExtension: () => undefined, reportAddress: () => undefined, addresses: () => ({}) };

function recorder(log: string[], name: string, opts: { failStart?: boolean; failShutdown?: boolean } = {}): Component {
  return {
    async start() {
      log.push(`start ${name}`);
      if (opts.failStart) throw new Error(`${name} cannot start`);
    },
    async shutdown() {
      log.push(`shutdown ${name}`);
      if (opts.failShutdown) throw new Error(`${name} cannot stop`);
    },
  };
}

test('guarded: start and shutdown twice run once; shutdown without start is safe; start after shutdown is refused', async () => {
  const log: string[] = [];
  const c = guarded(recorder(log, 'a'));
  await Promise.all([c.start(host), c.start(host)]);
  await Promise.all([c.shutdown(), c.shutdown()]);
  await c.shutdown();
  assert.equal(log, ['start a', 'shutdown a']);
  await c.start(host).then(() => assert.unreachable(), (err: Error) => assert.match(err.message, 'start after shutdown'));
  const never = guarded(recorder(log, 'b'));
  await never.shutdown();
  await never.shutdown();
  assert.equal(log.slice(2), ['shutdown b'], 'shutdown without start releases what creating it took, once');
});

test('Lifecycle: starts stages in order, shuts down in reverse, each stage last component first', async () => {
  const log: string[] = [];
  const lc = new Lifecycle([
    { name: 'extensions', components: [{ id: 'store', component: recorder(log, 'store') }] },
    { name: 'exporters', components: [{ id: 'e1', component: recorder(log, 'e1') }, { id: 'e2', component: recorder(log, 'e2') }] },
    { name: 'receivers', components: [{ id: 'r1', component: recorder(log, 'r1') }, { id: 'r2', component: recorder(log, 'r2') }] },
  ], silentLogger());
  await lc.start(host);
  await Promise.all([lc.shutdown(), lc.shutdown()]);
  assert.equal(log, ['start store', 'start e1', 'start e2', 'start r1', 'start r2', 'shutdown r2', 'shutdown r1', 'shutdown e2', 'shutdown e1', 'shutdown store']);
});

test('Lifecycle: a failed start shuts everything down (started or not) and rethrows; a failed shutdown does not stop the others', async () => {
  const log: string[] = [];
  const lc = new Lifecycle([
    { name: 'extensions', components: [{ id: 'store', component: recorder(log, 'store') }] },
    { name: 'exporters', components: [{ id: 'bad', component: recorder(log, 'bad', { failStart: true, failShutdown: true }) }, { id: 'later', component: recorder(log, 'later') }] },
  ], silentLogger());
  await lc.start(host).then(() => assert.unreachable(), (err: Error) => assert.is(err.message, 'bad cannot start'));
  assert.equal(log, ['start store', 'start bad', 'shutdown later', 'shutdown bad', 'shutdown store']);
});

test.run();
