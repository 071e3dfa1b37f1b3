import { existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { CoverageCollector, formatHtml, loadCatalogueFile } from '@kube-correlate/apicoverage';
import { ROOT, tempDir } from '../harness/index.js';
import { apisnoopE2eEvents, loadSnoop, specPath, usageEvents } from '../harness/coverage.js';

/**
 * The HTML report of 1.35 (APISnoop's e2e data replayed, plus a few other clients) opened in real
 * headless Chromium (Debian's chromium package; test/harness/prepare.ts installs it): no console or
 * page errors, no network request, one `[data-endpoint]` leaf per coverage endpoint, the identity
 * filter changes the chart, tooltips and zoom work. A screenshot goes to test/artifacts/.
 */

const CHROMIUM = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';
const SCREENSHOT = join(ROOT, 'test', 'artifacts', 'coverage-sunburst.png');

const tmp = tempDir('kc-coverage-html-');
const htmlPath = join(tmp.dir, 'coverage.html');
let coverageEndpoints = 0;
let browser: Browser | undefined;
let page: Page;
const consoleErrors: string[] = [];
const pageErrors: string[] = [];
const requests: string[] = [];

test.before(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} not found: run \`node test/dist/harness/prepare.js chromium\` (installs Debian's chromium package) or set CHROMIUM_PATH`);
  }
  const catalogue = loadCatalogueFile(specPath('1.35'));
  coverageEndpoints = catalogue.coverageEndpoints().length;
  const snoop = loadSnoop('1.35');
  const collector = new CoverageCollector(catalogue);
  for (const e of apisnoopE2eEvents(catalogue, snoop).events) collector.addEvent(e);
  const untested = snoop.endpoints.filter((s) => !s.tested && s.level === 'stable' && s.action !== 'connect').map((s) => s.endpoint);
  const plan = [
    { client: 0, endpoint: 'readCoreV1NamespacedPod', hits: 40 },
    { client: 0, endpoint: 'listAppsV1NamespacedDeployment', hits: 12 },
    { client: 1, endpoint: 'listAppsV1NamespacedReplicaSet', hits: 30 },
    { client: 1, endpoint: 'createAppsV1NamespacedReplicaSet', hits: 5 },
    { client: 2, endpoint: 'patchCoreV1NodeStatus', hits: 200 },
    { client: 2, endpoint: 'readCoordinationV1NamespacedLease', hits: 300 },
    ...untested.slice(0, 8).map((endpoint, i) => ({ client: 3, endpoint, hits: 3 + i })),
  ];
  for (const e of usageEvents(catalogue, plan)) collector.addEvent(e);
  writeFileSync(htmlPath, formatHtml(collector.report({ release: '1.35.0', spec: 'swagger-v1.35.json', sources: ['APISnoop 1.35.0 e2e data, replayed'] })));

  browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run', '--no-default-browser-check'],
  });
  page = await browser.newPage();
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warn') consoleErrors.push(`${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => pageErrors.push(String((e as Error).message ?? e)));
  page.on('request', (r) => requests.push(r.url()));
  await page.setViewport({ width: 1300, height: 900 });
  await page.goto(pathToFileURL(htmlPath).href, { waitUntil: 'load' });
  await page.waitForSelector('body[data-ready="true"]', { timeout: 10_000 });
});

test.after(async () => {
  await browser?.close();
  tmp.cleanup();
});

const count = (selector: string) => page.evaluate(`document.querySelectorAll(${JSON.stringify(selector)}).length`) as Promise<number>;
/** Leaves with a visible arc (a non-empty path). */
const visibleLeaves = () => page.evaluate(`[...document.querySelectorAll('[data-endpoint]')].filter((p) => (p.getAttribute('d') || '') !== '').length`) as Promise<number>;
const leafD = (id: string) => page.evaluate(`document.querySelector('[data-endpoint="${id}"]').getAttribute('d')`) as Promise<string>;

test('loads with no console error, no page error, and no request but the file itself', () => {
  assert.equal(pageErrors, []);
  assert.equal(consoleErrors, []);
  assert.equal(requests, [pathToFileURL(htmlPath).href]);
});

