import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { auditIDForSpans, type AuditEvent } from '@kube-correlate/audit';
import { loadConfigFile, Pipeline } from '@kube-correlate/collector';
import { auditEvent } from '@kube-correlate/fixtures';
import { attrString, encodeTraceRequest } from '@kube-correlate/otlp';
import { silentLogger } from '@kube-correlate/telemetry';
import { loadCapture, type Capture } from '../harness/captures.js';
import { eventList, postJson, reported, ROOT, runCli, tempDir, waitFor } from '../harness/index.js';
import { jaegerTrace } from '../harness/objset-order.js';
import { startJaeger, type JaegerProcess } from '../harness/jaeger.js';

/**
 * The operator's path (README, "What an operator clicks") in the real Jaeger UI (jaeger-ui v1.76.0
 * from ../shared/jaeger-ui/build, served by Jaeger v2.13.0 with deploy/components/jaeger's
 * config.yaml and ui-config.json as shipped), in headless Chromium, on the real v1.37.2 recording
 * (../shared/data/captures/v1.37.2-full: the OTLP requests' bytes as kube-apiserver sent them, the
 * callers' spans, the audit log) replayed into collector-config/embedded-jaeger.yaml as shipped
 * (ports and short settle and hold times through its environment variables):
 *
 *  1. the search form: service `apiserver`, the Deployment create operation, the recording's time
 *     range, Find Traces: the `kubectl apply` request is found;
 *  2. its trace: the audit span with its `k8s.audit.*` tags;
 *  3. the `k8s.objset.id` link opens the object-set trace: its root names the Deployment, its tree is
 *     Deployment -> ReplicaSets -> Pods with their requests (every span the store's tree has);
 *  4. a request span's `k8s.audit.id` link opens that request's trace;
 *  5. the chain: a request in the next hour's window opens a trace of its own, reached from the
 *     first by its `k8s.objset.next_trace_id` link, and linking back; `correlate --objset/--object
 *     --jaeger` follows the same chain and reads what the store has.
 * No console error on any page, no request leaves Jaeger. A screenshot of each step is written to
 * an artifacts directory (printed; `$KC_TEST_ARTIFACTS` or the OS temp dir).
 */

const CHROMIUM = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';
const CAPTURE = 'v1.37.2-full';
const SERVICE = 'apiserver';
const OPERATION = 'POST /apis/apps/v1/namespaces/{:namespace}/deployments';
const VIEWPORT = { width: 1500, height: 1000 };
/** Tall enough that the trace view renders every row of the object-set trace (it renders what is in view). */
const TALL = { width: 1500, height: 16_000 };

const ARTIFACTS = join(process.env['KC_TEST_ARTIFACTS'] ?? join(tmpdir(), 'kube-correlate-artifacts'), `jaeger-ui-${new Date().toISOString().replace(/[:.]/g, '-')}`);
const data = tempDir('kc-jaeger-ui-');
let jaeger: JaegerProcess;
let pipeline: Pipeline;
let browser: Browser | undefined;
let cap: Capture;
/** The kubectl apply of Deployment demo/web: its audit ID and its trace. */
let apply: { auditID: string; traceId: string; user: string; userAgent: string };
let setId = '';
let setTrace = '';
let setSpanCount = 0;
const problems: string[] = [];
const warnings: string[] = [];
const started = Date.now();

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (line: string) => process.stdout.write(`  [jaeger-ui ${((Date.now() - started) / 1000).toFixed(1)}s] ${line}\n`);

