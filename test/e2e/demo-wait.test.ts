/**
 * `correlate demo` against a running pipeline prints the apply request's tree only once it is
 * complete. A settled tree is queryable and written again when more comes, and the audit stages of
 * one request can come in different batches (Kafka mode forwards each event on its own): the demo
 * must not print the tree of the first stage. A proxy in front of an embedded pipeline holds every
 * audit event after RequestReceived until it has served the demo a tree with an audit event on it.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { runDemo } from '@kube-correlate/cli';
import type { RequestTree, TreeNode } from '@kube-correlate/correlator';
import { startPipeline, type TestPipeline } from '../harness/index.js';

let p: TestPipeline | undefined;
let proxy: Server | undefined;

test.after(async () => {
  await new Promise((r) => (proxy ? proxy.close(r) : r(undefined)));
  await p?.stop();
});

const body = (req: IncomingMessage): Promise<Buffer> =>
  new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });

const hasAudit = (n: TreeNode): boolean => !!n.audit || n.children.some(hasAudit);

test('the demo waits for every audit stage of the apply request, not the first tree with an audit event', async () => {
  p = await startPipeline({ settleAfter: '100ms' });
  const pipeline = p;
  const held: unknown[] = [];
  let released = false;
  let partialTreesServed = 0;
  const release = async () => {
    released = true;
    const res = await fetch(pipeline.audit, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ kind: 'EventList', apiVersion: 'audit.k8s.io/v1', metadata: {}, items: held }) });
    assert.is(res.status, 200, await res.text());
  };
  proxy = createServer((req, res) => {
    void (async () => {
      const url = req.url ?? '/';
      const port = (proxy!.address() as AddressInfo).port;
      if (req.method === 'GET' && url === '/api/v1/receivers') {
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ otlpHttp: `127.0.0.1:${port}`, auditWebhook: `127.0.0.1:${port}` }));
        return;
      }
      if (req.method === 'POST' && url === '/') {
        // The audit webhook: RequestReceived goes on now, the later stages wait.
        const list = JSON.parse((await body(req)).toString('utf8')) as { items: Array<{ stage: string }> };
        const now = list.items.filter((e) => e.stage === 'RequestReceived');
        held.push(...list.items.filter((e) => e.stage !== 'RequestReceived'));
        const r = await fetch(pipeline.audit, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...list, items: now }) });
        res.writeHead(r.status, { 'content-type': r.headers.get('content-type') ?? 'application/json' }).end(Buffer.from(await r.arrayBuffer()));
        return;
      }
      const target = req.method === 'POST' ? `${pipeline.http}${url}` : `${pipeline.query}${url}`;
      const r = await fetch(target, { method: req.method, headers: req.headers['content-type'] ? { 'content-type': req.headers['content-type'] } : {}, ...(req.method === 'POST' ? { body: await body(req) } : {}) });
      const answer = Buffer.from(await r.arrayBuffer());
      res.writeHead(r.status, { 'content-type': r.headers.get('content-type') ?? 'application/octet-stream' }).end(answer);
      if (req.method === 'GET' && url.startsWith('/api/v1/traces/') && r.ok && !released) {
        const tree = JSON.parse(answer.toString('utf8')) as RequestTree;
        if (hasAudit(tree.root)) {
          // The demo was answered a tree with only the first stage: what it would print if it stopped here.
          partialTreesServed++;
          await release();
        }
      }
    })().catch((err: Error) => {
      if (!res.headersSent) res.writeHead(502).end(err.message);
    });
  });
  await new Promise<void>((r) => proxy!.listen(0, '127.0.0.1', r));
  const endpoint = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;

  let out = '';
  const sink = new Writable({ write(chunk: Buffer, _enc, cb) { out += chunk.toString(); cb(); } });
  const code = await runDemo({ endpoint, timeoutMs: 60_000 }, sink);
  assert.is(code, 0);
  assert.ok(held.length > 0, 'the replay sent stages after RequestReceived');
  assert.is(partialTreesServed, 1, 'the demo was served a tree holding only RequestReceived, and polled on');
  assert.ok(released);
  // ResponseComplete is in what was printed: the create's response code.
  assert.match(out, /audit  create  deployments  default\/web  user=\S+  ua="kubectl\/v1\.\d+\.\d+[^"]*"  code=201/);
  assert.match(out, /link → trace [0-9a-f]{32} span [0-9a-f]{16}: kubectl apply \(kubectl\)/);
});

test.run();
