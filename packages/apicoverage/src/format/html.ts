/**
 * The report as ONE self-contained HTML file (inline CSS and JS, no network): APISnoop's sunburst,
 * level -> category -> endpoint, drawn as SVG arcs by the page's own script, plus the summary and
 * ranked tables.
 *
 * - Colors: conformance-tested, tested (e2e, not conformance), hit by clients but untested,
 *   untested and not hit.
 * - By default every endpoint has the same angle (as in APISnoop). Choosing an identity in the
 *   select box sizes each endpoint by log2(1 + that identity's requests to it) and hides the
 *   endpoints it did not use; the center shows what it did.
 * - Clicking a level or a category zooms into it; clicking the center zooms out.
 * - Tooltips on every arc. Every endpoint leaf is a `<path data-endpoint="<operationId>">` (also
 *   `data-status`, `data-weight`), present whether or not it is visible.
 */
import { LEVELS, type CoverageReport } from '../report.js';
import { IDENTITY_COLUMNS, identityRows, UNTESTED_COLUMNS, untestedRows, type Cell } from './rows.js';

/** `&`, `<`, `>`, `"`, `'` escaped for text and attribute values. */
export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** JSON that is safe inside `<script type="application/json">` (no `</script>`, no `<!--`). */
function scriptJson(value: unknown): string {
  return JSON.stringify(value).replace(/</g, '\\u003c').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
}

/** Tests named per endpoint in the tooltip. */
const TOOLTIP_TESTS = 3;

/** What the page's script reads. */
function pageData(report: CoverageReport) {
  return {
    release: report.meta.release,
    endpoints: report.endpoints.map((e) => ({
      id: e.endpoint.operationId,
      level: e.endpoint.level,
      category: e.endpoint.category || '(none)',
      method: e.endpoint.method,
      path: e.endpoint.path,
      kind: e.endpoint.kind,
      hits: e.hits,
      usage: e.usageHits,
      e2e: e.e2eHits,
      tested: e.tested,
      conf: e.conf_tested,
      eligible: e.eligible,
      why: e.ineligibleReason,
      ids: Object.fromEntries(e.identities.map((i) => [i.key, i.hits])),
      tests: e.tests.length,
      testNames: e.tests.slice(0, TOOLTIP_TESTS),
    })),
    identities: report.identities.map((i) => ({ key: i.key, requests: i.requests, endpoints: i.endpoints.length })),
  };
}

function pct(n: number, d: number): string {
  return d === 0 ? '-' : `${((100 * n) / d).toFixed(1)}%`;
}


function htmlTable(head: readonly string[], rows: ReadonlyArray<readonly Cell[]>, numeric: ReadonlySet<number> = new Set()): string {
  const th = head.map((h, i) => `<th${numeric.has(i) ? ' class="num"' : ''}>${escapeHtml(h)}</th>`).join('');
  const body = rows
    .map((r) => `<tr>${r.map((c, i) => `<td${numeric.has(i) ? ' class="num"' : ''}>${escapeHtml(String(c))}</td>`).join('')}</tr>`)
    .join('\n');
  return `<table><thead><tr>${th}</tr></thead><tbody>\n${body}\n</tbody></table>`;
}

const CSS = `
:root { --fg: #222; --muted: #666; --line: #ddd; }
* { box-sizing: border-box; }
body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); margin: 0; padding: 16px 24px; background: #fff; }
h1 { font-size: 20px; margin: 0 0 4px; }
h2 { font-size: 16px; margin: 28px 0 8px; }
.muted { color: var(--muted); }
.top { display: flex; flex-wrap: wrap; gap: 24px; align-items: flex-start; }
#chart { flex: 0 0 auto; }
#chart svg { width: 640px; height: 640px; display: block; }
#chart path { stroke: #fff; stroke-width: 0.6; cursor: pointer; }
#chart path:hover { stroke: #000; stroke-width: 1.2; }
#center { cursor: zoom-out; }
.side { flex: 1 1 320px; min-width: 300px; }
.controls label { font-weight: 600; margin-right: 8px; }
.controls select { font: inherit; padding: 2px 4px; max-width: 100%; }
.legend { list-style: none; padding: 0; margin: 12px 0; }
.legend li { margin: 4px 0; }
.swatch { display: inline-block; width: 14px; height: 14px; vertical-align: -2px; margin-right: 6px; border-radius: 2px; }
table { border-collapse: collapse; margin: 4px 0 8px; }
th, td { border-bottom: 1px solid var(--line); padding: 3px 10px 3px 0; text-align: left; vertical-align: top; }
th { font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
#tip { position: fixed; pointer-events: none; background: rgba(255,255,255,0.97); border: 1px solid #999; border-radius: 4px; padding: 6px 8px; font-size: 12px; max-width: 460px; box-shadow: 0 2px 6px rgba(0,0,0,0.2); display: none; z-index: 10; }
#tip b { display: block; font-size: 13px; margin-bottom: 2px; word-break: break-all; }
#tip div { word-break: break-word; }
#selection { margin-top: 8px; }
`;