/** Every page (tabs opened by target=_blank links too): console errors, page errors and any request outside Jaeger are problems. */
function watch(page: Page): void {
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console error on ${page.url()}: ${m.text()}`);
    else if (m.type() === 'warn') warnings.push(m.text().split('\n')[0]!);
  });
  page.on('pageerror', (e) => problems.push(`page error on ${page.url()}: ${(e as Error).message ?? String(e)}`));
  page.on('request', (r) => {
    const url = r.url();
    if (!url.startsWith(`${jaeger.queryHttp}/`) && !url.startsWith('data:')) problems.push(`request outside Jaeger: ${url}`);
  });
}

test.before(reported('replay the recording into embedded-jaeger.yaml, export to Jaeger with the real UI, start Chromium', async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} not found: run \`node test/dist/harness/prepare.js chromium\` (installs Debian's chromium package) or set CHROMIUM_PATH`);
  mkdirSync(ARTIFACTS, { recursive: true });
  log(`screenshots in ${ARTIFACTS}`);
  cap = loadCapture(CAPTURE);
  const done = cap.auditEvents.find((e) => e.verb === 'create' && e.objectRef?.resource === 'deployments' && e.objectRef.namespace === cap.facts.namespace && e.stage === 'ResponseComplete' && e.userAgent?.startsWith('kubectl'));
  if (!done) throw new Error(`${CAPTURE}: no kubectl create of a Deployment in the audit log`);
  const traceOf = cap.spans.find((s) => attrString(s.attributes, 'audit-id') === auditIDForSpans(done.auditID));
  if (!traceOf) throw new Error(`${CAPTURE}: no span carries the kubectl apply's audit-id ${done.auditID}`);
  apply = { auditID: done.auditID, traceId: traceOf.traceId, user: done.user.username ?? '', userAgent: done.userAgent ?? '' };

  jaeger = await startJaeger({ configFile: join(ROOT, 'deploy/components/jaeger/config.yaml'), env: { JAEGER_UI_CONFIG: join(ROOT, 'deploy/components/jaeger/ui-config.json') } });
  log(`Jaeger ${jaeger.queryHttp} (deploy/components/jaeger/config.yaml, ui-config.json, the UI from ../shared/jaeger-ui/build)`);
  const config = loadConfigFile(join(ROOT, 'collector-config/embedded-jaeger.yaml'), {
    JAEGER_OTLP_ENDPOINT: jaeger.otlpGrpc,
    KC_OTLP_GRPC_ENDPOINT: '127.0.0.1:0', KC_OTLP_HTTP_ENDPOINT: '127.0.0.1:0', KC_AUDIT_WEBHOOK_ENDPOINT: '127.0.0.1:0', KC_QUERY_ENDPOINT: '127.0.0.1:0',
    KC_DATA_DIR: data.dir, KC_SETTLE_AFTER: '300ms', KC_WAIT_FOR_AUDIT: '5s', KC_OBJSET_SETTLE_AFTER: '1s', KC_OBJSET_WAIT_FOR_OWNERS: '5s', LOG_LEVEL: 'warn',
  });
  pipeline = new Pipeline({ config, logger: silentLogger() });
  await pipeline.start();
  const { otlpHttp, auditWebhook } = pipeline.addresses;
  for (const body of cap.otlpRequests) {
    const res = await fetch(`http://${otlpHttp}/v1/traces`, { method: 'POST', headers: { 'content-type': 'application/x-protobuf' }, body });
    assert.is(res.status, 200, await res.text());
  }
  const callers = await fetch(`http://${otlpHttp}/v1/traces`, { method: 'POST', headers: { 'content-type': 'application/x-protobuf' }, body: encodeTraceRequest(cap.callerSpans) });
  assert.is(callers.status, 200);
  for (let i = 0; i < cap.auditEvents.length; i += 400) {
    const r = await postJson(`http://${auditWebhook}/`, eventList(cap.auditEvents.slice(i, i + 400)));
    assert.is(r.status, 200, JSON.stringify(r.body));
  }
  log(`replayed ${cap.otlpRequests.length} OTLP requests, ${cap.callerSpans.length} callers' spans and ${cap.auditEvents.length} audit events`);

  const store = pipeline.store!;
  const tree = await waitFor('the Deployment\'s object set in the store, with the kubectl apply', () => {
    const t = store.getObjectSetOf('deployment', cap.facts.namespace, 'web');
    return t?.auditIds.includes(auditIDForSpans(apply.auditID)) ? t : undefined;
  }, 120_000);
  setId = tree.objectSetId;
  setTrace = tree.traceId;
  await waitFor('the export queue drained (held spans released)', () => (store.allExports().length === 0 ? true : undefined), 180_000);
  setSpanCount = store.getObjectSet(setId)!.spanCount;
  await waitFor(`the object-set trace ${setTrace} in Jaeger with ${setSpanCount} spans`, async () => ((await jaegerTrace(jaeger.queryHttp, setTrace)).length >= setSpanCount ? true : undefined), 60_000);
  await waitFor(`the kubectl apply's trace ${apply.traceId} in Jaeger`, async () => ((await jaegerTrace(jaeger.queryHttp, apply.traceId)).length > 0 ? true : undefined), 60_000);
  log(`exported: object set ${setId}, trace ${setTrace} (${setSpanCount} spans)`);

  browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    // Off the network: no component updates, sync, safe browsing or metrics; names resolve to nothing but loopback.
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run', '--no-default-browser-check', '--lang=en-US',
      '--disable-background-networking', '--disable-component-update', '--disable-default-apps', '--disable-extensions', '--disable-sync',
      '--disable-domain-reliability', '--disable-client-side-phishing-detection', '--metrics-recording-only', '--no-pings',
      '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1',
    ],
    // Times in the UI in UTC, as in the recording.
    env: { ...process.env, TZ: 'UTC' },
    protocolTimeout: 120_000,
  });
  browser.on('targetcreated', (t) => {
    void t.page().then((p) => (p ? watch(p) : undefined));
  });
}));

