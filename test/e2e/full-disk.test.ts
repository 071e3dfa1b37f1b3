import { spawnSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, rmSync, statfsSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { AuditEvent } from '@kube-correlate/audit';
import { encodeTraceRequest, SpanKind, type Span } from '@kube-correlate/otlp';
import { TraceStore } from '@kube-correlate/store';
import { eventList, freePort, spawnCorrelate, tempDir, waitFor } from '../harness/index.js';
import { killGroup } from '../harness/supervise.js';

/**
 * The data directory on a disk that fills up (a 48 MiB tmpfs, filled by another file): while it is
 * full, receivers refuse with retryable codes (503 + Retry-After) instead of acknowledging what they
 * cannot store; senders retry, as kube-apiserver does; once space returns the pipeline takes data
 * again by itself, and every acknowledged span and audit event is stored. (Measured before: 200
 * answers while SQLITE_FULL was logged, 382,013 of 516,025 acknowledged items never stored.)
 */
const tmp = tempDir('kc-full-disk-');
const mnt = join(tmp.dir, 'disk');
mkdirSync(mnt);

function mountTmpfs(): void {
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=48m', 'tmpfs', mnt], { encoding: 'utf8' });
  if (r.status !== 0) {
    throw new Error(`this test mounts a small tmpfs as a disk that fills up, which needs root (CI runs as root): \`mount -t tmpfs\` failed: ${(r.stderr || r.error?.message || '').trim()}`);
  }
}
test.after(() => {
  spawnSync('umount', ['-l', mnt]);
  tmp.cleanup();
});

const hex = (n: number, len: number) => n.toString(16).padStart(len, '0');
const resource = { attributes: [{ key: 'service.name', value: { stringValue: 'apiserver' } }], droppedAttributesCount: 0, schemaUrl: '' };
const scope = { name: 'k8s.io/apiserver', version: '', attributes: [], droppedAttributesCount: 0, schemaUrl: '' };

function request(i: number): { spans: Span[]; audit: AuditEvent[]; traceId: string; auditID: string } {
  const traceId = hex(7, 8) + hex(i + 1, 24);
  const auditID = `0000000${7}-${hex(i, 4)}-4000-8000-${hex(i, 12)}`;
  const t0 = 1_790_000_000_000_000_000n + BigInt(i) * 1_000_000n;
  const pad = [{ key: 'padding', value: { stringValue: 'p'.repeat(2000) } }];
  const mk = (n: number, parent: number, kind: number): Span => ({
    traceId, spanId: hex(n, 16), parentSpanId: parent ? hex(parent, 16) : '', traceState: '', flags: 1, name: n === 1 ? 'POST /api/v1/namespaces/{:namespace}/configmaps' : 'Create', kind,
    startTimeUnixNano: (t0 + BigInt(n)).toString(), endTimeUnixNano: (t0 + 900_000n).toString(),
    attributes: [{ key: 'audit-id', value: { stringValue: auditID } }, ...pad], droppedAttributesCount: 0,
    events: [], droppedEventsCount: 0, links: [], droppedLinksCount: 0, status: { code: 0, message: '' }, resource, scope,
  });
  const ts = new Date(Number(t0 / 1_000_000n)).toISOString().replace('Z', '000Z');
  const base = { level: 'Metadata', auditID, requestURI: '/api/v1/namespaces/default/configmaps', verb: 'create', user: { username: 'load' }, objectRef: { resource: 'configmaps', namespace: 'default', name: `cm-${i}`, apiVersion: 'v1' }, requestReceivedTimestamp: ts };
  return { traceId, auditID, spans: [mk(1, 0, SpanKind.SERVER), mk(2, 1, SpanKind.INTERNAL)], audit: [{ ...base, stage: 'RequestReceived', stageTimestamp: ts }, { ...base, stage: 'ResponseComplete', stageTimestamp: ts, responseStatus: { code: 201 } }] };
}

test('a full disk: retryable refusals while full, recovery by itself when space returns, nothing acknowledged lost', async () => {
  mountTmpfs();
  const dataDir = join(mnt, 'data');
  const [http, audit, query, grpc] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const env = {
    KC_OTLP_GRPC_ENDPOINT: `127.0.0.1:${grpc}`, KC_OTLP_HTTP_ENDPOINT: `127.0.0.1:${http}`, KC_AUDIT_WEBHOOK_ENDPOINT: `127.0.0.1:${audit}`,
    KC_QUERY_ENDPOINT: `127.0.0.1:${query}`, KC_DATA_DIR: dataDir, KC_SETTLE_AFTER: '300ms', KC_STORE_MAX_SIZE: '1GiB',
  };
  const p = spawnCorrelate(['start'], { env });
  let err = '';
  p.child.stderr!.on('data', (d: Buffer) => (err = (err + d).slice(-50_000)));
  try {
    await waitFor('the pipeline to start', () => (err.includes('kube-correlate is running') ? true : undefined), 120_000);
    // Another file takes the disk, leaving about 1 MiB.
    const filler = join(mnt, 'filler');
    const fd = openSync(filler, 'w');
    const block = Buffer.alloc(1024 * 1024, 1);
    try {
      while (statfsSync(mnt).bavail * statfsSync(mnt).bsize > 1024 * 1024) writeSync(fd, block);
    } catch {
      // ENOSPC: full enough
    } finally {
      closeSync(fd);
    }

    let refused = 0;
    let released = false;
    const send = async (url: string, body: Uint8Array | string, type: string) => {
      for (;;) {
        const res = await fetch(url, { method: 'POST', headers: { 'content-type': type }, body, signal: AbortSignal.timeout(30_000) }).catch(() => undefined);
        const status = res?.status ?? 0;
        await res?.arrayBuffer();
        if (status === 200) return;
        if (status !== 503 && status !== 0) throw new Error(`${url} answered ${status}: not a retryable refusal`);
        if (status === 503) {
          assert.ok(res!.headers.get('retry-after'), 'a 503 says when to retry');
          refused++;
          if (refused >= 5 && !released) {
            released = true;
            rmSync(filler); // space returns
          }
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    };
    const N = 400;
    let next = 0;
    await Promise.all(Array.from({ length: 4 }, async () => {
      while (next < N) {
        const r = request(next++);
        await send(`http://127.0.0.1:${http}/v1/traces`, encodeTraceRequest(r.spans), 'application/x-protobuf');
        await send(`http://127.0.0.1:${audit}/`, JSON.stringify(eventList(r.audit)), 'application/json');
      }
    }));
    assert.ok(refused >= 5, `the full disk was refused retryably (${refused} refusals)`);
    assert.ok(released, 'space returned during the run');
    p.child.kill('SIGTERM');
    const code = await Promise.race([p.exited, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 60_000))]);
    assert.not.equal(code, 'timeout', 'exited after SIGTERM');

    const store = new TraceStore({ dir: dataDir, readonly: true });
    try {
      const missing: number[] = [];
      for (let i = 0; i < N; i++) {
        const r = request(i);
        if (store.getTrace(r.traceId)?.spanCount !== 2 || store.auditEvents(r.auditID).length !== 2) missing.push(i);
      }
      assert.equal(missing, [], 'every acknowledged request stored whole');
    } finally {
      store.close();
    }
    assert.match(err, /cannot (append to the inbox|write)/, 'the full disk was logged');
  } catch (e) {
    throw new Error(`${(e as Error).message}\nstderr tail:\n${err.slice(-4000)}`);
  } finally {
    killGroup(p.child.pid, 'SIGKILL');
  }
});

test.run();
