import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { SingleBar, Presets } from 'cli-progress';
import { readAuditLogFile, type AuditEvent } from '@kube-correlate/audit';
import {
  CoverageCollector,
  buildCatalogue,
  fetchJson,
  fetchSpec,
  formatReport,
  isReportFormat,
  loadKubeconfig,
  parseIneligibleEndpoints,
  releaseOf,
  REPORT_FORMATS,
  type Catalogue,
  type CoverageReport,
  type IneligibleEndpoint,
  type ReportFormat,
} from '@kube-correlate/apicoverage';
import { TraceStore } from '@kube-correlate/store';
import { CliError, EXIT } from '../errors.js';

export interface CoverageOptions {
  /** OpenAPI v2 document (swagger.json). */
  spec?: string;
  /** Fetch the spec from the cluster of this kubeconfig (`/openapi/v2`). */
  kubeconfig?: string;
  /** Kubeconfig context (default: current-context). */
  context?: string;
  /** Audit log files (one Event per line). */
  audit?: string[];
  /** Store directory of the pipeline. */
  data?: string;
  format?: string;
  /** Write here instead of stdout. */
  out?: string;
  /** Release (`1.35.0`); default: the spec's info.version. */
  release?: string;
  /** APISnoop's ineligible_endpoints.json; default: the list built in. */
  ineligible?: string;
  /** Previous release's spec, for "new conformance eligible endpoints". */
  previousSpec?: string;
  /** Progress bar on stderr: default when stderr is a terminal. */
  progress?: boolean;
  /** Where notes go (default stderr). */
  log?: (line: string) => void;
}

/** What kind of I/O failure, in a few words. */
function ioReason(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  const byCode: Record<string, string> = { ENOENT: 'no such file', EACCES: 'permission denied', EISDIR: 'is a directory', ENOTDIR: 'not a directory' };
  return (e.code && byCode[e.code]) || e.code || e.message;
}

function oneLine(s: string): string {
  return s.replace(/\s+/g, ' ').trim();
}

/** Reads and parses a JSON file, or throws a CliError naming it. */
function readJsonFile(path: string, what: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new CliError(`cannot read ${what} ${path}: ${ioReason(err)}`);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new CliError(`${what} ${path} is not valid JSON: ${oneLine((err as Error).message)}`);
  }
}

function catalogueOf(spec: unknown, where: string): Catalogue {
  try {
    return buildCatalogue(spec);
  } catch (err) {
    throw new CliError(`invalid spec ${where}: ${oneLine((err as Error).message)}`);
  }
}

function infoVersion(spec: unknown): string {
  const info = (spec as { info?: { version?: unknown } } | null)?.info;
  return typeof info?.version === 'string' ? info.version : '';
}

async function loadSpec(opts: CoverageOptions): Promise<{ spec: unknown; where: string }> {
  if (opts.spec !== undefined && opts.kubeconfig !== undefined) throw new CliError('give --spec <file> or --kubeconfig <file>, not both');
  if (opts.spec !== undefined) return { spec: readJsonFile(opts.spec, 'spec'), where: opts.spec };
  if (opts.kubeconfig !== undefined) {
    try {
      const spec = await fetchSpec(opts.kubeconfig, opts.context === undefined ? {} : { context: opts.context });
      return { spec, where: `/openapi/v2 of the cluster in ${opts.kubeconfig}` };
    } catch (err) {
      throw new CliError(`cannot fetch the spec with ${opts.kubeconfig}: ${oneLine((err as Error).message)}`);
    }
  }
  throw new CliError('give the API spec: --spec <swagger.json> or --kubeconfig <file>');
}

/**
 * The Kubernetes version the report is of, as its source says it, and the release in APISnoop's
 * form (`1.37.2`, `1.37.0`): `--release` when given; else, with --kubeconfig, the server's
 * `/version` (`v1.37.2`: a spec says only its minor release); else the spec's `info.version`
 * (a cluster's /openapi/v2 or the published swagger.json: `1.37`, `v1.37.2`, or `unversioned`);
 * else a version in the spec file's name (`swagger-v1.35.json`); else ''.
 */
async function versionOfSpec(spec: unknown, opts: CoverageOptions): Promise<{ release: string; version: string }> {
  const of = (version: string) => ({ release: releaseOf(version), version: version.trim() });
  if (opts.release !== undefined) return { release: releaseOf(opts.release) || opts.release, version: opts.release };
  if (opts.kubeconfig !== undefined) {
    try {
      const v = (await fetchJson(loadKubeconfig(opts.kubeconfig, opts.context === undefined ? {} : { context: opts.context }), '/version', 10_000)) as { gitVersion?: unknown };
      if (typeof v?.gitVersion === 'string' && releaseOf(v.gitVersion)) return of(v.gitVersion);
    } catch {
      // No /version: what the spec says.
    }
  }
  const info = infoVersion(spec);
  if (releaseOf(info)) return of(info);
  if (opts.kubeconfig !== undefined) return { release: '', version: '' };
  const m = /v?(\d+\.\d+(?:\.\d+)?)(?!\d|\.\d)/.exec(basename(opts.spec ?? ''));
  return m ? of(m[1]!) : { release: '', version: '' };
}

/** Bytes an event's line took, near enough (kube-apiserver writes compact JSON): for the progress bar only. */
function lineBytes(e: AuditEvent): number {
  return Buffer.byteLength(JSON.stringify(e)) + 1;
}

