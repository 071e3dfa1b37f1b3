/**
 * APISnoop's coverage file (`resources/coverage/<release>.json`): the same top-level keys in the
 * same order, the same endpoint objects, plus what APISnoop does not have under `kube-correlate`.
 *
 * Differences in values, not in shape: an untested endpoint's `tests` is `[]` (APISnoop's SQL
 * leaves `[null]` there); `tests[]` entries know only the test name and whether it is a
 * conformance test (`file`, `testname`, `promotion_release` are null: the audit log does not say);
 * the "new ..." counts are null without a previous release's spec.
 */
import type { CoverageReport, EndpointCoverage } from '../report.js';

/** One of APISnoop's `endpoints[]`, keys in APISnoop's order. */
export interface ApisnoopEndpoint {
  kind: string | null;
  path: string;
  group: string | null;
  level: string;
  tests: string[];
  action: string | null;
  tested: boolean;
  release: string;
  version: string | null;
  category: string;
  endpoint: string;
  conf_tested: boolean;
  description: string | null;
}

export interface ApisnoopTest {
  file: string | null;
  test: string;
  release: string;
  testname: string | null;
  conformance_test: boolean;
  promotion_release: string | null;
}

/** The top-level keys of APISnoop's coverage file, in its order. */
export const APISNOOP_KEYS = [
  'spec',
  'tests',
  'release',
  'sources',
  'endpoints',
  'release_date',
  'total endpoints',
  'tested endpoints',
  'new conformance eligible endpoints',
  'total conformance eligible endpoints',
  'tested conformance eligible endpoints',
  'new tested conformance eligible endpoints',
] as const;

/** Our extra top-level key. */
export const EXTRA_KEY = 'kube-correlate';

/**
 * An endpoint as APISnoop writes it: kind, group, version and action come from
 * `x-kubernetes-group-version-kind` / `x-kubernetes-action` and are null where the spec has none
 * (discovery, /version, /logs).
 */
export function apisnoopEndpoint(e: EndpointCoverage, release: string): ApisnoopEndpoint {
  const ep = e.endpoint;
  const hasGvk = ep.kind !== '';
  return {
    kind: hasGvk ? ep.kind : null,
    path: ep.path,
    group: hasGvk ? ep.group : null,
    level: ep.level,
    tests: e.tests,
    action: ep.action === '' ? null : ep.action,
    tested: e.tested,
    release,
    version: hasGvk ? ep.version : null,
    category: ep.category,
    endpoint: ep.operationId,
    conf_tested: e.conf_tested,
    description: ep.description === '' ? null : ep.description,
  };
}

/** The report as an object in APISnoop's shape (plus `kube-correlate`). */
export function toApisnoopJson(report: CoverageReport): Record<string, unknown> {
  const { meta, summary: s } = report;
  const tests: ApisnoopTest[] = report.tests.map((t) => ({
    file: null,
    test: t.test,
    release: meta.release,
    testname: null,
    conformance_test: t.conformance,
    promotion_release: null,
  }));
  return {
    spec: meta.spec,
    tests,
    release: meta.release,
    sources: meta.sources,
    endpoints: report.endpoints.map((e) => apisnoopEndpoint(e, meta.release)),
    release_date: meta.releaseDate,
    'total endpoints': s.totalEndpoints,
    'tested endpoints': s.testedEndpoints,
    'new conformance eligible endpoints': s.newEligibleEndpoints,
    'total conformance eligible endpoints': s.eligibleEndpoints,
    'tested conformance eligible endpoints': s.testedEligibleEndpoints,
    'new tested conformance eligible endpoints': s.newTestedEligibleEndpoints,
    [EXTRA_KEY]: {
      generated: meta.generated,
      summary: s,
      endpoints: Object.fromEntries(
        report.endpoints
          .filter((e) => e.hits > 0 || !e.eligible)
          .map((e) => [
            e.endpoint.operationId,
            {
              hits: e.hits,
              e2eHits: e.e2eHits,
              usageHits: e.usageHits,
              eligible: e.eligible,
              ...(e.eligible ? {} : { ineligibleReason: e.ineligibleReason }),
              identities: Object.fromEntries(e.identities.map((i) => [i.key, i.hits])),
            },
          ]),
      ),
      untestedStableByUsage: report.untestedStableByUsage.map((e) => ({ endpoint: e.endpoint.operationId, usageHits: e.usageHits, tested: e.tested, eligible: e.eligible })),
      identities: report.identities,
      nonResource: report.nonResource,
      unmatched: report.unmatched,
      excluded: report.excluded,
      unparseable: report.unparseable,
    },
  };
}

export function formatJson(report: CoverageReport): string {
  return JSON.stringify(toApisnoopJson(report), null, 2) + '\n';
}
