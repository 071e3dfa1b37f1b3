import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  APISNOOP_INELIGIBLE_ENDPOINTS,
  CoverageCollector,
  loadCatalogueFile,
  mapAuditEvent,
  toApisnoopJson,
  type Catalogue,
  type CoverageReport,
} from '@kube-correlate/apicoverage';
import { apisnoopE2eEvents, loadSnoop, specPath, usageEvents, type SnoopCoverage } from '../harness/coverage.js';

/**
 * Our report against APISnoop's published coverage: audit events replaying APISnoop's e2e data
 * (one e2e.test request per endpoint and test name, as kube-apiserver audits it), mapped by
 * mapAuditEvent, must give APISnoop's `tested` and `conf_tested` for every endpoint, its test
 * lists, and its conformance-eligible counts.
 *
 * Known difference: kube-apiserver audits HEAD as verb get, so a HEAD connect request is only told
 * from a GET by its URI (APISnoop: "get" and the URI ends with HEAD). Where the mapping does not,
 * the HEAD operation's events land on its GET twin: those HEAD operations are listed as exceptions
 * (and must be HEAD operations whose events mapped to their GET twin, nothing else).
 */

const VERSIONS = ['1.35', '1.34', '1.33'];

/** APISnoop's ineligible list lacked these two when its 1.33 and 1.34 coverage files were made. */
const ADDED_TO_INELIGIBLE_LATER = ['listCoreV1ComponentStatus', 'readCoreV1ComponentStatus'];

interface Run {
  catalogue: Catalogue;
  snoop: SnoopCoverage;
  report: CoverageReport;
  /** Endpoints whose replayed events mapped elsewhere: operationId -> where they went. */
  mismapped: Map<string, string>;
  /** Endpoints hit by events built for another endpoint. */
  foreign: Set<string>;
  /** Endpoints used by the extra non-e2e clients. */
  used: string[];
}

const runs = new Map<string, Run>();

function run(v: string): Run {
  const cached = runs.get(v);
  if (cached) return cached;
  const catalogue = loadCatalogueFile(specPath(v));
  const snoop = loadSnoop(v);
  const { events, intended } = apisnoopE2eEvents(catalogue, snoop);
  // Real usage of endpoints APISnoop has untested: they must stay untested.
  const untested = snoop.endpoints.filter((s) => !s.tested && s.level === 'stable' && s.action !== 'connect').map((s) => s.endpoint);
  const used = untested.slice(0, 12);
  const usage = usageEvents(catalogue, used.map((endpoint, i) => ({ client: i % 4, endpoint, hits: 1 + i })));

  const mismapped = new Map<string, string>();
  const foreign = new Set<string>();
  const collector = new CoverageCollector(catalogue);
  events.forEach((e, i) => {
    const m = mapAuditEvent(catalogue, e);
    const want = intended[i]!;
    const got = m.type === 'endpoint' ? m.endpoint.operationId : `${m.type}`;
    if (got !== want) {
      mismapped.set(want, got);
      foreign.add(got);
    }
    assert.ok(collector.addEvent(e), 'each replayed event is its own request');
  });
  for (const e of usage) collector.addEvent(e);
  const report = collector.report({ release: `${v}.0`, spec: specPath(v), sources: ['replayed APISnoop e2e data'] });
  const r: Run = { catalogue, snoop, report, mismapped, foreign, used };
  runs.set(v, r);
  return r;
}

