import { existsSync, readFileSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { JAEGER_VERSION, ensureJaeger, getTraceV3, jaegerUiAssets, startJaeger, type JaegerProcess } from '../harness/jaeger.js';

/**
 * The real Jaeger v2 binary the interoperability suites run against (test/jaeger/README.md): it
 * starts with in-memory storage on loopback ports, takes a span over OTLP/HTTP, serves it back
 * through the query service's /api/v3, serves the real Jaeger UI (../shared/jaeger-ui/build), and
 * leaves nothing behind when stopped.
 */
const TRACE_ID = '5b8efff798038103d269b633813fc60c';
const SPAN_ID = 'eee19b7ec3c1b174';
const SERVICE = 'kube-correlate-test';
const SPAN_NAME = 'GET /api/v1/namespaces/default/pods';

let jaeger: JaegerProcess | undefined;
test.after(async () => { await jaeger?.stop(); });

interface KeyValue { key: string; value: { stringValue?: string } }
interface V3Span { traceId: string; spanId: string; name: string; kind?: unknown; attributes?: KeyValue[] }
interface V3Trace { result: { resourceSpans: { resource?: { attributes?: KeyValue[] }; scopeSpans: { spans: V3Span[] }[] }[] } }

/** OTLP/JSON ids are hex; accept base64 too, in case a gateway renders the bytes that way. */
const idHex = (id: string, bytes: number): string =>
  new RegExp(`^[0-9a-f]{${bytes * 2}}$`, 'i').test(id) ? id.toLowerCase() : Buffer.from(id, 'base64').toString('hex');

test(`Jaeger ${JAEGER_VERSION}: OTLP/HTTP in, /api/v3/traces out`, async () => {
  const t0 = Date.now();
  const bin = await ensureJaeger();
  const t1 = Date.now();
  jaeger = await startJaeger();
  const t2 = Date.now();
  assert.match(jaeger.otlpGrpc, /^127\.0\.0\.1:\d+$/);
  assert.match(jaeger.otlpHttp, /^http:\/\/127\.0\.0\.1:\d+$/);
  assert.match(jaeger.queryHttp, /^http:\/\/127\.0\.0\.1:\d+$/);
  assert.ok(existsSync(jaeger.logPath), 'jaeger logs to a file in its temp dir');
  assert.is(await getTraceV3(jaeger.queryHttp, TRACE_ID), undefined, 'a fresh in-memory store has no such trace (404)');

  const now = BigInt(Date.now()) * 1_000_000n;
  const body = {
    resourceSpans: [{
      resource: { attributes: [{ key: 'service.name', value: { stringValue: SERVICE } }] },
      scopeSpans: [{
        scope: { name: 'kube-correlate-e2e' },
        spans: [{
          traceId: TRACE_ID,
          spanId: SPAN_ID,
          name: SPAN_NAME,
          kind: 2, // SPAN_KIND_SERVER
          startTimeUnixNano: String(now - 5_000_000n),
          endTimeUnixNano: String(now),
          attributes: [{ key: 'http.request.method', value: { stringValue: 'GET' } }],
          status: {},
        }],
      }],
    }],
  };
  const res = await fetch(`${jaeger.otlpHttp}/v1/traces`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const answer = await res.text();
  assert.is(res.status, 200, `OTLP/HTTP export answered ${res.status}: ${answer}`);

  let trace: V3Trace | undefined;
  const deadline = Date.now() + 30_000;
  while (!(trace = (await getTraceV3(jaeger.queryHttp, TRACE_ID)) as V3Trace | undefined)) {
    if (Date.now() > deadline) throw new Error(`trace ${TRACE_ID} not in Jaeger after 30 s\n${readFileSync(jaeger.logPath, 'utf8').slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const t3 = Date.now();

  const rs = trace.result.resourceSpans;
  assert.is(rs.length, 1, 'one resource');
  const service = rs[0]!.resource?.attributes?.find((a) => a.key === 'service.name')?.value.stringValue;
  assert.is(service, SERVICE);
  const spans = rs[0]!.scopeSpans.flatMap((s) => s.spans);
  assert.is(spans.length, 1, 'one span');
  const span = spans[0]!;
  assert.is(span.name, SPAN_NAME);
  assert.is(idHex(span.traceId, 16), TRACE_ID);
  assert.is(idHex(span.spanId, 8), SPAN_ID);
  assert.is(span.attributes?.find((a) => a.key === 'http.request.method')?.value.stringValue, 'GET');

  // The real UI, not the Go build's placeholder page (../shared/jaeger-ui/build, served with ui.assets_path).
  const index = await (await fetch(`${jaeger.queryHttp}/search`)).text();
  assert.match(index, '<div id="jaeger-ui-root"></div>');
  assert.not.match(index, 'placeholder for the Jaeger UI');
  const script = /<script type="module" crossorigin src="\.\/(static\/index-[^"]+\.js)"/.exec(index);
  assert.ok(script, 'index.html loads the UI bundle');
  const bundle = await fetch(`${jaeger.queryHttp}/${script[1]}`);
  assert.is(bundle.status, 200, `${script[1]} is served`);
  assert.ok((await bundle.arrayBuffer()).byteLength > 100_000, 'the UI bundle');

  // The service is listed too.
  const services = (await (await fetch(`${jaeger.queryHttp}/api/v3/services`)).json()) as { services?: string[] };
  assert.ok(services.services?.includes(SERVICE), `services: ${JSON.stringify(services)}`);

  const dir = jaeger.dir;
  const t4 = Date.now();
  await jaeger.stop();
  await jaeger.stop(); // safe twice
  const t5 = Date.now();
  assert.not.ok(existsSync(dir), 'stop() removes the temp dir');
  const closed = await fetch(`${jaeger.queryHttp}/api/v3/services`).then(() => 'answered', () => 'refused');
  assert.is(closed, 'refused', 'the query port is closed after stop()');
  process.stdout.write(`  [jaeger] binary ${bin}: ensure ${t1 - t0} ms, start ${t2 - t1} ms (ready ${jaeger.readyMs} ms), span visible ${t3 - t2} ms, stop ${t5 - t4} ms\n`);
});

test('no Jaeger UI build: starting Jaeger fails with a message naming where it was looked for (never a skip)', async () => {
  const before = process.env['KC_JAEGER_UI_ASSETS'];
  process.env['KC_JAEGER_UI_ASSETS'] = '/nonexistent/jaeger-ui/build';
  try {
    assert.throws(() => jaegerUiAssets(), /Jaeger UI assets are missing: \/nonexistent\/jaeger-ui\/build\/index\.html not found/);
    const err = await startJaeger().then(() => undefined, (e: Error) => e);
    assert.ok(err, 'startJaeger refused');
    assert.match(err.message, 'KC_JAEGER_UI_ASSETS');
  } finally {
    if (before === undefined) delete process.env['KC_JAEGER_UI_ASSETS'];
    else process.env['KC_JAEGER_UI_ASSETS'] = before;
  }
});

test.run();