test.after(reported('stop', async () => {
  await browser?.close();
  await pipeline?.shutdown();
  await jaeger?.stop();
  data.cleanup();
  log(`screenshots in ${ARTIFACTS}; ${warnings.length} console warnings from the UI${warnings.length ? ` (${[...new Set(warnings)].slice(0, 3).join(' | ')})` : ''}`);
}));

/** The page a target=_blank link opened from `from`. */
async function clickOpensTab(from: Page, click: () => Promise<void>): Promise<Page> {
  const before = new Set(browser!.targets());
  const opened = browser!.waitForTarget((t) => t.opener() === from.target() && !before.has(t), { timeout: 30_000 });
  await click();
  const page = await (await opened).page();
  if (!page) throw new Error('the link opened no page');
  await page.setViewport(VIEWPORT);
  return page;
}

async function shot(page: Page, name: string): Promise<void> {
  await page.setViewport(VIEWPORT);
  await page.evaluate('window.scrollTo(0, 0)');
  await sleep(300);
  const path = join(ARTIFACTS, name) as `${string}.png`;
  await page.screenshot({ path });
  assert.ok(statSync(path).size > 10_000, `${name} written`);
  log(`screenshot ${path}`);
}

/** Runs `fn` (browser-side source: the tests compile without the DOM library) with JSON arguments in the page. */
function inPage<T>(page: Page, fn: string, ...args: unknown[]): Promise<T> {
  return page.evaluate(`(${fn})(...${JSON.stringify(args)})`) as Promise<T>;
}

/** Picks `text` in the search form's select `name` (service, operation, lookback) as a user does: open, type, Enter. */
async function choose(page: Page, name: string, text: string): Promise<void> {
  await page.click(`div[name="${name}"]`);
  await page.type(`div[name="${name}"] input`, text);
  const offered = `(t) => [...document.querySelectorAll('.ant-select-dropdown:not(.ant-select-dropdown-hidden) .ant-select-item-option')].some((o) => o.getAttribute('title') === t)`;
  await waitFor(`"${text}" offered in the ${name} list`, () => inPage<boolean>(page, offered, text).then((ok) => (ok ? true : undefined)), 15_000);
  await page.keyboard.press('Enter');
  const value = `(n) => document.querySelector('div[name="' + n + '"] .ant-select-content-value')?.getAttribute('title')`;
  await waitFor(`${name} set to "${text}"`, () => inPage<string | null>(page, value, name).then((v) => (v === text ? true : undefined)), 15_000);
}

/** Sets a date or time input of the form (React-controlled: the native setter, then input and change events). */
async function setInput(page: Page, name: string, value: string): Promise<void> {
  await inPage(page, `(n, v) => {
    const el = document.querySelector('input[name="' + n + '"]');
    Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, 'value').set.call(el, v);
    el.dispatchEvent(new Event('input', { bubbles: true }));
    el.dispatchEvent(new Event('change', { bubbles: true }));
  }`, name, value);
}

interface Row { level: number; service: string; name: string }

/** Waits until `read` gives the same value `times` polls in a row, 300 ms apart (the trace view re-renders late on a busy machine). */
async function untilSteady(what: string, read: () => Promise<unknown>, times: number): Promise<void> {
  let last: string | undefined;
  let steady = 0;
  await waitFor(what, async () => {
    const now = JSON.stringify(await read());
    steady = now === last ? steady + 1 : 0;
    last = now;
    if (steady < times) await sleep(300);
    return steady >= times ? true : undefined;
  }, 30_000);
}