/**
 * `correlate coverage`: API usage and conformance coverage (APISnoop's) of audit events from log
 * files and/or a store, against the endpoints of an OpenAPI spec. Returns the exit code.
 */
export async function runCoverage(opts: CoverageOptions, out: NodeJS.WritableStream = process.stdout): Promise<number> {
  const log = opts.log ?? ((l: string) => process.stderr.write(l + '\n'));
  const format = opts.format ?? 'table';
  if (!isReportFormat(format)) throw new CliError(`invalid --format "${format}": want one of ${REPORT_FORMATS.join(', ')}`);
  const audits = opts.audit ?? [];
  if (audits.length === 0 && opts.data === undefined) throw new CliError('give audit events: --audit <file>... and/or --data <dir>');

  // Check every input before the long part.
  const sizes = audits.map((f) => {
    let st;
    try {
      st = statSync(f);
    } catch (err) {
      throw new CliError(`cannot read audit file ${f}: ${ioReason(err)}`);
    }
    if (!st.isFile()) throw new CliError(`invalid audit file ${f}: not a regular file`);
    return st.size;
  });
  if (opts.data !== undefined && !existsSync(join(opts.data, 'kube-correlate.db'))) {
    throw new CliError(`no kube-correlate store in ${opts.data} (kube-correlate.db not found)`);
  }
  let ineligible: IneligibleEndpoint[] | undefined;
  if (opts.ineligible !== undefined) {
    try {
      ineligible = parseIneligibleEndpoints(readJsonFile(opts.ineligible, 'ineligible endpoints file'));
    } catch (err) {
      if (err instanceof CliError) throw err;
      throw new CliError(`invalid ineligible endpoints file ${opts.ineligible}: ${(err as Error).message}`);
    }
  }
  const previous = opts.previousSpec !== undefined ? catalogueOf(readJsonFile(opts.previousSpec, 'previous spec'), opts.previousSpec) : undefined;
  const { spec, where } = await loadSpec(opts);
  const catalogue = catalogueOf(spec, where);
  const { release, version } = await versionOfSpec(spec, opts);

  const collector = new CoverageCollector(catalogue);
  const total = sizes.reduce((s, n) => s + n, 0);
  const bar =
    (opts.progress ?? process.stderr.isTTY) && audits.length > 0
      ? new SingleBar({
          format: 'coverage [{bar}] {percentage}% | {value}/{total} bytes | {events} events',
          stream: process.stderr,
          hideCursor: true,
          fps: 5,
          // --progress on a pipe or file: a line every 2 s instead of redrawing.
          noTTYOutput: !process.stderr.isTTY,
        }, Presets.shades_classic)
      : undefined;
  let done = 0;
  let events = 0;
  let firstError: string | undefined;
  bar?.start(total, 0, { events: 0 });
  try {
    for (const [i, file] of audits.entries()) {
      const size = sizes[i]!;
      const base = done;
      let read = 0;
      let fileError: string | undefined;
      let r;
      try {
        r = await readAuditLogFile(file, {
          onEvent: (e) => {
            collector.addEvent(e);
            events++;
            if (bar) {
              read += lineBytes(e);
              if (events % 500 === 0) bar.update(base + Math.min(read, size), { events });
            }
          },
          onError: (err) => {
            const what = `${err.path}:${err.index}: ${err.reason}`;
            firstError ??= what;
            fileError ??= what;
            collector.addUnparseable(what);
          },
        });
      } catch (err) {
        throw new CliError(`cannot read audit file ${file}: ${ioReason(err)}`);
      }
      done = base + size;
      bar?.update(done, { events });
      if (r.events === 0 && r.errors > 0) {
        throw new CliError(`invalid audit file ${file}: none of its ${r.errors} non-blank lines is an audit event (${oneLine(fileError ?? '')})`);
      }
      if (r.events === 0) log(`correlate coverage: ${file} has no audit event`);
    }
  } finally {
    bar?.stop();
  }
  if (opts.data !== undefined) {
    const store = new TraceStore({ dir: opts.data, readonly: true });
    try {
      for (const e of store.allAuditEvents()) collector.addEvent(e);
    } finally {
      store.close();
    }
  }

  const report: CoverageReport = collector.report({
    release,
    version,
    spec: where,
    sources: [...audits, ...(opts.data !== undefined ? [`store ${opts.data}`] : [])],
    ...(ineligible ? { ineligible } : {}),
    ...(previous ? { previousEndpoints: previous.coverageEndpoints().map((e) => e.operationId) } : {}),
  });
  const text = formatReport(report, format as ReportFormat);
  if (opts.out !== undefined) {
    try {
      writeFileSync(opts.out, text);
    } catch (err) {
      throw new CliError(`cannot write ${opts.out}: ${ioReason(err)}`);
    }
  } else {
    out.write(text);
  }
  const s = report.summary;
  if (s.unparseable > 0) log(`correlate coverage: ${s.unparseable} unparseable audit line${s.unparseable === 1 ? '' : 's'} skipped (first: ${oneLine(firstError ?? '')})`);
  if (opts.out !== undefined) {
    log(
      `correlate coverage: wrote ${format} to ${opts.out}: ${s.requests} requests, ${s.hitEndpoints}/${s.totalEndpoints} endpoints hit, ` +
        `${s.testedEndpoints} tested, ${s.confTestedEndpoints} conformance-tested`,
    );
  }
  return EXIT.OK;
}
