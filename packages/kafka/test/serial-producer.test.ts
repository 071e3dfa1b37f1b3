import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { KafkaError, SerialProducer, type OutgoingMessage, type ProduceEngine } from '../src/index.js';

/**
 * SerialProducer with an in-process engine. The broker-side reason (concurrent idempotent sends
 * to one partition carry one sequence number, and the broker keeps only the first) is shown against
 * a real broker in test/e2e/kafka-client.test.ts.
 */
function engine(behaviour: { fail?: (msgs: OutgoingMessage[]) => unknown; delayMs?: number } = {}) {
  const calls: OutgoingMessage[][] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  let resets = 0;
  let closed = false;
  const e: ProduceEngine = {
    async send(messages) {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      try {
        await new Promise((r) => setTimeout(r, behaviour.delayMs ?? 5));
        const err = behaviour.fail?.(messages);
        if (err) throw err;
        calls.push(messages);
      } finally {
        inFlight--;
      }
    },
    reset() { resets++; },
    async close() { closed = true; },
  };
  return { e, calls, stats: () => ({ maxInFlight, resets, closed }) };
}

const msg = (i: number, bytes = 10): OutgoingMessage => ({ topic: 't', key: `k${i}`, value: 'x'.repeat(bytes) });

test('concurrent sends: one produce call at a time, the waiting ones merged into the next', async () => {
  const { e, calls, stats } = engine();
  const p = new SerialProducer(e);
  await Promise.all(Array.from({ length: 20 }, (_, i) => p.send([msg(i)])));
  assert.is(stats().maxInFlight, 1);
  assert.is(calls.flat().length, 20, 'every message once');
  assert.ok(calls.length < 20, `merged into ${calls.length} calls`);
  assert.equal(calls.flat().map((m) => m.key), Array.from({ length: 20 }, (_, i) => `k${i}`), 'in call order');
});

test('sends one after the other: each starts a produce call (a send right after the previous one resolved is not left queued)', async () => {
  const { e, calls } = engine({ delayMs: 1 });
  const p = new SerialProducer(e);
  const stuck = setTimeout(() => { throw new Error(`a send never completed (${calls.length} produce calls)`); }, 3000);
  for (let i = 0; i < 5; i++) await p.send([msg(i)]);
  clearTimeout(stuck);
  assert.is(calls.length, 5);
  await p.disconnect();
});

test('merges stay under 512 KiB of values', async () => {
  const { e, calls } = engine();
  const p = new SerialProducer(e);
  await Promise.all(Array.from({ length: 10 }, (_, i) => p.send([msg(i, 200 * 1024)])));
  for (const c of calls) assert.ok(c.length <= 2, `${c.length} messages of 200 KiB in one call`);
});

test('a failed call rejects its callers with a KafkaError, resets the producer id, and the next call goes on', async () => {
  let fail = true;
  const { e, calls, stats } = engine({ fail: () => (fail ? Object.assign(new Error('Connection closed'), { retriable: true }) : undefined) });
  const p = new SerialProducer(e);
  const err = await p.send([msg(1)]).then(() => undefined, (x: unknown) => x);
  assert.instance(err, KafkaError);
  assert.ok((err as KafkaError).retriable);
  assert.match((err as KafkaError).message, /Connection closed/);
  assert.is(stats().resets, 1);
  fail = false;
  await p.send([msg(2)]);
  assert.is(calls.length, 1);
});

test('MESSAGE_TOO_LARGE of a merged call: each caller retried alone, only the too-large one fails', async () => {
  const tooLarge = () => Object.assign(new Error('The request included a message larger than the max message size the server will accept'), { type: 'MESSAGE_TOO_LARGE', retriable: false });
  const { e, calls } = engine({ fail: (m) => (m.some((x) => x.key === 'k0') || m.length > 1 ? tooLarge() : undefined) });
  const p = new SerialProducer(e);
  const first = p.send([msg(9)]); // in flight while the others queue up, so they merge
  const results = await Promise.all([0, 1, 2].map((i) => p.send([msg(i)]).then(() => 'ok', (x: KafkaError) => x.type)));
  await first;
  assert.equal(results, ['MESSAGE_TOO_LARGE', 'ok', 'ok']);
  assert.equal(calls.flat().map((m) => m.key).sort(), ['k1', 'k2', 'k9']);
});

test('disconnect waits for queued sends, then closes; sends after it are refused', async () => {
  const { e, calls, stats } = engine({ delayMs: 30 });
  const p = new SerialProducer(e);
  const sends = [p.send([msg(1)]), p.send([msg(2)])];
  await p.disconnect();
  await Promise.all(sends);
  assert.is(calls.flat().length, 2);
  assert.ok(stats().closed);
  await p.send([msg(3)]).then(() => assert.unreachable('sent after disconnect'), (x: Error) => assert.match(x.message, /disconnected/));
  await p.disconnect(); // safe twice
});

test.run();
