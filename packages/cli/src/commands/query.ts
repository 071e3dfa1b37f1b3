import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { MAX_AUDIT_ID_LENGTH } from '@kube-correlate/audit';
import type { RequestTree } from '@kube-correlate/correlator';
import { JaegerSource, JaegerSourceError, TraceStore, type ObjectSetChainEntry, type ObjectSetWindow } from '@kube-correlate/store';
import { CliError, EXIT } from '../errors.js';
import { renderTree } from '../render.js';
import { answerMessage, hasTransportFlags, HttpClient, loadTransport, parseEndpoint, unauthorizedHint, type Transport, type TransportFlags } from '../transport.js';

export const DEFAULT_QUERY_ENDPOINT = 'http://127.0.0.1:4320';

export interface QueryOptions extends TransportFlags {
  trace?: string;
  auditId?: string;
  objset?: string;
  /** kind/namespace/name, or kind/name for a cluster-scoped object. */
  object?: string;
  json?: boolean;
  endpoint?: string;
  /** Read this store directory directly instead of asking a running pipeline. */
  data?: string;
  /** Read from Jaeger (its query base URL) instead. */
  jaeger?: string;
  /** How far back a Jaeger search looks (--object), e.g. "7d", "12h". */
  lookback?: string;
  /** With --objset/--object: the time window to show (a time inside it), or "all"; default the newest. */
  window?: string;
}

/** `--window`: "all", or a time inside the window wanted (RFC 3339, e.g. 2026-12-02T16:30:00Z) -> ms. */
export function parseWindow(text: string): number | 'all' {
  if (text === 'all') return 'all';
  const ms = /^\d{4}-\d\d-\d\dT/.test(text) ? Date.parse(text) : NaN;
  if (!Number.isFinite(ms)) throw new CliError(`invalid --window "${text}": want a time inside the window (e.g. 2026-12-02T16:30:00Z) or "all"`);
  return ms;
}

type ShownTree = RequestTree & { objectSetId?: string; window?: ObjectSetWindow | null; chain?: ObjectSetChainEntry[] };

/** "90m", "12h", "7d" -> ms. */
export function parseLookback(text: string): number {
  const m = /^(\d+)(m|h|d)$/.exec(text.trim());
  if (!m) throw new CliError(`invalid --lookback "${text}": want minutes, hours or days, e.g. 90m, 12h, 7d`);
  return Number(m[1]) * { m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 'm' | 'h' | 'd'];
}

