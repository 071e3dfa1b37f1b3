export type { Endpoint, EndpointMatch, Identity, Level } from './types.js';
export { Catalogue, PathMatcher, buildCatalogue, groupVersionOfPath, isCoverageEndpoint, levelOf, loadCatalogueFile } from './catalogue.js';
export type { HttpMethod, MatchNode, PathMatch } from './catalogue.js';
export { mapAuditEvent, methodOfVerb } from './mapping.js';
export type { MappableAuditEvent } from './mapping.js';
export { KubeconfigError, fetchJson, fetchSpec, loadKubeconfig, parseKubeconfig } from './kubeconfig.js';
export type { FetchSpecOptions, KubeconfigOptions, KubeconfigTarget } from './kubeconfig.js';
export { identify, isE2e, parseServiceAccount, parseUserAgent } from './identity.js';
export type { ParsedUserAgent } from './identity.js';
export {
  APISNOOP_INELIGIBLE_ENDPOINTS,
  CoverageCollector,
  LEVELS,
  StageDeduper,
  compareEndpoints,
  coverageReport,
  ineligibility,
  parseIneligibleEndpoints,
  releaseOf,
} from './report.js';
export type {
  CoverageCatalogue,
  CoverageReport,
  CoverageSummary,
  EndpointCoverage,
  EventMapper,
  IdentityUsage,
  IneligibleEndpoint,
  LevelCounts,
  ReportMeta,
  ReportOptions,
  RequestSample,
} from './report.js';
export { REPORT_FORMATS, formatReport, isReportFormat } from './format/index.js';
export type { ReportFormat } from './format/index.js';
export { formatTable, renderTable } from './format/table.js';
export type { Column, TableOptions } from './format/table.js';
export { CSV_COLUMNS, csvField, csvRow, formatCsv } from './format/csv.js';
export { APISNOOP_KEYS, EXTRA_KEY, apisnoopEndpoint, formatJson, toApisnoopJson } from './format/json.js';
export type { ApisnoopEndpoint, ApisnoopTest } from './format/json.js';
export { escapeHtml, formatHtml } from './format/html.js';
export type { HtmlOptions } from './format/html.js';
