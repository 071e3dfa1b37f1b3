import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { OffsetTracker } from '../src/index.js';

test('commit point is the lowest held offset, or past the last seen', () => {
  const t = new OffsetTracker();
  for (const o of [0, 1, 2, 3]) t.seen('a', 0, o);
  t.hold('a', 0, 1);
  t.hold('a', 0, 3);
  assert.equal(t.commitable(), [{ topic: 'a', partition: 0, offset: '1' }]);
  assert.equal(t.commitable(), [], 'nothing new');
  t.release('a', 0, 3);
  assert.equal(t.commitable(), []);
  t.release('a', 0, 1);
  assert.equal(t.commitable(), [{ topic: 'a', partition: 0, offset: '4' }]);
});

test('an offset held twice needs two releases; partitions are independent', () => {
  const t = new OffsetTracker();
  t.seen('a', 0, 5);
  t.hold('a', 0, 5);
  t.hold('a', 0, 5);
  t.seen('a', 1, 9);
  t.release('a', 0, 5);
  assert.equal(t.commitable(), [{ topic: 'a', partition: 0, offset: '5' }, { topic: 'a', partition: 1, offset: '10' }]);
  t.release('a', 0, 5);
  assert.equal(t.commitable(), [{ topic: 'a', partition: 0, offset: '6' }]);
  assert.is(t.heldCount(), 0);
});

test('retain forgets partitions no longer owned', () => {
  const t = new OffsetTracker();
  t.seen('a', 0, 1);
  t.seen('a', 1, 1);
  t.hold('a', 1, 1);
  t.retain({ a: [0] });
  assert.is(t.heldCount(), 0);
  assert.equal(t.commitable(), [{ topic: 'a', partition: 0, offset: '2' }]);
});

test.run();