/** The trace view's span rows, in order, with their depth. */
async function rows(page: Page): Promise<Row[]> {
  await page.setViewport(TALL);
  // The view renders the rows in view when it sees the window scroll: nudge it, read once it is steady.
  await inPage(page, `() => { window.scrollTo(0, document.body.scrollHeight); window.dispatchEvent(new Event('scroll')); window.dispatchEvent(new Event('resize')); }`);
  await sleep(300);
  await inPage(page, `() => { window.scrollTo(0, 0); window.dispatchEvent(new Event('scroll')); }`);
  await untilSteady('the trace view\'s rows to settle', () => inPage<number>(page, `() => document.querySelectorAll('.span-row').length`), 3);
  const got = await inPage<Row[]>(page, `() => [...document.querySelectorAll('.span-row')].map((r) => ({
    level: r.querySelectorAll('.SpanTreeOffset--indentGuide').length,
    service: (r.querySelector('.span-svc-name')?.textContent ?? '').trim(),
    name: (r.querySelector('.endpoint-name')?.textContent ?? '').trim(),
  }))`);
  await page.setViewport(VIEWPORT);
  return got;
}

async function waitForTrace(page: Page, title: string): Promise<void> {
  await waitFor(`the trace page titled "${title}" (${page.url()})`, () => inPage<string>(page, `() => document.querySelector('.TracePageHeader--title .TraceName')?.textContent ?? ''`).then((t) => (t === title ? true : undefined)), 30_000);
  await page.waitForSelector('.span-row', { timeout: 30_000 });
}

/** The rows the trace view shows now (in view). */
function shownRows(page: Page): Promise<Row[]> {
  return inPage<Row[]>(page, `() => [...document.querySelectorAll('.span-row')].map((r) => ({
    level: r.querySelectorAll('.SpanTreeOffset--indentGuide').length,
    service: (r.querySelector('.span-svc-name')?.textContent ?? '').trim(),
    name: (r.querySelector('.endpoint-name')?.textContent ?? '').trim(),
  }))`);
}

/** The trace view's "Collapse All", then "Expand +1" `levels` times (the buttons over the span names). */
async function showLevels(page: Page, levels: number): Promise<void> {
  const buttons = await page.$$('.TimelineCollapser svg');
  assert.is(buttons.length, 4, 'the trace view\'s expand and collapse buttons');
  await buttons[3]!.click();
  for (let i = 0; i < levels; i++) await buttons[0]!.click();
  // Read on only once the rows shown stopped changing: openSpan clicks a row by its index among them.
  await untilSteady(`the trace view's rows after expanding ${levels} levels`, () => shownRows(page), 2);
}

/** Whether the open span's detail shows Jaeger's warnings (its adjusters found something wrong with the span). */
const spanWarnings = (page: Page) => inPage<string>(page, `() => [...document.querySelectorAll('.detail-row .AccordianWarnings')].map((w) => w.textContent).join(' ')`);

/** Jaeger's warnings on the spans of a trace, as its UI API serves them (`name (span id): warning`): what a failed warning check names. */
async function jaegerWarnings(traceId: string): Promise<string> {
  const res = await fetch(`${jaeger.queryHttp}/api/traces/${traceId}`, { signal: AbortSignal.timeout(10_000) });
  if (!res.ok) return `Jaeger answered ${res.status}`;
  const body = (await res.json()) as { data?: Array<{ spans: Array<{ spanID: string; operationName: string; startTime: number; duration: number; references?: Array<{ refType: string; spanID: string }>; warnings?: string[] | null }> }> };
  const spans = body.data?.[0]?.spans ?? [];
  const warned = spans.filter((x) => x.warnings?.length);
  return warned.length
    ? warned.map((x) => `${x.operationName} (${x.spanID}, start ${x.startTime} µs, ${x.duration} µs, refs ${JSON.stringify(x.references ?? [])}): ${x.warnings!.join('; ')}`).join('\n')
    : 'none served';
}

/** Opens the span of the first row shown that matches and its Tags table; returns the tags as shown (key -> text). */
async function openSpan(page: Page, match: (r: Row) => boolean, what: string): Promise<Record<string, string>> {
  const shown = await shownRows(page);
  const index = shown.findIndex(match);
  assert.ok(index >= 0, `a ${what} row among the ${shown.length} rows shown (${[...new Set(shown.filter((r) => r.level <= 2).map((r) => `${r.level} ${r.name}`))].join(', ')})`);
  const names = await page.$$('.span-row .span-name');
  await names[index]!.click();
  await page.waitForSelector('.detail-row .AccordianKeyValues--header', { timeout: 10_000 });
  await page.click('.detail-row .AccordianKeyValues--header');
  await page.waitForSelector('.detail-row .KeyValueTable--row', { timeout: 10_000 });
  const tags = await inPage<Record<string, string>>(page, `() => Object.fromEntries([...document.querySelectorAll('.detail-row .KeyValueTable--row')].map((r) => [r.querySelector('.KeyValueTable--keyColumn')?.textContent ?? '', (r.querySelector('.json-markup')?.textContent ?? '').replace(/^"|"$/g, '')]))`);
  return tags;
}

