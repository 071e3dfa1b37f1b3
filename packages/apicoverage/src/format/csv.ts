/**
 * One row per coverage endpoint (APISnoop's coverage spreadsheet), RFC 4180: CRLF line ends, a
 * header row, fields with a comma, a double quote, CR or LF quoted with the quotes doubled.
 */
import type { CoverageReport } from '../report.js';

/** One field, quoted when RFC 4180 needs it. */
export function csvField(value: string | number | boolean): string {
  const s = String(value);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function csvRow(values: ReadonlyArray<string | number | boolean>): string {
  return values.map(csvField).join(',') + '\r\n';
}

export const CSV_COLUMNS = [
  'endpoint',
  'level',
  'category',
  'group',
  'version',
  'kind',
  'action',
  'method',
  'path',
  'hits',
  'usage_hits',
  'e2e_hits',
  'tested',
  'conf_tested',
  'conformance_eligible',
  'ineligible_reason',
  'identities',
  'top_identities',
  'tests',
  'description',
] as const;

/** At most this many identities in `top_identities` (`key=hits;key=hits`). */
const TOP_IDENTITIES = 5;

export function formatCsv(report: CoverageReport): string {
  let out = csvRow(CSV_COLUMNS);
  for (const e of report.endpoints) {
    const ep = e.endpoint;
    out += csvRow([
      ep.operationId,
      ep.level,
      ep.category,
      ep.group,
      ep.version,
      ep.kind,
      ep.action,
      ep.method,
      ep.path,
      e.hits,
      e.usageHits,
      e.e2eHits,
      e.tested,
      e.conf_tested,
      e.eligible,
      e.ineligibleReason,
      e.identities.length,
      e.identities.slice(0, TOP_IDENTITIES).map((i) => `${i.key}=${i.hits}`).join(';'),
      e.tests.length,
      ep.description,
    ]);
  }
  return out;
}
