import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { MAX_AUDIT_EVENT_DEPTH, readAuditLogFile } from '../src/index.js';
import type { AuditEvent, AuditLogError } from '../src/index.js';
import { sleep, v1Event, withTempDir } from './helpers.js';

const line = (id: string, extra: Record<string, unknown> = {}) => JSON.stringify(v1Event(id, 'ResponseComplete', extra));

test('a bad line in the middle: its line number is reported, every other event delivered in order', async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, 'audit.log');
    const lines: string[] = [];
    for (let i = 0; i < 1000; i++) lines.push(line(`e${i}`));
    lines.splice(500, 0, '{"kind":"Event","auditID":'); // line 501
    lines.splice(700, 0, ''); // blank line 701: skipped, still counted
    lines.splice(800, 0, line('nostage', { stage: undefined })); // line 801
    await writeFile(path, lines.join('\n') + '\n');
    const events: AuditEvent[] = [];
    const errors: AuditLogError[] = [];
    const counts = await readAuditLogFile(path, { onEvent: (e) => void events.push(e), onError: (e) => void errors.push(e) });
    assert.equal(counts, { lines: 1003, events: 1000, errors: 2 });
    assert.equal(events.map((e) => e.auditID), Array.from({ length: 1000 }, (_, i) => `e${i}`));
    assert.equal(errors.map((e) => [e.index, e.path]), [[501, path], [801, path]]);
    assert.match(errors[0]!.reason, /^invalid JSON: /);
    assert.is(errors[1]!.reason, 'stage: missing');
  });
});

test('a line nested too deep (100,000 levels) is an error; the next line is read', async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, 'audit.log');
    const deep = '['.repeat(100_000) + ']'.repeat(100_000);
    await writeFile(path, `${line('a')}\n${line('deep').slice(0, -1)},"requestObject":${deep}}\n${line('b')}\n`);
    const events: string[] = [];
    const errors: AuditLogError[] = [];
    const counts = await readAuditLogFile(path, { onEvent: (e) => void events.push(e.auditID), onError: (e) => void errors.push(e) });
    assert.equal(counts, { lines: 3, events: 2, errors: 1 });
    assert.equal(events, ['a', 'b']);
    assert.equal(errors, [{ index: 2, path, reason: `requestObject: objects and arrays nested deeper than ${MAX_AUDIT_EVENT_DEPTH} levels (counting the event as 1)` }]);
  });
});

test('lines longer than a read chunk, CRLF endings and a last line without newline', async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, 'audit.log');
    const big = line('big', { level: 'RequestResponse', requestObject: { data: 'é'.repeat(150_000) } });
    await writeFile(path, `${line('a')}\r\n${big}\r\n${line('b')}\n${line('c')}`);
    const events: AuditEvent[] = [];
    const counts = await readAuditLogFile(path, { onEvent: (e) => void events.push(e), onError: (e) => assert.unreachable(e.reason) });
    assert.equal(counts, { lines: 4, events: 4, errors: 0 });
    assert.equal(events.map((e) => e.auditID), ['a', 'big', 'b', 'c']);
    assert.is((events[1]!.requestObject as { data: string }).data.length, 150_000);
  });
});

test('a line over maxLineBytes is an error, not a memory problem; the next line is read', async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, 'audit.log');
    await writeFile(path, `${line('a')}\n${'x'.repeat(300_000)}\n${line('b')}\n`);
    const events: string[] = [];
    const errors: AuditLogError[] = [];
    await readAuditLogFile(path, { onEvent: (e) => void events.push(e.auditID), onError: (e) => void errors.push(e) }, { maxLineBytes: 100_000 });
    assert.equal(events, ['a', 'b']);
    assert.is(errors.length, 1);
    assert.is(errors[0]!.index, 2);
    assert.match(errors[0]!.reason, /300000 bytes is longer than the limit of 100000/);
  });
});

test('onEvent is awaited one at a time (backpressure)', async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, 'audit.log');
    await writeFile(path, Array.from({ length: 20 }, (_, i) => line(`e${i}`)).join('\n'));
    let inFlight = 0;
    let maxInFlight = 0;
    const seen: string[] = [];
    await readAuditLogFile(path, {
      onEvent: async (e) => {
        maxInFlight = Math.max(maxInFlight, ++inFlight);
        await sleep(2);
        seen.push(e.auditID);
        inFlight--;
      },
      onError: (e) => assert.unreachable(e.reason),
    });
    assert.is(maxInFlight, 1);
    assert.is(seen.length, 20);
  });
});

test('a rejecting onEvent stops the read; an aborted signal rejects', async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, 'audit.log');
    await writeFile(path, Array.from({ length: 10 }, (_, i) => line(`e${i}`)).join('\n'));
    const seen: string[] = [];
    let failed: unknown;
    try {
      await readAuditLogFile(path, {
        onEvent: (e) => {
          seen.push(e.auditID);
          if (e.auditID === 'e3') throw new Error('downstream full');
        },
        onError: () => undefined,
      });
    } catch (err) {
      failed = err;
    }
    assert.match((failed as Error).message, /downstream full/);
    assert.equal(seen, ['e0', 'e1', 'e2', 'e3']);

    const ac = new AbortController();
    const got: string[] = [];
    let aborted: unknown;
    try {
      await readAuditLogFile(path, { onEvent: (e) => { got.push(e.auditID); if (got.length === 2) ac.abort(); }, onError: () => undefined }, { signal: ac.signal });
    } catch (err) {
      aborted = err;
    }
    assert.is((aborted as Error).name, 'AbortError');
    assert.is(got.length, 2);
  });
});

test('a missing file rejects with ENOENT', async () => {
  let err: unknown;
  try {
    await readAuditLogFile('/nonexistent/kc-audit.log', { onEvent: () => undefined, onError: () => undefined });
  } catch (e) {
    err = e;
  }
  assert.is((err as NodeJS.ErrnoException).code, 'ENOENT');
});

test.run();