/** Clicks the value of tag `key` in the open span's Tags; with more than one link pattern, then the menu item whose text starts with `item`. */
async function clickTagLink(page: Page, key: string, item?: string): Promise<void> {
  const clicked = await inPage<string | null>(page, `(k) => {
    const a = [...document.querySelectorAll('.detail-row .KeyValueTable--row')].find((r) => r.querySelector('.KeyValueTable--keyColumn')?.textContent === k)?.querySelector('.KeyValueTable--valueColumn a');
    if (!a) return null;
    a.click();
    return a.classList.contains('ant-dropdown-trigger') ? 'menu' : a.getAttribute('href');
  }`, key);
  assert.ok(clicked, `the ${key} tag is a link`);
  if (clicked !== 'menu') return;
  assert.ok(item, `${key} offers a menu of links`);
  const link = await waitFor(`the "${item}" link in the ${key} menu`, () => inPage<string | null>(page, `(t) => {
    const a = [...document.querySelectorAll('.ant-dropdown:not(.ant-dropdown-hidden) a')].find((x) => (x.textContent ?? '').startsWith(t));
    if (!a) return null;
    a.click();
    return a.getAttribute('href');
  }`, item).then((h) => h ?? undefined), 10_000);
  assert.ok(link);
}

let page: Page;
let setPage: Page;

test('1. search: service apiserver, the Deployment create operation, the recording\'s time range: the kubectl apply request is found', async () => {
  page = await browser!.newPage();
  watch(page);
  await page.setViewport(VIEWPORT);
  await page.goto(`${jaeger.queryHttp}/search`, { waitUntil: 'networkidle0' });
  await choose(page, 'service', SERVICE);
  await choose(page, 'operation', OPERATION);
  await choose(page, 'lookback', 'Custom Time Range');
  // The recording's minutes, from its first span to two minutes after its last.
  const starts = cap.spans.map((s) => Number(BigInt(s.startTimeUnixNano) / 1_000_000n));
  const from = new Date(Math.floor(Math.min(...starts) / 60_000) * 60_000);
  const to = new Date(Math.ceil(Math.max(...starts) / 60_000) * 60_000 + 120_000);
  await setInput(page, 'startDate', from.toISOString().slice(0, 10));
  await setInput(page, 'startDateTime', from.toISOString().slice(11, 16));
  await setInput(page, 'endDate', to.toISOString().slice(0, 10));
  await setInput(page, 'endDateTime', to.toISOString().slice(11, 16));
  await Promise.all([page.waitForNavigation({ waitUntil: 'networkidle0' }), page.click('button[data-test="submit-btn"]')]);
  const url = new URL(page.url());
  assert.is(url.searchParams.get('service'), SERVICE);
  assert.is(url.searchParams.get('operation'), OPERATION);
  const results = await waitFor('search results', () => inPage<Array<{ href: string; text: string }>>(page, `() => [...document.querySelectorAll('.ResultItem')].map((r) => ({ href: r.querySelector('a')?.getAttribute('href') ?? '', text: r.textContent ?? '' }))`).then((x) => (x.length ? x : undefined)), 30_000);
  const hit = results.find((r) => r.href === `/trace/${apply.traceId}`);
  assert.ok(hit, `the kubectl apply's trace ${apply.traceId} among ${results.map((r) => r.href).join(', ')}`);
  assert.match(hit.text, /apiserver \(\d+\)/, 'with its apiserver spans');
  assert.match(hit.text, 'kube-apiserver-audit (1)', 'and its audit span');
  await shot(page, '01-search-apiserver-deployment-create.png');
});

test('2. the request trace: the audit span with its k8s.audit.* tags, and its object set', async () => {
  await Promise.all([page.waitForNavigation({ waitUntil: 'networkidle0' }), page.click(`.ResultItem a[href="/trace/${apply.traceId}"]`)]);
  // A system:masters request without a traceparent: kube-apiserver's authentication span is its root.
  await waitForTrace(page, 'apiserver: authentication');
  const all = await shownRows(page);
  assert.ok(all.some((r) => r.service === SERVICE && r.name === OPERATION), 'the route span');
  const tags = await openSpan(page, (r) => r.service === 'kube-apiserver-audit' && r.name === 'audit create deployments', 'audit create deployments');
  assert.is(tags['k8s.audit.id'], apply.auditID);
  assert.is(tags['k8s.audit.verb'], 'create');
  assert.is(tags['k8s.audit.code'], '201');
  assert.is(tags['k8s.audit.user'], apply.user);
  assert.is(tags['k8s.audit.user_agent'], apply.userAgent);
  assert.ok(tags['k8s.audit.stage.ResponseComplete'], 'the stage timestamps');
  assert.is(tags['k8s.object.name'], 'web');
  assert.is(tags['k8s.object.namespace'], cap.facts.namespace);
  assert.is(tags['k8s.objset.id'], setId);
  assert.is(tags['k8s.objset.trace_id'], setTrace, 'the trace of the set\'s window');
  await shot(page, '02-request-trace-audit-span.png');
});

