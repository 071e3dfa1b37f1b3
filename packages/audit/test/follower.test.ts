import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { appendFile, copyFile, rename, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { AuditLogFollower } from '../src/index.js';
import type { AuditLogError, AuditLogFollowerOptions } from '../src/index.js';
import { sleep, v1Event, waitFor, withTempDir } from './helpers.js';

const POLL_MS = 20;
const ln = (i: number) => JSON.stringify(v1Event(`e${i}`)) + '\n';
const lines = (from: number, to: number) => Array.from({ length: to - from }, (_, k) => ln(from + k)).join('');
const ids = (from: number, to: number) => Array.from({ length: to - from }, (_, k) => `e${from + k}`);

/** A follower recording what it delivers; always stopped by the test. */
function follow(path: string, startAt: 'beginning' | 'end', extra: Partial<AuditLogFollowerOptions> = {}) {
  const seen: string[] = [];
  const errors: AuditLogError[] = [];
  const failures: Error[] = [];
  const follower = new AuditLogFollower({
    path,
    startAt,
    pollIntervalMs: POLL_MS,
    onEvent: (e) => void seen.push(e.auditID),
    onError: (e) => void errors.push(e),
    onFailure: (e) => void failures.push(e),
    ...extra,
  });
  const until = (n: number) => waitFor(() => seen.length >= n, () => `${n} events, have ${seen.length} (${seen.slice(-3).join(',')}), errors ${JSON.stringify(errors)}, failures ${failures.map((f) => f.message).join('; ')}`);
  return { follower, seen, errors, failures, until };
}

test('appends are seen, from the beginning of an existing file', async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, 'audit.log');
    await writeFile(path, lines(0, 3));
    const f = follow(path, 'beginning');
    await f.follower.start();
    try {
      await f.until(3);
      await appendFile(path, lines(3, 5));
      await f.until(5);
      await appendFile(path, lines(5, 6));
      await f.until(6);
      assert.equal(f.seen, ids(0, 6));
      assert.equal(f.errors, []);
    } finally {
      await f.follower.stop();
    }
  });
});

test("startAt 'end': existing lines skipped, an unterminated last line delivered once finished, true line numbers", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, 'audit.log');
    const third = ln(2);
    await writeFile(path, lines(0, 2) + third.slice(0, 40));
    const f = follow(path, 'end');
    await f.follower.start();
    try {
      await sleep(POLL_MS * 4);
      assert.equal(f.seen, []);
      await appendFile(path, third.slice(40) + 'not json\n' + ln(3));
      await f.until(2);
      assert.equal(f.seen, ['e2', 'e3']);
      assert.equal(f.errors.map((e) => [e.path, e.index]), [[path, 4]]);
    } finally {
      await f.follower.stop();
    }
  });
});

test('lumberjack rotation x3, with a partial line at a boundary: exactly N events, in order', async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, 'audit.log');
    const backup = (n: number) => join(dir, `audit-2026-11-21T05-49-1${n}.000.log`);
    await writeFile(path, lines(0, 5));
    const f = follow(path, 'beginning');
    await f.follower.start();
    try {
      await f.until(5);

      // Rotation 1: lines written just before the rename are read from the old file after it.
      await appendFile(path, lines(5, 10));
      await rename(path, backup(1));
      await writeFile(path, lines(10, 15));
      await f.until(15);

      // Rotation 2: a line the follower has seen half of is completed, then the file is rotated at once.
      const half = ln(15);
      await appendFile(path, half.slice(0, 25));
      await sleep(POLL_MS * 4);
      assert.is(f.seen.length, 15, 'a partial line must not be delivered');
      await appendFile(path, half.slice(25) + lines(16, 18));
      await rename(path, backup(2));
      await writeFile(path, lines(18, 25));
      await f.until(25);

      // Rotation 3: the path stays missing for a while before the new file appears.
      await appendFile(path, lines(25, 30));
      await rename(path, backup(3));
      await sleep(POLL_MS * 4);
      await writeFile(path, lines(30, 36));
      await appendFile(path, lines(36, 40));
      await f.until(40);

      await sleep(POLL_MS * 4);
      assert.equal(f.seen, ids(0, 40));
      assert.equal(f.errors, []);
      assert.equal(f.failures, []);
    } finally {
      await f.follower.stop();
    }
  });
});

test('line numbers restart per file generation and errors name the path', async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, 'audit.log');
    await writeFile(path, lines(0, 2) + '{broken\n');
    const f = follow(path, 'beginning');
    await f.follower.start();
    try {
      await f.until(2);
      await waitFor(() => f.errors.length === 1, () => 'the first error');
      await rename(path, join(dir, 'audit.1.log'));
      await writeFile(path, ln(2) + '{broken again\n' + ln(3));
      await f.until(4);
      assert.equal(f.errors.map((e) => [e.path, e.index]), [[path, 3], [path, 2]]);
    } finally {
      await f.follower.stop();
    }
  });
});

