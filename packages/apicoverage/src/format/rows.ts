import type { CoverageReport } from '../report.js';

/**
 * The ranked sections the terminal table and the HTML page both show, as rows of cells: one
 * definition of their columns, so the two formats cannot drift apart.
 */
export type Cell = string | number;

export const UNTESTED_COLUMNS = ['#', 'endpoint', 'requests', 'tested', 'eligible', 'top identities'] as const;

/** Stable endpoints without a conformance test, ranked by use from clients other than e2e.test. */
export function untestedRows(report: CoverageReport, top: number): Cell[][] {
  return report.untestedStableByUsage.slice(0, top).map((e, i) => [
    i + 1,
    e.endpoint.operationId,
    e.usageHits,
    e.tested ? 'e2e' : 'no',
    e.eligible ? 'yes' : 'no',
    e.identities.slice(0, 3).map((x) => `${x.key} (${x.hits})`).join(', '),
  ]);
}

export const IDENTITY_COLUMNS = ['identity', 'requests', 'endpoints', 'stable', 'beta', 'alpha', 'non-resource', 'unmatched', 'top categories'] as const;

/** Client identities with their usage. */
export function identityRows(report: CoverageReport, top: number): Cell[][] {
  return report.identities.slice(0, top).map((id) => [
    id.key,
    id.requests,
    id.endpoints.length,
    id.levels.stable.endpoints,
    id.levels.beta.endpoints,
    id.levels.alpha.endpoints,
    id.nonResource,
    id.unmatched,
    id.categories.slice(0, 3).map((c) => `${c.category} (${c.hits})`).join(', '),
  ]);
}