test('3. the k8s.objset.id link opens the object-set trace: named after the Deployment, Deployment -> ReplicaSets -> Pods with their requests', async () => {
  setPage = await clickOpensTab(page, () => clickTagLink(page, 'k8s.objset.id', 'Open the object-set trace of'));
  assert.is(new URL(setPage.url()).pathname, `/trace/${setTrace}`);
  await waitForTrace(setPage, `kube-correlate: object set of Deployment ${cap.facts.namespace}/web`);
  const all = await rows(setPage);
  assert.is(all.length, setSpanCount, 'every span of the store\'s tree');
  const parentOf = (i: number) => {
    for (let j = i - 1; j >= 0; j--) if (all[j]!.level === all[i]!.level - 1) return all[j]!;
    return undefined;
  };
  const objects = all.map((r, i) => ({ ...r, i })).filter((r) => r.service === 'kube-correlate');
  assert.equal(objects[0], { level: 1, service: 'kube-correlate', name: `object set of Deployment ${cap.facts.namespace}/web`, i: 0 });
  const kind = (r: Row) => r.name.split(' ')[0];
  const deployments = objects.filter((r) => kind(r) === 'Deployment');
  assert.equal(deployments.map((r) => [r.level, r.name]), [[2, `Deployment ${cap.facts.namespace}/web`]], 'one Deployment, under the root');
  const replicaSets = objects.filter((r) => kind(r) === 'ReplicaSet');
  assert.is(replicaSets.length, 2, 'the rollout\'s two ReplicaSets');
  for (const rs of replicaSets) assert.equal(parentOf(rs.i), deployments[0] && { level: 2, service: 'kube-correlate', name: deployments[0].name }, `${rs.name} under the Deployment`);
  const pods = objects.filter((r) => kind(r) === 'Pod');
  assert.ok(pods.length >= 5, `${pods.length} Pods`);
  for (const pod of pods) assert.is(kind(parentOf(pod.i)!), 'ReplicaSet', `${pod.name} under a ReplicaSet`);
  assert.is(objects.length, 1 + 1 + replicaSets.length + pods.length, 'nothing but the set, its Deployment, ReplicaSets and Pods');
  // Requests under each object, named by verb and resource.
  const requestsUnder = (o: { i: number; level: number }) => all.slice(o.i + 1).filter((r, k, rest) => r.level === o.level + 1 && r.service === 'kube-apiserver-audit' && rest.slice(0, k).every((x) => x.level > o.level));
  assert.ok(requestsUnder(deployments[0]!).some((r) => r.name === 'create deployments'), 'the kubectl apply under the Deployment');
  for (const rs of replicaSets) assert.ok(requestsUnder(rs).some((r) => r.name === 'create replicasets'), `${rs.name}: its create`);
  for (const pod of pods) assert.ok(requestsUnder(pod).some((r) => r.name === 'create pods'), `${pod.name}: its create`);
  await shot(setPage, '03-object-set-trace.png');
});

test('4. a request span\'s k8s.audit.id link opens that request\'s trace', async () => {
  // The set, its Deployment, the Deployment's requests and ReplicaSets, and theirs: the first ReplicaSet's create is in view.
  await showLevels(setPage, 3);
  const tags = await openSpan(setPage, (r) => r.service === 'kube-apiserver-audit' && r.name === 'create replicasets', 'create replicasets');
  const auditID = tags['k8s.audit.id']!;
  assert.ok(auditID, 'the request span names its audit ID');
  assert.is(tags['k8s.audit.verb'], 'create');
  assert.match(tags['k8s.audit.user'] ?? '', /^system:serviceaccount:kube-system:deployment-controller$/);
  await shot(setPage, '04-object-set-request-span.png');
  const requestPage = await clickOpensTab(setPage, () => clickTagLink(setPage, 'k8s.audit.id', 'Open the request trace of audit ID'));
  assert.is(new URL(requestPage.url()).pathname, `/trace/${tags['k8s.audit.trace_id']}`);
  await waitForTrace(requestPage, 'apiserver: POST /apis/apps/v1/namespaces/{:namespace}/replicasets');
  const audit = await openSpan(requestPage, (r) => r.service === 'kube-apiserver-audit' && r.name === 'audit create replicasets', 'audit create replicasets');
  assert.is(audit['k8s.audit.id'], auditID, 'the same request');
  assert.is(audit['k8s.objset.id'], setId, 'and it names the same object set');
  await shot(requestPage, '05-request-trace-from-object-set.png');
});