test('an unterminated last line of a rotated file is parsed as the end of that file', async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, 'audit.log');
    await writeFile(path, ln(0) + ln(1).trimEnd());
    const f = follow(path, 'beginning');
    await f.follower.start();
    try {
      await f.until(1);
      await appendFile(path, '\n' + ln(2).slice(0, 30)); // e1 completed, e2 cut short by a crash
      await rename(path, join(dir, 'audit.1.log'));
      await writeFile(path, ln(3));
      await f.until(3);
      await waitFor(() => f.errors.length === 1, () => 'the truncated-line error');
      assert.equal(f.seen, ['e0', 'e1', 'e3']);
      assert.is(f.errors[0]!.index, 3);
      assert.match(f.errors[0]!.reason, /^incomplete last line of a rotated file: invalid JSON/);
    } finally {
      await f.follower.stop();
    }
  });
});

test('copytruncate: the file shrinks and is read again from 0, nothing duplicated', async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, 'audit.log');
    await writeFile(path, lines(0, 5));
    const f = follow(path, 'beginning');
    await f.follower.start();
    try {
      await f.until(5);
      await copyFile(path, join(dir, 'audit.log.1'));
      await truncate(path, 0);
      await appendFile(path, lines(5, 8));
      await f.until(8);
      await sleep(POLL_MS * 4);
      assert.equal(f.seen, ids(0, 8));
      assert.equal(f.errors, []);
    } finally {
      await f.follower.stop();
    }
  });
});

test('a file created after start is read from its beginning', async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, 'audit.log');
    const f = follow(path, 'end');
    await f.follower.start();
    try {
      await sleep(POLL_MS * 3);
      await writeFile(path, lines(0, 3));
      await f.until(3);
      await appendFile(path, lines(3, 4));
      await f.until(4);
      assert.equal(f.seen, ids(0, 4));
      assert.equal(f.failures, []);
    } finally {
      await f.follower.stop();
    }
  });
});

test('a rejecting onEvent is retried at the next poll: nothing skipped, failure reported', async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, 'audit.log');
    await writeFile(path, lines(0, 4));
    let failuresLeft = 3;
    const f = follow(path, 'beginning', {
      onEvent: (e) => {
        if (e.auditID === 'e2' && failuresLeft-- > 0) throw new Error('downstream unavailable');
        f.seen.push(e.auditID);
      },
    });
    await f.follower.start();
    try {
      await f.until(4);
      assert.equal(f.seen, ids(0, 4));
      assert.is(f.failures.length, 3);
      assert.match(f.failures[0]!.message, /audit\.log:3 .*downstream unavailable/);
    } finally {
      await f.follower.stop();
    }
  });
});

test('stop(): safe without start, idempotent, waits for the delivery in progress; start() after stop() rejects', async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, 'audit.log');
    await new AuditLogFollower({ path, startAt: 'end', onEvent: () => undefined, onError: () => undefined }).stop();

    await writeFile(path, lines(0, 3));
    let delivering = false;
    let finished = 0;
    const f = follow(path, 'beginning', {
      onEvent: async () => {
        delivering = true;
        await sleep(50);
        finished++;
        delivering = false;
      },
    });
    await f.follower.start();
    await waitFor(() => delivering, () => 'a delivery to begin');
    await Promise.all([f.follower.stop(), f.follower.stop()]);
    assert.is(delivering, false, 'stop() resolved while onEvent was running');
    // Lines already read are delivered; nothing after stop.
    const after = finished;
    await appendFile(path, lines(3, 5));
    await sleep(POLL_MS * 4);
    assert.is(finished, after);
    await f.follower.stop();
    let err: unknown;
    try {
      await f.follower.start();
    } catch (e) {
      err = e;
    }
    assert.match((err as Error)?.message ?? '', /start\(\) after stop\(\)/);
  });
});

test('after stop() the process exits by itself (no timers or handles left)', async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, 'audit.log');
    await writeFile(path, lines(0, 2));
    const moduleUrl = new URL('../src/index.js', import.meta.url).href;
    const script = `
      const { AuditLogFollower } = await import(${JSON.stringify(moduleUrl)});
      const seen = [];
      let firstDelivery;
      const delivering = new Promise((r) => (firstDelivery = r));
      // A slow consumer, so that stop() comes while a poll is delivering.
      const onEvent = async (e) => { firstDelivery(); await new Promise((r) => setTimeout(r, 20)); seen.push(e.auditID); };
      const opts = { path: ${JSON.stringify(path)}, pollIntervalMs: 10, onEvent, onError: () => {} };
      const a = new AuditLogFollower({ ...opts, startAt: 'beginning' });
      const b = new AuditLogFollower({ ...opts, path: ${JSON.stringify(join(dir, 'missing.log'))}, startAt: 'end' });
      await a.start();
      await b.start();
      await delivering;
      await Promise.all([a.stop(), a.stop(), b.stop()]);
      await b.stop();
      await new AuditLogFollower({ ...opts, startAt: 'end' }).stop();
      process.stdout.write('stopped ' + seen.join(','));
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        resolve(null);
      }, 10_000);
      child.on('exit', (c) => {
        clearTimeout(timer);
        resolve(c);
      });
    });
    assert.is(code, 0, `child did not exit by itself within 10 s (output: ${out})`);
    assert.is(out, 'stopped e0,e1');
  });
});

test.run();