/** `correlate --trace <id>` / `--audit-id <id>`: prints the tree, returns the exit code. */
export async function runQuery(opts: QueryOptions, out: NodeJS.WritableStream = process.stdout): Promise<number> {
  const given = [opts.trace, opts.auditId, opts.objset, opts.object].filter((x) => x !== undefined).length;
  if (given !== 1) throw new CliError('give exactly one of --trace <id>, --audit-id <id>, --objset <id> or --object <kind>/<namespace>/<name>');
  if (opts.jaeger !== undefined && opts.data !== undefined) throw new CliError('give --jaeger <url> or --data <dir>, not both');
  if (opts.window !== undefined && opts.objset === undefined && opts.object === undefined) throw new CliError('--window goes with --objset or --object');
  const window = opts.window !== undefined ? parseWindow(opts.window) : undefined;
  const windowQuery = opts.window !== undefined ? `?window=${encodeURIComponent(opts.window)}` : '';
  if ((opts.jaeger !== undefined || opts.data !== undefined) && hasTransportFlags(opts)) {
    throw new CliError(`--token, --token-file, --cacert, --cert and --key are for the query API (--endpoint), not ${opts.data !== undefined ? '--data' : '--jaeger'}`);
  }
  const api = opts.jaeger === undefined && opts.data === undefined
    ? { endpoint: parseEndpoint('--endpoint', opts.endpoint ?? DEFAULT_QUERY_ENDPOINT, DEFAULT_QUERY_ENDPOINT), transport: loadTransport(opts) }
    : undefined;
  const fetchTree = (path: string) => fetchTreeFrom(api!.endpoint, api!.transport, path);
  let tree: ShownTree | undefined;
  let what: string;
  const jaeger = opts.jaeger !== undefined ? jaegerSource(opts.jaeger, opts.lookback) : undefined;
  if (opts.objset !== undefined) {
    const id = opts.objset;
    if (id.length === 0 || id.length > 253) throw new CliError('invalid object set id: want 1 to 253 characters');
    what = `object set ${id}`;
    tree = jaeger ? await fromJaeger(() => jaeger.getObjectSet(id, { window })) : opts.data ? withStore(opts.data, (s) => s.getObjectSet(id, { window })) : await fetchTree(`/api/v1/objsets/${encodeURIComponent(id)}${windowQuery}`);
  } else if (opts.object !== undefined) {
    const parts = opts.object.split('/');
    if (parts.length < 2 || parts.length > 3 || parts.some((p, i) => p === '' && !(parts.length === 3 && i === 1))) {
      throw new CliError(`invalid --object "${opts.object}": want <kind>/<namespace>/<name>, or <kind>/<name> for a cluster-scoped object`);
    }
    const [kind, namespace, name] = parts.length === 3 ? (parts as [string, string, string]) : [parts[0]!, '', parts[1]!];
    what = `object ${opts.object}`;
    tree = jaeger
      ? await fromJaeger(() => jaeger.getObjectSetOf(kind, namespace, name, { window }))
      : opts.data
      ? withStore(opts.data, (s) => s.getObjectSetOf(kind, namespace, name, { window }))
      : await fetchTree(`/api/v1/objects/${[kind, ...(namespace ? [namespace] : []), name].map(encodeURIComponent).join('/')}${windowQuery}`);
  } else if (opts.trace) {
    const id = opts.trace.toLowerCase();
    if (!/^[0-9a-f]{32}$/.test(id)) throw new CliError(`invalid trace id "${opts.trace}": want 32 hex characters`);
    what = `trace ${id}`;
    tree = jaeger ? await fromJaeger(() => jaeger.getTrace(id)) : opts.data ? withStore(opts.data, (s) => s.getTrace(id)) : await fetchTree(`/api/v1/traces/${id}`);
  } else {
    const id = opts.auditId!;
    if (id.length === 0 || id.length > MAX_AUDIT_ID_LENGTH) throw new CliError(`invalid audit id: want 1 to ${MAX_AUDIT_ID_LENGTH} characters`);
    what = `audit id ${id}`;
    tree = jaeger ? await fromJaeger(() => jaeger.getByAuditId(id)) : opts.data ? withStore(opts.data, (s) => s.getByAuditId(id)) : await fetchTree(`/api/v1/audit/${encodeURIComponent(id)}`);
  }
  if (!tree) throw new CliError(`${what} not found`, EXIT.NOT_FOUND);
  const json = tree.objectSetId !== undefined
    ? { traceId: tree.traceId, objectSetId: tree.objectSetId, window: tree.window ?? null, chain: tree.chain ?? [], root: tree.root }
    : { traceId: tree.traceId, root: tree.root };
  out.write(opts.json ? JSON.stringify(json, null, 2) + '\n' : renderTree(tree));
  return EXIT.OK;
}

/** GET a tree from the query API: undefined for 404, a one-line CliError for anything else that is not 200. */
async function fetchTreeFrom(endpoint: URL, transport: Transport, path: string): Promise<ShownTree | undefined> {
  const url = new URL(path, endpoint);
  const client = new HttpClient(transport);
  try {
    const res = await client.request(url, { what: 'the query API', timeoutMs: 10_000, hint: 'is `correlate start` running? or read a store directly with --data <dir>' });
    if (res.status === 404) return undefined;
    if (res.status === 401) throw new CliError(`query API answered 401: ${answerMessage(res)} (${unauthorizedHint(transport)})`);
    if (res.status !== 200) throw new CliError(`query API answered ${res.status}: ${answerMessage(res)}`);
    try {
      return JSON.parse(res.body.toString('utf8')) as ShownTree;
    } catch (err) {
      throw new CliError(`query API answered 200 with a body that is not JSON: ${(err as Error).message}`);
    }
  } finally {
    client.close();
  }
}

function withStore<T>(dir: string, fn: (s: TraceStore) => T): T {
  if (!existsSync(join(dir, 'kube-correlate.db'))) throw new CliError(`no kube-correlate store in ${dir} (kube-correlate.db not found)`);
  const store = new TraceStore({ dir, readonly: true });
  try {
    return fn(store);
  } finally {
    store.close();
  }
}

function jaegerSource(url: string, lookback: string | undefined): JaegerSource {
  try {
    return new JaegerSource({ url, ...(lookback ? { lookbackMs: parseLookback(lookback) } : {}) });
  } catch (err) {
    if (err instanceof JaegerSourceError) throw new CliError(err.message);
    throw err;
  }
}

async function fromJaeger<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof JaegerSourceError) throw new CliError(err.message);
    throw err;
  }
}