test('5. the chain: a request in the next hour opens a trace of its own, reached by the next link and linking back', async () => {
  // An unsampled `kubectl get deployment web` (audit only) 15 minutes after the recording's hour.
  const first = Date.parse(cap.auditEvents[0]!.requestReceivedTimestamp);
  const at = new Date(Math.floor(first / 3_600_000) * 3_600_000 + 3_600_000 + 15 * 60_000);
  const uid = String((cap.auditEvents.find((e) => e.objectRef?.resource === 'deployments' && e.objectRef.name === 'web' && e.objectRef.uid)?.objectRef?.uid) ?? '');
  const common = {
    auditID: randomUUID(), verb: 'get', requestURI: `/apis/apps/v1/namespaces/${cap.facts.namespace}/deployments/web`, requestReceivedTimestamp: at.toISOString(),
    objectRef: { resource: 'deployments', namespace: cap.facts.namespace, name: 'web', apiGroup: 'apps', apiVersion: 'v1', ...(uid ? { uid } : {}) },
  };
  const events: AuditEvent[] = [
    auditEvent({ ...common, stage: 'RequestReceived', stageTimestamp: at.toISOString() }),
    auditEvent({ ...common, stage: 'ResponseComplete', stageTimestamp: new Date(at.getTime() + 4).toISOString(), responseStatus: { metadata: {}, code: 200 } }),
  ];
  assert.is((await postJson(`http://${pipeline.addresses.auditWebhook}/`, eventList(events))).status, 200);
  const store = pipeline.store!;
  const chain = await waitFor('two windows in the set\'s chain', () => {
    const c = store.objectSetChain(setId);
    return c.length === 2 ? c : undefined;
  }, 60_000);
  const next = chain[1]!.traceIds[0]!;
  await waitFor('the export queue drained', () => (store.allExports().length === 0 ? true : undefined), 120_000);
  await waitFor(`the next window's trace ${next} in Jaeger`, async () => ((await jaegerTrace(jaeger.queryHttp, next)).length >= 3 ? true : undefined), 60_000);

  // Back to the object-set trace's tab (a background tab does not render), reloaded.
  await setPage.bringToFront();
  await setPage.reload({ waitUntil: 'networkidle0' });
  await waitForTrace(setPage, `kube-correlate: object set of Deployment ${cap.facts.namespace}/web`);
  // The root's children: the Deployment and the new span linking forward.
  await showLevels(setPage, 1);
  const label = `continued in window ${chain[1]!.start}`;
  assert.equal((await shownRows(setPage)).map((r) => [r.level, r.name]), [[1, `object set of Deployment ${cap.facts.namespace}/web`], [2, `Deployment ${cap.facts.namespace}/web`], [2, label]]);
  const tags = await openSpan(setPage, (r) => r.level === 2 && r.name === label, label);
  assert.is(tags['k8s.objset.next_trace_id'], next);
  const setWarnings = await spanWarnings(setPage);
  assert.is(setWarnings, '', `no warning from Jaeger on the span; Jaeger's warnings on trace ${setTrace}:\n${setWarnings ? await jaegerWarnings(setTrace) : ''}`);
  await shot(setPage, '06-object-set-trace-next-link.png');
  const nextPage = await clickOpensTab(setPage, () => clickTagLink(setPage, 'k8s.objset.next_trace_id'));
  assert.is(new URL(nextPage.url()).pathname, `/trace/${next}`);
  await waitForTrace(nextPage, `kube-correlate: object set of Deployment ${cap.facts.namespace}/web`);
  assert.equal((await shownRows(nextPage)).map((r) => [r.level, r.name]), [[1, `object set of Deployment ${cap.facts.namespace}/web`], [2, `Deployment ${cap.facts.namespace}/web`], [3, 'get deployments']]);
  const root = await openSpan(nextPage, (r) => r.level === 1, 'root');
  assert.is(root['k8s.objset.previous_trace_id'], setTrace, 'linking back');
  const nextWarnings = await spanWarnings(nextPage);
  assert.is(nextWarnings, '', `no warning from Jaeger on the root; Jaeger's warnings on trace ${next}:\n${nextWarnings ? await jaegerWarnings(next) : ''}`);
  assert.is(root['k8s.objset.window.start'], chain[1]!.start);
  await shot(nextPage, '07-next-window-trace.png');
});

