/** The report as aligned plain-text tables for a terminal. */
import { LEVELS, type CoverageReport } from '../report.js';
import { identityRows, untestedRows } from './rows.js';

export type Align = 'left' | 'right';

export interface Column {
  title: string;
  align?: Align;
  /** Longer cells are cut with '…'. */
  max?: number;
}

function width(s: string): number {
  return [...s].length;
}

function cut(s: string, max: number | undefined): string {
  if (max === undefined || width(s) <= max) return s;
  return [...s].slice(0, Math.max(1, max - 1)).join('') + '…';
}

/** Rows under a header, columns padded to their widest cell (two spaces apart), no trailing blanks. */
export function renderTable(columns: readonly Column[], rows: ReadonlyArray<ReadonlyArray<string | number>>): string {
  const cells = rows.map((r) => columns.map((c, i) => cut(String(r[i] ?? ''), c.max)));
  const widths = columns.map((c, i) => Math.max(width(c.title), ...cells.map((r) => width(r[i]!))));
  const line = (r: readonly string[]) =>
    r
      .map((s, i) => {
        const pad = ' '.repeat(widths[i]! - width(s));
        return columns[i]!.align === 'right' ? pad + s : s + pad;
      })
      .join('  ')
      .trimEnd() + '\n';
  return line(columns.map((c) => c.title)) + line(widths.map((w) => '-'.repeat(w))) + cells.map(line).join('');
}

function pct(n: number, d: number): string {
  return d === 0 ? '-' : `${((100 * n) / d).toFixed(1)}%`;
}

export interface TableOptions {
  /** Rows of the ranked sections (untested endpoints, identities, unmatched reasons). Default 20. */
  top?: number;
}

export function formatTable(report: CoverageReport, options: TableOptions = {}): string {
  const top = options.top ?? 20;
  const { meta, summary: s } = report;
  let out = '';
  out += `API coverage${meta.version || meta.release ? ` of Kubernetes ${meta.version || meta.release}` : ''}${meta.spec ? ` (spec ${meta.spec})` : ''}\n`;
  if (meta.sources.length) out += `audit events from ${meta.sources.join(', ')}\n`;
  out +=
    `requests: ${s.requests} (endpoint ${s.endpointRequests}, non-resource ${s.nonResourceRequests}, unmatched ${s.unmatchedRequests}, ` +
    `watch endpoints ${s.excludedRequests}); further stages of counted requests ${s.duplicateStages}; unparseable lines ${s.unparseable}\n\n`;

  const levelRows = LEVELS.map((l) => {
    const c = s.byLevel[l];
    return [l, c.total, c.hit, pct(c.hit, c.total), c.tested, pct(c.tested, c.total), c.confTested, pct(c.confTested, c.total)];
  });
  levelRows.push(['all', s.totalEndpoints, s.hitEndpoints, pct(s.hitEndpoints, s.totalEndpoints), s.testedEndpoints, pct(s.testedEndpoints, s.totalEndpoints), s.confTestedEndpoints, pct(s.confTestedEndpoints, s.totalEndpoints)]);
  const r = { align: 'right' as const };
  out += renderTable(
    [{ title: 'level' }, { title: 'endpoints', ...r }, { title: 'hit', ...r }, { title: '%', ...r }, { title: 'tested', ...r }, { title: '%', ...r }, { title: 'conformance', ...r }, { title: '%', ...r }],
    levelRows,
  );
  out += `\nconformance eligible endpoints: ${s.eligibleEndpoints}, conformance-tested ${s.testedEligibleEndpoints} (${pct(s.testedEligibleEndpoints, s.eligibleEndpoints)})`;
  if (s.newEligibleEndpoints !== null) out += `; new in this release ${s.newEligibleEndpoints}, of them tested ${s.newTestedEligibleEndpoints}`;
  out += `\nhit by clients other than e2e.test but not tested: ${s.hitUntestedEndpoints}\n`;

  out += `\nstable endpoints without a conformance test, by use (clients other than e2e.test): ${report.untestedStableByUsage.length}\n`;
  if (report.untestedStableByUsage.length) {
    out += renderTable(
      [{ title: '#', ...r }, { title: 'endpoint' }, { title: 'requests', ...r }, { title: 'tested' }, { title: 'eligible' }, { title: 'top identities', max: 70 }],
      untestedRows(report, top),
    );
  }

  out += `\nidentities: ${report.identities.length}\n`;
  if (report.identities.length) {
    out += renderTable(
      [
        { title: 'identity', max: 60 },
        { title: 'requests', ...r },
        { title: 'endpoints', ...r },
        { title: 'stable', ...r },
        { title: 'beta', ...r },
        { title: 'alpha', ...r },
        { title: 'non-resource', ...r },
        { title: 'unmatched', ...r },
        { title: 'top categories', max: 50 },
      ],
      identityRows(report, top),
    );
  }

  if (report.nonResource.total) {
    out += `\nnon-resource requests: ${report.nonResource.total}\n`;
    out += renderTable([{ title: 'kind' }, { title: 'requests', ...r }], report.nonResource.byKind.map((k) => [k.kind, k.requests]));
  }
  if (report.unmatched.total) {
    out += `\nunmatched requests: ${report.unmatched.total}\n`;
    out += renderTable(
      [{ title: 'requests', ...r }, { title: 'reason', max: 90 }, { title: 'e.g.', max: 80 }],
      report.unmatched.byReason.slice(0, top).map((u) => [u.requests, u.reason, u.samples[0] ?? '']),
    );
  }
  if (report.excluded.total) {
    out += `\nrequests to watch endpoints (not counted in coverage): ${report.excluded.total}\n`;
  }
  if (report.unparseable.total) {
    out += `\nunparseable lines: ${report.unparseable.total}\n`;
    for (const sample of report.unparseable.samples) out += `  ${sample}\n`;
  }
  return out;
}