for (const v of VERSIONS) {
  test(`${v}: the same endpoints as APISnoop, every replayed event maps to its endpoint (HEAD twins aside)`, () => {
    const { report, snoop, mismapped } = run(v);
    assert.equal(report.endpoints.map((e) => e.endpoint.operationId).sort(), snoop.endpoints.map((s) => s.endpoint).sort());
    assert.is(report.summary.totalEndpoints, snoop['total endpoints']);
    for (const [from, to] of mismapped) {
      assert.match(from, /^connectCoreV1Head/, `${from} mapped to ${to}`);
      assert.is(to, from.replace('Head', 'Get'), `${from}: a HEAD audited as get lands on its GET twin`);
    }
    assert.is(report.summary.unmatchedRequests, 0, JSON.stringify(report.unmatched.byReason.slice(0, 3)));
    assert.is(report.summary.nonResourceRequests, 0);
  });

  test(`${v}: tested and conf_tested equal APISnoop's for every endpoint the events hit; untested endpoints stay untested`, () => {
    const { report, snoop, mismapped, foreign, used } = run(v);
    const ours = new Map(report.endpoints.map((e) => [e.endpoint.operationId, e]));
    const diffs: string[] = [];
    let compared = 0;
    for (const s of snoop.endpoints) {
      const e = ours.get(s.endpoint)!;
      if (mismapped.has(s.endpoint)) {
        assert.is(e.tested, false, `${s.endpoint}: its events went to ${mismapped.get(s.endpoint)}`);
        continue;
      }
      if (!s.tested) {
        if (e.tested || e.conf_tested) diffs.push(`${s.endpoint}: APISnoop untested, ours tested=${e.tested} conf_tested=${e.conf_tested}`);
        continue;
      }
      compared++;
      if (e.tested !== s.tested || e.conf_tested !== s.conf_tested) {
        diffs.push(`${s.endpoint}: APISnoop tested=${s.tested} conf_tested=${s.conf_tested}, ours tested=${e.tested} conf_tested=${e.conf_tested}`);
      }
      const want = [...new Set(s.tests.filter((t): t is string => t !== null))].sort();
      if (!foreign.has(s.endpoint) && JSON.stringify(e.tests) !== JSON.stringify(want)) diffs.push(`${s.endpoint}: tests differ (${e.tests.length} vs ${want.length})`);
    }
    assert.equal(diffs, [], diffs.slice(0, 20).join('\n'));
    assert.ok(compared > 450, `${compared} tested endpoints compared`);
    assert.is(report.summary.testedEndpoints, snoop['tested endpoints'] - mismapped.size);
    for (const id of used) {
      const e = ours.get(id)!;
      assert.ok(e.usageHits > 0 && !e.tested && !e.conf_tested, `${id}: used by clients, still untested`);
    }
    assert.ok(used.every((id) => report.untestedStableByUsage.some((e) => e.endpoint.operationId === id)), 'the used untested stable endpoints are ranked');
    assert.equal(report.untestedStableByUsage.slice(0, 3).map((e) => e.usageHits), [12, 11, 10]);
  });

  test(`${v}: conformance eligible endpoints follow APISnoop's rule (stable, not deprecated, not ineligible)`, () => {
    const { report, snoop, mismapped, catalogue } = run(v);
    const snoopConf = new Map(snoop.endpoints.map((s) => [s.endpoint, s.conf_tested]));
    // HEAD operations whose events went to their GET twin cannot be conformance-tested here.
    const lostEligible = [...mismapped.keys()].filter((id) => report.endpoints.find((e) => e.endpoint.operationId === id)!.eligible && snoopConf.get(id)).length;
    const s = report.summary;
    const json = toApisnoopJson(report);
    if (v === '1.35') {
      assert.is(s.eligibleEndpoints, 549);
      assert.is(s.eligibleEndpoints, snoop['total conformance eligible endpoints']);
      assert.is(s.testedEligibleEndpoints + lostEligible, snoop['tested conformance eligible endpoints']);
      assert.is(json['total conformance eligible endpoints'], 549);
    } else {
      // The two ComponentStatus endpoints joined APISnoop's ineligible list after these files were made.
      assert.is(s.eligibleEndpoints, snoop['total conformance eligible endpoints'] - ADDED_TO_INELIGIBLE_LATER.length);
      const older = new CoverageCollector(catalogue);
      const then = older.report({ ineligible: APISNOOP_INELIGIBLE_ENDPOINTS.filter((i) => !ADDED_TO_INELIGIBLE_LATER.includes(i.endpoint)) });
      assert.is(then.summary.eligibleEndpoints, snoop['total conformance eligible endpoints'], 'with the list of the time, APISnoop exactly');
      // APISnoop's "tested" count of an older release comes from the latest audit data and the
      // tests' promotion releases, not from that release's flags: compare with its flags instead.
      const own = snoop.endpoints.filter((x) => x.conf_tested && report.endpoints.find((e) => e.endpoint.operationId === x.endpoint)!.eligible).length;
      assert.is(s.testedEligibleEndpoints + lostEligible, own);
    }
  });
}

test('1.35: the JSON report has APISnoop\'s numbers in APISnoop\'s keys', () => {
  const { report, snoop, mismapped } = run('1.35');
  const json = toApisnoopJson(report) as Record<string, unknown> & { endpoints: Array<{ endpoint: string; tested: boolean; conf_tested: boolean; tests: string[] }> };
  assert.is(json['total endpoints'], snoop['total endpoints']);
  assert.is(json['tested endpoints'], snoop['tested endpoints'] - mismapped.size);
  assert.is(json['release'], '1.35.0');
  const byId = new Map(json.endpoints.map((e) => [e.endpoint, e]));
  const s = snoop.endpoints.find((x) => x.endpoint === 'createAppsV1NamespacedDeployment')!;
  const o = byId.get('createAppsV1NamespacedDeployment')!;
  assert.equal([o.tested, o.conf_tested, o.tests], [s.tested, s.conf_tested, [...new Set(s.tests.filter((t): t is string => t !== null))].sort()]);
});

test.run();