/** The page's script: builds and updates the sunburst (no template literals, no libraries). */
const SCRIPT = String.raw`
(function () {
  'use strict';
  var data = JSON.parse(document.getElementById('coverage-data').textContent);
  var SVGNS = 'http://www.w3.org/2000/svg';
  var TAU = Math.PI * 2;
  var RINGS = [[88, 140], [140, 205], [205, 300]];
  var LEVEL_COLORS = { stable: '#3465a4', beta: '#8e6bbf', alpha: '#c0504d' };
  var STATUS = {
    conf: '#1b7f3b',
    tested: '#8bc34a',
    hit: '#f39c12',
    none: '#d3d3d3'
  };
  var STATUS_TEXT = {
    conf: 'conformance-tested',
    tested: 'tested by e2e, not by a conformance test',
    hit: 'used by clients, untested',
    none: 'untested, not hit'
  };
  function statusOf(e) { return e.conf ? 'conf' : e.tested ? 'tested' : e.usage > 0 ? 'hit' : 'none'; }

  var root = { name: 'all endpoints', depth: 0, parent: null, children: [] };
  var byLevel = {};
  data.endpoints.forEach(function (e) {
    var lv = byLevel[e.level];
    if (!lv) { lv = byLevel[e.level] = { name: e.level, depth: 1, parent: root, children: [], cats: {} }; root.children.push(lv); }
    var cat = lv.cats[e.category];
    if (!cat) { cat = lv.cats[e.category] = { name: e.category, depth: 2, parent: lv, children: [] }; lv.children.push(cat); }
    cat.children.push({ name: e.id, depth: 3, parent: cat, ep: e, children: null });
  });

  var identity = '';
  var focus = root;
  var svg = document.querySelector('#chart svg');
  var gArcs = document.getElementById('arcs');
  var tip = document.getElementById('tip');
  var centerTitle = document.getElementById('center-title');
  var centerSub = document.getElementById('center-sub');
  var centerSub2 = document.getElementById('center-sub2');
  var selection = document.getElementById('selection');
  var nodes = [];

  function each(n, f) { f(n); if (n.children) n.children.forEach(function (c) { each(c, f); }); }

  function point(r, a) { return (r * Math.sin(a)).toFixed(2) + ' ' + (-r * Math.cos(a)).toFixed(2); }
  function sector(a0, a1, r0, r1) {
    var large = a1 - a0 > Math.PI ? 1 : 0;
    var d = 'M' + point(r1, a0) + 'A' + r1 + ' ' + r1 + ' 0 ' + large + ' 1 ' + point(r1, a1);
    if (r0 > 0) d += 'L' + point(r0, a1) + 'A' + r0 + ' ' + r0 + ' 0 ' + large + ' 0 ' + point(r0, a0);
    else d += 'L0 0';
    return d + 'Z';
  }
  function arcPath(a0, a1, r0, r1) {
    var span = a1 - a0;
    if (!(span > 1e-6)) return '';
    if (span >= TAU - 1e-6) return sector(a0, a0 + Math.PI, r0, r1) + sector(a0 + Math.PI, a0 + TAU, r0, r1);
    return sector(a0, a1, r0, r1);
  }

  function weight(e) {
    if (!identity) return 1;
    var h = e.ids[identity] || 0;
    return h > 0 ? Math.log2(1 + h) : 0;
  }

  function hexToRgb(h) { return [parseInt(h.slice(1, 3), 16), parseInt(h.slice(3, 5), 16), parseInt(h.slice(5, 7), 16)]; }
  function mix(a, b, t) {
    var x = hexToRgb(a), y = hexToRgb(b);
    return 'rgb(' + x.map(function (v, i) { return Math.round(v + (y[i] - v) * t); }).join(',') + ')';
  }

  function create() {
    each(root, function (n) {
      if (n.depth === 0) return;
      var p = document.createElementNS(SVGNS, 'path');
      if (n.ep) {
        p.setAttribute('data-endpoint', n.ep.id);
        p.setAttribute('data-status', statusOf(n.ep));
      } else if (n.depth === 1) {
        p.setAttribute('data-level', n.name);
      } else {
        p.setAttribute('data-category', n.parent.name + '/' + n.name);
      }
      p.addEventListener('mousemove', function (ev) { showTip(n, ev); });
      p.addEventListener('mouseleave', hideTip);
      p.addEventListener('click', function () { zoom(n); });
      n.el = p;
      nodes.push(n);
      gArcs.appendChild(p);
    });
  }

  function sum(n) {
    if (n.ep) { n.w = weight(n.ep); return n.w; }
    n.w = 0;
    n.children.forEach(function (c) { n.w += sum(c); });
    return n.w;
  }
  function place(n, a0, a1) {
    n.a0 = a0; n.a1 = a1;
    if (!n.children) return;
    var a = a0;
    n.children.forEach(function (c) {
      var span = n.w > 0 ? (a1 - a0) * c.w / n.w : 0;
      place(c, a, a + span);
      a += span;
    });
  }

  function counts(n) {
    var c = { endpoints: 0, shown: 0, shownConf: 0, hit: 0, tested: 0, conf: 0, requests: 0 };
    each(n, function (m) {
      if (!m.ep) return;
      c.endpoints++;
      if (m.w > 0) { c.shown++; if (m.ep.conf) c.shownConf++; }
      if (m.ep.hits > 0) c.hit++;
      if (m.ep.tested) c.tested++;
      if (m.ep.conf) c.conf++;
      c.requests += identity ? (m.ep.ids[identity] || 0) : m.ep.hits;
    });
    return c;
  }

  function render() {
    sum(root);
    nodes.forEach(function (n) { n.a0 = 0; n.a1 = 0; });
    for (var a = focus; a; a = a.parent) { a.a0 = 0; a.a1 = TAU; }
    place(focus, 0, TAU);
    var maxW = 0;
    nodes.forEach(function (n) { if (n.ep && n.w > maxW) maxW = n.w; });
    nodes.forEach(function (n) {
      var ring = RINGS[n.depth - 1];
      var show = n.a1 - n.a0 > 1e-6 && n.w > 0;
      n.el.setAttribute('d', show ? arcPath(n.a0, n.a1, ring[0], ring[1]) : '');
      if (n.ep) {
        n.el.setAttribute('data-weight', String(Math.round(n.w * 1000) / 1000));
        n.el.setAttribute('fill', STATUS[statusOf(n.ep)]);
        n.el.setAttribute('fill-opacity', identity && maxW > 0 ? String(0.45 + 0.55 * n.w / maxW) : '1');
      } else if (n.depth === 1) {
        n.el.setAttribute('fill', LEVEL_COLORS[n.name] || '#777');
      } else {
        var c = counts(n);
        var frac = identity ? (c.shown ? c.shownConf / c.shown : 0) : (c.endpoints ? c.conf / c.endpoints : 0);
        n.el.setAttribute('fill', mix('#d3d3d3', '#1b7f3b', frac));
      }
    });
    var fc = counts(focus);
    var title = focus.depth === 0 ? 'all endpoints' : focus.depth === 1 ? focus.name : focus.parent.name + ' / ' + focus.name;
    centerTitle.textContent = title;
    if (identity) {
      centerSub.textContent = fc.shown + ' of ' + fc.endpoints + ' endpoints used';
      centerSub2.textContent = fc.requests + ' requests';
    } else {
      centerSub.textContent = fc.endpoints + ' endpoints';
      centerSub2.textContent = (fc.endpoints ? (100 * fc.conf / fc.endpoints).toFixed(1) : '0') + '% conformance-tested';
    }
    var all = counts(root);
    selection.textContent = identity
      ? identity + ': ' + all.requests + ' requests to ' + all.shown + ' endpoints'
      : 'all clients: ' + all.hit + ' of ' + all.endpoints + ' endpoints hit';
    svg.setAttribute('data-identity', identity);
  }

  function zoom(n) {
    if (n.ep) n = n.parent;
    focus = n === focus ? (n.parent || root) : n;
    render();
  }

  function line(parent, text, bold) {
    var el = document.createElement(bold ? 'b' : 'div');
    el.textContent = text;
    parent.appendChild(el);
  }
  function showTip(n, ev) {
    tip.textContent = '';
    if (n.ep) {
      var e = n.ep;
      line(tip, e.id, true);
      line(tip, e.level + ' / ' + e.category + (e.kind ? ' / ' + e.kind : ''));
      line(tip, e.method + ' ' + e.path);
      line(tip, STATUS_TEXT[statusOf(e)] + (e.eligible ? ', conformance eligible' : ', not eligible: ' + e.why));
      line(tip, 'requests: ' + e.hits + ' (clients ' + e.usage + ', e2e ' + e.e2e + ')' + (identity ? '; ' + identity + ': ' + (e.ids[identity] || 0) : ''));
      var ids = Object.keys(e.ids).sort(function (a, b) { return e.ids[b] - e.ids[a]; }).slice(0, 5);
      if (ids.length) line(tip, 'by: ' + ids.map(function (k) { return k + ' (' + e.ids[k] + ')'; }).join(', '));
      if (e.tests) line(tip, e.tests + ' test' + (e.tests === 1 ? '' : 's') + ', e.g. ' + e.testNames.map(function (t) { return t || '(no test name)'; }).join(' | '));
    } else {
      var c = counts(n);
      line(tip, n.depth === 1 ? n.name : n.parent.name + ' / ' + n.name, true);
      line(tip, c.endpoints + ' endpoints: ' + c.conf + ' conformance-tested, ' + c.tested + ' tested, ' + c.hit + ' hit');
      if (identity) line(tip, identity + ': ' + c.requests + ' requests to ' + c.shown + ' endpoints');
      line(tip, n === focus ? 'click to zoom out' : 'click to zoom in');
    }
    tip.style.display = 'block';
    var x = ev.clientX + 14, y = ev.clientY + 14;
    var w = tip.offsetWidth, h = tip.offsetHeight;
    if (x + w > window.innerWidth - 4) x = Math.max(4, ev.clientX - w - 14);
    if (y + h > window.innerHeight - 4) y = Math.max(4, ev.clientY - h - 14);
    tip.style.left = x + 'px';
    tip.style.top = y + 'px';
  }
  function hideTip() { tip.style.display = 'none'; }

  var select = document.getElementById('identity');
  data.identities.forEach(function (i) {
    var o = document.createElement('option');
    o.value = i.key;
    o.textContent = i.key + ' (' + i.requests + ' requests, ' + i.endpoints + ' endpoints)';
    select.appendChild(o);
  });
  select.addEventListener('change', function () { identity = select.value; render(); });
  document.getElementById('center').addEventListener('click', function () { focus = focus.parent || root; render(); });

  create();
  render();
  document.body.setAttribute('data-ready', 'true');
})();
`;

