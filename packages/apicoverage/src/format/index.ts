/** The report's output formats. */
import type { CoverageReport } from '../report.js';
import { formatCsv } from './csv.js';
import { formatHtml } from './html.js';
import { formatJson } from './json.js';
import { formatTable } from './table.js';

export const REPORT_FORMATS = ['table', 'csv', 'json', 'html'] as const;
export type ReportFormat = (typeof REPORT_FORMATS)[number];

export function isReportFormat(s: string): s is ReportFormat {
  return (REPORT_FORMATS as readonly string[]).includes(s);
}

/** The report in one of {@link REPORT_FORMATS}. */
export function formatReport(report: CoverageReport, format: ReportFormat): string {
  switch (format) {
    case 'table':
      return formatTable(report);
    case 'csv':
      return formatCsv(report);
    case 'json':
      return formatJson(report);
    case 'html':
      return formatHtml(report);
  }
}
