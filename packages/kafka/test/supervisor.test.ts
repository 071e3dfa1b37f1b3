import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SupervisedConsumer, type CommitOffset, type ConsumedMessage, type ConsumerSession, type KafkaLogger, type SessionHooks } from '../src/index.js';

/**
 * The consumer loop with in-process sessions standing in for a library's consumer: a fake
 * "broker" holds one partition's log and the group's committed offset; each session delivers from
 * the committed offset in batches of 3. Real brokers, with both libraries, are in
 * test/e2e/kafka-client.test.ts.
 */
function fakeBroker(total: number) {
  let committed = 0;
  const sessions: Array<{ closed: boolean }> = [];
  const make = (behaviour: { joinFails?: () => boolean; crashAfter?: () => number | undefined } = {}) => (): ConsumerSession => {
    const me = { closed: false };
    sessions.push(me);
    return {
      async start(hooks: SessionHooks) {
        if (behaviour.joinFails?.()) throw new Error('COORDINATOR_NOT_AVAILABLE');
        hooks.assigned({ t: [0] });
        const crashAt = behaviour.crashAfter?.();
        void (async () => {
          let offset = committed;
          let delivered = 0;
          while (!me.closed && offset < total) {
            if (crashAt !== undefined && delivered >= crashAt) {
              hooks.fail(Object.assign(new Error('The coordinator is not aware of this member'), { type: 'UNKNOWN_MEMBER_ID', retriable: false }));
              return;
            }
            const batch: ConsumedMessage[] = [];
            for (let i = 0; i < 3 && offset < total; i++, offset++) {
              batch.push({ topic: 't', partition: 0, offset: String(offset), key: null, value: Buffer.from(String(offset)), timestamp: '0' });
            }
            delivered += batch.length;
            await hooks.deliver(batch);
            await new Promise((r) => setTimeout(r, 1));
          }
        })();
      },
      async commit(offsets: CommitOffset[]) {
        if (me.closed) throw new Error('closed');
        for (const o of offsets) committed = Math.max(committed, Number(o.offset));
      },
      async close() { me.closed = true; },
    };
  };
  return { make, sessions, committed: () => committed };
}

function captureLog() {
  const lines: Array<{ level: string; msg: string; obj: object }> = [];
  const at = (level: string) => (obj: object, msg?: string) => { lines.push({ level, msg: msg ?? '', obj }); };
  const logger: KafkaLogger = { error: at('error'), warn: at('warn'), info: at('info'), debug: at('debug') };
  return { logger, lines };
}

async function until(what: string, ok: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

test('a handler that throws (a TypeError, which kafkajs never restarts after) does not stop consumption', async () => {
  const broker = fakeBroker(30);
  const { logger, lines } = captureLog();
  const c = new SupervisedConsumer(broker.make(), { groupId: 'g', library: 'fake', logger, backoffMs: { initial: 10, max: 40 } });
  const handled = new Set<number>();
  let thrown = 0;
  await c.run(async (batch) => {
    for (const m of batch) {
      if (Number(m.offset) === 10 && thrown < 2) {
        thrown++;
        // e.g. a bug hit by one message, or a send that failed
        throw new TypeError("Cannot read properties of undefined (reading 'spans')");
      }
      handled.add(Number(m.offset));
    }
    await c.commit([{ topic: 't', partition: 0, offset: String(Number(batch[batch.length - 1]!.offset) + 1) }]);
  });
  await until('all 30 messages handled', () => handled.size === 30);
  assert.is(broker.committed(), 30);
  assert.is(c.restarts, 2, 'restarted after each failure');
  assert.is(broker.sessions.length, 3, 'a new member each time');
  assert.ok(broker.sessions.slice(0, 2).every((s) => s.closed), 'the failed members were closed');
  const errors = lines.filter((l) => l.level === 'error');
  assert.is(errors.length, 2);
  assert.match(errors[0]!.msg, /Kafka consumer of group g stopped: .*Cannot read properties of undefined.*; closing it and rejoining the group in 10 ms/);
  assert.match(errors[1]!.msg, /rejoining the group in 20 ms/, 'backoff doubles');
  await c.disconnect();
});

test('a library crash, and joins that fail, end in a rejoin too; backoff returns to its start after a handled batch', async () => {
  const broker = fakeBroker(20);
  const { logger, lines } = captureLog();
  let joins = 0;
  let crashes = 0;
  const c = new SupervisedConsumer(broker.make({
    joinFails: () => ++joins <= 2,
    crashAfter: () => (crashes++ === 0 ? 6 : undefined),
  }), { groupId: 'g', library: 'fake', logger, backoffMs: { initial: 5, max: 1000 } });
  const handled = new Set<number>();
  await c.run(async (batch) => {
    for (const m of batch) handled.add(Number(m.offset));
    await c.commit([{ topic: 't', partition: 0, offset: String(Number(batch[batch.length - 1]!.offset) + 1) }]);
  });
  await until('all 20 messages handled', () => handled.size === 20);
  const errors = lines.filter((l) => l.level === 'error').map((l) => l.msg);
  assert.is(errors.length, 3, errors.join('\n'));
  assert.match(errors[0]!, /COORDINATOR_NOT_AVAILABLE.*in 5 ms/);
  assert.match(errors[1]!, /COORDINATOR_NOT_AVAILABLE.*in 10 ms/);
  assert.match(errors[2]!, /not aware of this member.*UNKNOWN_MEMBER_ID.*in 5 ms/, 'back to the initial backoff after batches were handled');
  await c.disconnect();
});

test('assignments reach the listeners after every join; disconnect waits for the batch in progress and stops for good', async () => {
  const broker = fakeBroker(1000);
  const c = new SupervisedConsumer(broker.make(), { groupId: 'g', library: 'fake', backoffMs: { initial: 5, max: 5 } });
  const assignments: Array<Record<string, number[]>> = [];
  c.onAssignment((a) => assignments.push(a));
  let inBatch = false;
  let sawInBatchAtClose = false;
  await c.run(async () => {
    inBatch = true;
    await new Promise((r) => setTimeout(r, 20));
    inBatch = false;
  });
  await until('a batch in progress', () => inBatch);
  const closing = c.disconnect();
  sawInBatchAtClose = inBatch;
  await closing;
  assert.ok(sawInBatchAtClose);
  assert.not.ok(inBatch, 'the batch finished before disconnect resolved');
  assert.equal(assignments, [{ t: [0] }]);
  assert.ok(broker.sessions.every((s) => s.closed));
  await c.commit([{ topic: 't', partition: 0, offset: '1' }]).then(() => assert.unreachable('commit after disconnect'), (e: Error) => assert.match(e.message, /disconnected/));
  await c.disconnect(); // safe twice
});

test.run();