test('the CLI follows the same chain: correlate --object/--objset (set id or the Deployment\'s uid) --window read the same from Jaeger as from the store', async () => {
  const query = `http://${pipeline.addresses.query}`;
  const uid = pipeline.store!.findObjects('deployment', cap.facts.namespace, 'web')[0]!.uid;
  assert.is.not(uid, setId, 'the webhook named the set with an id of its own');
  const first = pipeline.store!.objectSetChain(setId)[0]!;
  // Back to the recording, however long ago it was made.
  const lookback = `${Math.ceil((Date.now() - Date.parse(first.start)) / 86_400_000) + 1}d`;
  for (const args of [['--object', `deployment/${cap.facts.namespace}/web`], ['--objset', uid], ['--objset', setId, '--window', first.start]]) {
    const fromStore = await runCli([...args, '--json', '--endpoint', query], { timeoutMs: 120_000 });
    const fromJaeger = await runCli([...args, '--json', '--jaeger', jaeger.queryHttp, '--lookback', lookback], { timeoutMs: 120_000 });
    assert.is(fromStore.code, 0, fromStore.stderr);
    assert.is(fromJaeger.code, 0, fromJaeger.stderr);
    assert.is(fromJaeger.stdout, fromStore.stdout, `${args.join(' ')}: the same tree and chain from Jaeger`);
    const out = JSON.parse(fromStore.stdout) as { objectSetId: string; chain: Array<{ traceIds: string[] }> };
    assert.is(out.objectSetId, setId);
    assert.equal(out.chain.map((c) => c.traceIds[0]), [setTrace, pipeline.store!.objectSetChain(setId)[1]!.traceIds[0]]);
  }
  const text = await runCli(['--objset', uid, '--endpoint', query]);
  assert.match(text.stdout, /^chain: 2 windows, oldest first/m);
  assert.match(text.stdout, new RegExp(`^  ${first.start.replace('.000Z', 'Z')} +\\d+ requests  trace ${setTrace}$`, 'm'));
});

test('the README\'s "What an operator clicks" names what this test clicks, and shows its screenshot', () => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const start = readme.indexOf('**What an operator clicks**');
  assert.ok(start > 0, 'the section is there');
  const section = readme.slice(start, readme.indexOf('\n## ', start) > 0 ? readme.indexOf('\n## ', start) : undefined).replace(/\s+/g, ' ');
  const links = (JSON.parse(readFileSync(join(ROOT, 'deploy/components/jaeger/ui-config.json'), 'utf8')) as { linkPatterns: Array<{ key: string; text: string }> }).linkPatterns;
  // A link's text up to its first parameter, as the README quotes it ("Open the object-set trace of ...").
  const text = (key: string, prefix: string) => links.find((l) => l.key === key && l.text.startsWith(prefix))!.text.split('#{')[0]!.trim();
  for (const clicked of [
    `service \`${SERVICE}\``, OPERATION, 'Find Traces', 'apiserver: authentication', 'audit create deployments', 'k8s.objset.id',
    text('k8s.objset.id', 'Open the object-set trace'), text('k8s.objset.id', 'Search every trace'), 'create replicasets', 'k8s.audit.id',
    text('k8s.audit.id', 'Open the request trace'), 'continued in window', 'k8s.objset.next_trace_id', text('k8s.objset.next_trace_id', 'Open the next trace'),
    'k8s.objset.previous_trace_id', text('k8s.objset.previous_trace_id', 'Open the previous trace'),
  ]) assert.ok(section.includes(clicked), `the README's operator section says "${clicked}"`);
  const image = /!\[[^\]]*\]\((deploy\/docs\/[^)]+\.png)\)/.exec(section);
  assert.ok(image, 'it shows a screenshot from deploy/docs/');
  assert.ok(statSync(join(ROOT, image[1]!)).size > 10_000, `${image[1]} is committed`);
});

test('no console error, no page error, no request outside Jaeger on any page', () => {
  assert.equal(problems, []);
  log(`the walk took ${((Date.now() - started) / 1000).toFixed(0)} s in all`);
});

test.run();
