import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { OutgoingMessage } from '@kube-correlate/kafka';
import { OrderedOutbox } from '../src/outbox.js';

/**
 * The Kafka correlator's outbox (outbox.ts): batches' output produced in order, what is added while
 * a produce is in flight sent together in the next one, each batch reported written only once its
 * output (and everything before it) is durable, failures retried before anything behind them.
 * Produce calls here are promises the test settles by hand: no timing.
 */

interface Call {
  messages: OutgoingMessage[];
  resolve(): void;
  reject(err: unknown): void;
}

function harness(opts: { maxQueuedBytes?: number } = {}) {
  const calls: Call[] = [];
  const retries: number[] = [];
  const log: string[] = [];
  const outbox = new OrderedOutbox({
    send: (messages) => new Promise<void>((resolve, reject) => { calls.push({ messages, resolve, reject }); }),
    onRetry: (_err, attempt) => { retries.push(attempt); },
    retryMs: { initial: 1, max: 2 },
    ...opts,
  });
  const add = (name: string, values: string[], startedAt = 0) =>
    outbox.add(values.map((v) => ({ topic: 't', key: name, value: v })), startedAt, {
      written: () => log.push(`${name} written`),
      dropped: () => log.push(`${name} dropped`),
    });
  return { outbox, calls, retries, log, add };
}

const tick = () => new Promise<void>((r) => setImmediate(r));
async function until(check: () => boolean): Promise<void> {
  for (let i = 0; i < 1000 && !check(); i++) await tick();
  assert.ok(check(), 'condition reached');
}

test('a batch with no output and nothing in flight is written at once, without a produce call', async () => {
  const h = harness();
  await h.add('a', []);
  assert.equal(h.log, ['a written']);
  assert.is(h.calls.length, 0);
});

test('what is added while a produce is in flight goes out together in the next call; batches are written in order', async () => {
  const h = harness();
  await h.add('a', ['1']);
  assert.is(h.calls.length, 1, 'the first batch is produced at once');
  await h.add('b', ['2']);
  await h.add('c', []); // no output of its own: still written only after what came before
  await h.add('d', ['3', '4']);
  assert.is(h.calls.length, 1, 'nothing more is produced while a call is in flight');
  assert.equal(h.log, [], 'nothing written before its produce resolved');
  h.calls[0]!.resolve();
  await until(() => h.calls.length === 2);
  assert.equal(h.log, ['a written']);
  assert.equal(h.calls[1]!.messages.map((m) => m.value), ['2', '3', '4'], 'b, c and d in one call, in order');
  h.calls[1]!.resolve();
  await until(() => h.log.length === 4);
  assert.equal(h.log, ['a written', 'b written', 'c written', 'd written']);
  assert.is(h.outbox.pending(), 0);
});

test('a failed produce is retried before anything behind it; nothing behind it is written first', async () => {
  const h = harness();
  await h.add('a', ['1']);
  await h.add('b', ['2']);
  h.calls[0]!.reject(new Error('broker away'));
  await until(() => h.calls.length === 2);
  assert.equal(h.retries, [1]);
  assert.equal(h.calls[1]!.messages.map((m) => m.value), ['1'], 'the same messages again');
  assert.equal(h.log, [], 'b is not written while a is not');
  h.calls[1]!.resolve();
  await until(() => h.calls.length === 3);
  h.calls[2]!.resolve();
  await until(() => h.log.length === 2);
  assert.equal(h.log, ['a written', 'b written']);
});

test('oldest() is the start of the oldest batch not written yet', async () => {
  const h = harness();
  assert.is(h.outbox.oldest(), Infinity);
  await h.add('a', ['1'], 100);
  await h.add('b', ['2'], 200);
  assert.is(h.outbox.oldest(), 100);
  h.calls[0]!.resolve();
  await until(() => h.calls.length === 2);
  assert.is(h.outbox.oldest(), 200);
  h.calls[1]!.resolve();
  await until(() => h.outbox.pending() === 0);
  assert.is(h.outbox.oldest(), Infinity);
});

test('over maxQueuedBytes, add() waits until the queue drained', async () => {
  const h = harness({ maxQueuedBytes: 10 });
  await h.add('a', ['x'.repeat(5)]);
  let bDone = false;
  const b = h.add('b', ['y'.repeat(20)]).then(() => { bDone = true; });
  await tick();
  await tick();
  assert.is(bDone, false, 'b waits: 20 bytes queued behind a call in flight');
  h.calls[0]!.resolve();
  await until(() => h.calls.length === 2);
  h.calls[1]!.resolve();
  await b;
  assert.equal(h.log, ['a written', 'b written']);
});

test('close() sends what is queued; a produce failing while closing drops what is left, and later batches are dropped', async () => {
  const h = harness();
  await h.add('a', ['1']);
  await h.add('b', ['2']);
  const closed = h.outbox.close();
  h.calls[0]!.resolve();
  await until(() => h.calls.length === 2);
  h.calls[1]!.reject(new Error('broker away'));
  await closed;
  assert.equal(h.log, ['a written', 'b dropped']);
  await h.add('c', ['3']);
  assert.equal(h.log, ['a written', 'b dropped', 'c dropped']);
  assert.is(h.calls.length, 2, 'nothing produced after close');
});

test.run();