export interface HtmlOptions {
  title?: string;
  /** Rows of the ranked tables. Default 50. */
  top?: number;
}

export function formatHtml(report: CoverageReport, options: HtmlOptions = {}): string {
  const { meta, summary: s } = report;
  const top = options.top ?? 50;
  const title = options.title ?? `API coverage${meta.version || meta.release ? ` of Kubernetes ${meta.version || meta.release}` : ''}`;
  const num4 = new Set([1, 2, 3, 4, 5, 6, 7]);
  const levelRows: Cell[][] = LEVELS.map((l) => {
    const c = s.byLevel[l];
    return [l, c.total, c.hit, pct(c.hit, c.total), c.tested, pct(c.tested, c.total), c.confTested, pct(c.confTested, c.total)];
  });
  levelRows.push(['all', s.totalEndpoints, s.hitEndpoints, pct(s.hitEndpoints, s.totalEndpoints), s.testedEndpoints, pct(s.testedEndpoints, s.totalEndpoints), s.confTestedEndpoints, pct(s.confTestedEndpoints, s.totalEndpoints)]);
  const legend = [
    ['#1b7f3b', 'conformance-tested'],
    ['#8bc34a', 'tested by e2e, not by a conformance test'],
    ['#f39c12', 'used by clients, untested'],
    ['#d3d3d3', 'untested, not hit'],
  ]
    .map(([c, t]) => `<li><span class="swatch" style="background:${c}"></span>${escapeHtml(t!)}</li>`)
    .join('');
  const levelLegend = (['stable', 'beta', 'alpha'] as const)
    .map((l) => `<li><span class="swatch" style="background:${{ stable: '#3465a4', beta: '#8e6bbf', alpha: '#c0504d' }[l]}"></span>${l} (inner ring)</li>`)
    .join('');

  const sections: string[] = [];
  sections.push(
    `<h2>Stable endpoints without a conformance test, by use</h2><p class="muted">Requests from clients other than e2e.test; ${report.untestedStableByUsage.length} endpoints.</p>` +
      (report.untestedStableByUsage.length === 0 ? '' : htmlTable(
        UNTESTED_COLUMNS,
        untestedRows(report, top),
        new Set([0, 2]),
      )),
  );
  sections.push(
    `<h2>Identities</h2><p class="muted">${report.identities.length} clients, grouped by user agent and service account (KEP-16).</p>` +
      htmlTable(
        IDENTITY_COLUMNS,
        identityRows(report, top),
        num4,
      ),
  );
  if (report.nonResource.total) {
    sections.push(`<h2>Non-resource requests</h2>` + htmlTable(['kind', 'requests'], report.nonResource.byKind.map((k) => [k.kind, k.requests]), new Set([1])));
  }
  if (report.unmatched.total) {
    sections.push(
      `<h2>Unmatched requests</h2>` +
        htmlTable(['requests', 'reason', 'e.g.'], report.unmatched.byReason.slice(0, top).map((u) => [u.requests, u.reason, u.samples[0] ?? '']), new Set([0])),
    );
  }

  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>${escapeHtml(title)}</title>
<style>${CSS}</style>
</head>
<body>
<h1>${escapeHtml(title)}</h1>
<p class="muted">${meta.spec ? `spec ${escapeHtml(meta.spec)}; ` : ''}${meta.sources.length ? `audit events from ${escapeHtml(meta.sources.join(', '))}; ` : ''}generated ${escapeHtml(meta.generated)}</p>
<div class="top">
<div id="chart">
<svg viewBox="-310 -310 620 620" role="img" aria-label="sunburst of endpoints by level and category" data-identity="">
<g id="arcs"></g>
<g id="center"><circle r="86" fill="#fff"></circle>
<text id="center-title" text-anchor="middle" y="-10" font-size="14" font-weight="600"></text>
<text id="center-sub" text-anchor="middle" y="10" font-size="11" fill="#444"></text>
<text id="center-sub2" text-anchor="middle" y="26" font-size="11" fill="#444"></text>
</g>
</svg>
</div>
<div class="side">
<div class="controls"><label for="identity">Identity</label><select id="identity"><option value="">(all clients: every endpoint the same size)</option></select></div>
<div id="selection" class="muted"></div>
<ul class="legend">${legend}</ul>
<ul class="legend">${levelLegend}<li class="muted">middle ring: categories, greener when more of their endpoints are conformance-tested; outer ring: endpoints</li></ul>
${htmlTable(['level', 'endpoints', 'hit', '%', 'tested', '%', 'conformance', '%'], levelRows, num4)}
<p>Conformance eligible endpoints: <b>${s.eligibleEndpoints}</b>, conformance-tested ${s.testedEligibleEndpoints} (${pct(s.testedEligibleEndpoints, s.eligibleEndpoints)})${
    s.newEligibleEndpoints !== null ? `; new in this release ${s.newEligibleEndpoints}, of them tested ${s.newTestedEligibleEndpoints}` : ''
  }.<br>Requests: ${s.requests} (endpoint ${s.endpointRequests}, non-resource ${s.nonResourceRequests}, unmatched ${s.unmatchedRequests}, watch endpoints ${s.excludedRequests}); unparseable lines ${s.unparseable}.</p>
</div>
</div>
${sections.join('\n')}
<div id="tip" role="tooltip"></div>
<script type="application/json" id="coverage-data">${scriptJson(pageData(report))}</script>
<script>${SCRIPT}</script>
</body>
</html>
`;
}