test('one [data-endpoint] leaf per coverage endpoint, all visible, colored by status', async () => {
  assert.is(coverageEndpoints, 863);
  assert.is(await count('[data-endpoint]'), coverageEndpoints);
  assert.is(await visibleLeaves(), coverageEndpoints);
  assert.is(await count('[data-level]'), 3);
  assert.ok((await count('[data-category]')) > 20);
  assert.is(await count('[data-endpoint][data-status="conf"]'), 560 - 4, 'conformance-tested (the 4 HEAD proxies land on their GET twins)');
  assert.is(await count('[data-endpoint][data-status="hit"]'), 8 + 0, 'used by clients, untested');
  const fills = (await page.evaluate(`[...new Set([...document.querySelectorAll('[data-endpoint]')].map((p) => p.getAttribute('fill')))].sort()`)) as string[];
  assert.equal(fills, ['#1b7f3b', '#8bc34a', '#d3d3d3', '#f39c12']);
});

test('the identity filter resizes and hides: kubelet used 2 endpoints', async () => {
  const before = await leafD('readCoordinationV1NamespacedLease');
  const options = (await page.evaluate(`[...document.querySelectorAll('#identity option')].map((o) => o.value)`)) as string[];
  assert.ok(options.includes('kubelet') && options.includes('e2e.test') && options.includes('kube-controller-manager/deployment-controller'), options.join(', '));
  await page.select('#identity', 'kubelet');
  assert.is(await visibleLeaves(), 2);
  assert.is.not(await leafD('readCoordinationV1NamespacedLease'), before, 'the lease leaf grew');
  assert.is(await leafD('listCoreV1NamespacedPod'), '', 'what kubelet did not use is hidden');
  assert.is(await page.evaluate(`document.querySelector('#chart svg').getAttribute('data-identity')`), 'kubelet');
  assert.match((await page.evaluate(`document.getElementById('selection').textContent`)) as string, /^kubelet: 500 requests to 2 endpoints/);
  assert.is(await count('[data-endpoint]'), coverageEndpoints, 'the leaves stay in the document');
  const weights = (await page.evaluate(`[...document.querySelectorAll('[data-endpoint]')].map((p) => Number(p.getAttribute('data-weight'))).filter((w) => w > 0).sort((a, b) => a - b)`)) as number[];
  assert.equal(weights.map((w) => Math.round(w * 100) / 100), [Math.round(Math.log2(201) * 100) / 100, Math.round(Math.log2(301) * 100) / 100]);

  await page.select('#identity', 'e2e.test');
  assert.is(await visibleLeaves(), 575 - 4);
  await page.select('#identity', '');
  assert.is(await visibleLeaves(), coverageEndpoints);
  assert.is(await leafD('readCoordinationV1NamespacedLease'), before);
});

test('tooltips name the endpoint; clicking a category zooms in, the center zooms out', async () => {
  await page.hover('[data-endpoint="createAppsV1NamespacedDeployment"]');
  const tip = (await page.evaluate(`document.getElementById('tip').textContent`)) as string;
  assert.match(tip, /createAppsV1NamespacedDeployment/);
  assert.match(tip, /conformance-tested/);
  assert.match(tip, /POST \/apis\/apps\/v1\/namespaces\/\{namespace\}\/deployments/);
  assert.is(await page.evaluate(`getComputedStyle(document.getElementById('tip')).display`), 'block');

  await page.click('[data-category="stable/apps"]');
  const apps = (await page.evaluate(`[...document.querySelectorAll('[data-endpoint]')].filter((p) => p.getAttribute('d')).length`)) as number;
  assert.ok(apps > 20 && apps < 100, `${apps} apps endpoints shown`);
  assert.match((await page.evaluate(`document.getElementById('center-title').textContent`)) as string, /stable \/ apps/);
  await page.click('#center');
  await page.click('#center');
  assert.is(await visibleLeaves(), coverageEndpoints);
  assert.equal(pageErrors, []);
  assert.equal(consoleErrors, []);
});

test('screenshot saved to test/artifacts/coverage-sunburst.png', async () => {
  mkdirSync(join(ROOT, 'test', 'artifacts'), { recursive: true });
  await page.mouse.move(0, 0);
  await page.screenshot({ path: SCREENSHOT as `${string}.png`, fullPage: false });
  assert.ok(statSync(SCREENSHOT).size > 10_000);
});

test.run();
