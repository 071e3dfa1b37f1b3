import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { InputProgress } from '../src/input-progress.js';

/** input-progress.ts: end-offset snapshots reached by read positions give the time a partition is covered up to. */

test('a snapshot is reached once the position (read, or the group committed) is at its end offset', () => {
  const p = new InputProgress();
  assert.is(p.covered('c', 0), -Infinity, 'nothing known');
  p.snapshot('c', 't', [10, 0], [0, 1], 100);
  p.advance();
  assert.is(p.covered('c', 0), -Infinity, 'no position yet');
  p.setCommitted('t', [4, -1]);
  p.advance();
  assert.is(p.covered('c', 0), -Infinity, 'committed 4 of 10');
  assert.is(p.covered('c', 1), 100, 'an empty partition with nothing committed is read to its end');
  p.snapshot('c', 't', [12, 0], [0, 1], 200);
  p.seen('t', 0, 10);
  p.advance();
  assert.is(p.covered('c', 0), 100, 'the first snapshot reached, not the second');
  assert.is(p.coveredAll('c', [0, 1]), 100);
  p.seen('t', 0, 12);
  p.advance();
  assert.is(p.covered('c', 0), 200);
  assert.is(p.coveredAll('c', []), Infinity);
});

test('a snapshot stands for the time it is given (a downstream topic: what its upstream was covered to); retain forgets partitions no longer owned', () => {
  const p = new InputProgress();
  p.seen('down', 0, 5);
  p.snapshot('d', 'down', [5], [0], 42);
  p.snapshot('g', 'up', [3, 3], [0, 1], 50);
  p.setCommitted('up', [3, 3]);
  p.advance();
  assert.is(p.covered('d', 0), 42);
  assert.is(p.coveredAll('g', [0, 1]), 50);
  p.retain({ down: [] }, ['g']);
  assert.is(p.covered('d', 0), -Infinity, 'forgotten');
  assert.ok(!p.knows('down', 0));
  assert.is(p.covered('g', 1), 50, 'a group-wide channel is kept');
});

test('a lagging reader keeps at most MAX_SNAPSHOTS per partition; newer ones are dropped (covering less, never more)', () => {
  const p = new InputProgress();
  for (let i = 0; i < InputProgress.MAX_SNAPSHOTS + 10; i++) p.snapshot('c', 't', [i + 1], [0], i);
  p.seen('t', 0, 1000);
  p.advance();
  assert.is(p.covered('c', 0), InputProgress.MAX_SNAPSHOTS - 1);
});

test.run();
