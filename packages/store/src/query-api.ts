import { createServer, type IncomingMessage, type RequestListener, type Server } from 'node:http';
import { MAX_AUDIT_ID_LENGTH } from '@kube-correlate/audit';
import type { PipelineMetrics, Logger } from '@kube-correlate/telemetry';
import type { TraceStore } from './trace-store.js';

/**
 * The query API (default :4320), read by the `correlate` CLI:
 *   GET /api/v1/traces/{traceId}     request tree, 404 when unknown
 *   GET /api/v1/audit/{auditID}      request tree of that audit request
 *   GET /api/v1/traces?limit=N       most recently updated traces
 *   GET /api/v1/objsets/{id}         object-set tree: the newest time window, with the set's chain of windows;
 *                                    ?window=<RFC 3339 time> the window holding it, ?window=all every window
 *   GET /api/v1/objects/{kind}/{namespace}/{name}   object-set tree of that object ({kind}/{name}: cluster-scoped; ?window= too)
 *   GET /api/v1/receivers            where this pipeline's receivers listen (`correlate demo` sends there)
 *   GET /metrics                     Prometheus text format
 *   GET /healthz                     liveness (also /readyz)
 * Errors are JSON `{ "error": "<one line>" }`.
 *
 * With `authorize`, every request but the health checks (which reveal nothing: kubelet probes
 * cannot send a token) must pass it, or it is answered 401 with the refusal's message and
 * headers (`WWW-Authenticate`) before anything is looked up, listed or served.
 */
export interface QueryApiOptions {
  store: TraceStore;
  metrics: PipelineMetrics;
  logger: Logger;
  /** Where the pipeline's receivers listen (host:port), asked when GET /api/v1/receivers comes (they start after the query API). */
  receivers?: () => { otlpGrpc?: string; otlpHttp?: string; auditWebhook?: string };
  /** Checks a request's credentials: undefined lets it in; a refusal is answered 401 (counted as `code="401"`). */
  authorize?: (req: IncomingMessage) => QueryRefusal | undefined;
}

/** The `window` query parameter of object-set routes: 'all', a time (ms), or absent; a string is the error. */
export function parseWindowParam(value: string | null): number | 'all' | undefined | { error: string } {
  if (value === null || value === '') return undefined;
  if (value === 'all') return 'all';
  const ms = Date.parse(value);
  return Number.isFinite(ms) ? ms : { error: `invalid window "${value}": want a time such as 2026-12-02T16:30:00Z, or "all"` };
}

/** Why a request was not let in: a one-line message and the headers to answer with (`www-authenticate`). */
export interface QueryRefusal {
  message: string;
  headers: Record<string, string>;
}

/** Paths answered without credentials. */
const PUBLIC_PATHS = new Set(['/healthz', '/readyz']);

/** The `route` label of a path (bounded: never the ids themselves). */
function routeOf(path: string): string {
  if (path === '/metrics') return 'metrics';
  if (PUBLIC_PATHS.has(path)) return 'health';
  if (/^\/api\/v1\/traces\/[^/]+$/.test(path)) return 'trace';
  if (/^\/api\/v1\/audit\/[^/]+$/.test(path)) return 'audit';
  if (/^\/api\/v1\/objsets\/[^/]+$/.test(path)) return 'objset';
  if (/^\/api\/v1\/objects\/[^/]+\/(?:[^/]*\/)?[^/]+$/.test(path)) return 'object';
  if (path === '/api/v1/traces') return 'traces';
  if (path === '/api/v1/receivers') return 'receivers';
  return 'other';
}

const TRACE_ID = /^[0-9a-f]{32}$/;
// Clients may choose any Audit-ID; the store keys it by its first 64 bytes, as spans carry it. The
// receivers refuse auditIDs longer than MAX_AUDIT_ID_LENGTH, so any stored one can be asked for.
const MAX_AUDIT_ID = MAX_AUDIT_ID_LENGTH;

/** The query API on a plain HTTP server (the collector's store extension serves queryApiHandler with its listener settings: TLS, auth). */
export function createQueryApi(opts: QueryApiOptions): Server {
  return createServer(queryApiHandler(opts));
}

/** The query API's request handler, for any HTTP or HTTPS server. */
export function queryApiHandler(opts: QueryApiOptions): RequestListener {
  const { store, metrics, logger } = opts;
  return (req, res) => {
    let route = 'other';
    const send = (code: number, body: unknown, type = 'application/json', headers: Record<string, string> = {}) => {
      metrics.queryRequests.inc({ route, code: String(code) });
      const text = type === 'application/json' ? JSON.stringify(body) + '\n' : String(body);
      res.writeHead(code, { 'content-type': type, 'content-length': Buffer.byteLength(text), ...headers });
      res.end(text);
    };
    void handle(req).catch((err: unknown) => {
      logger.error({ err, url: req.url }, 'query failed');
      if (!res.headersSent) send(500, { error: `internal error: ${(err as Error).message}` });
      else res.destroy();
    });

    async function handle(req: IncomingMessage): Promise<void> {
      const url = new URL(req.url ?? '/', 'http://query');
      const path = url.pathname;
      if (opts.authorize && !PUBLIC_PATHS.has(path)) {
        const refusal = opts.authorize(req);
        if (refusal) {
          route = routeOf(path);
          return send(401, { error: refusal.message }, 'application/json', refusal.headers);
        }
      }
      if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, { error: `method ${req.method} not allowed; the query API is read-only` });
      if (path === '/metrics') {
        route = 'metrics';
        return send(200, await metrics.registry.metrics(), metrics.registry.contentType);
      }
      if (path === '/healthz' || path === '/readyz') {
        route = 'health';
        return send(200, { status: 'ok' });
      }
      let m = /^\/api\/v1\/traces\/([^/]+)$/.exec(path);
      if (m) {
        route = 'trace';
        const id = decodePathSegment(m[1]!)?.toLowerCase() ?? '';
        if (!TRACE_ID.test(id)) return send(400, { error: `invalid trace id "${m[1]}": want 32 hex characters` });
        const tree = store.getTrace(id);
        return tree ? send(200, tree) : send(404, { error: `trace ${id} not found` });
      }
      m = /^\/api\/v1\/audit\/([^/]+)$/.exec(path);
      if (m) {
        route = 'audit';
        const id = decodePathSegment(m[1]!) ?? '';
        if (id.length === 0 || id.length > MAX_AUDIT_ID) return send(400, { error: `invalid audit id: want 1 to ${MAX_AUDIT_ID} characters` });
        const tree = store.getByAuditId(id);
        return tree ? send(200, tree) : send(404, { error: `audit id ${id} not found` });
      }
      const window = parseWindowParam(url.searchParams.get('window'));
      m = /^\/api\/v1\/objsets\/([^/]+)$/.exec(path);
      if (m) {
        route = 'objset';
        const id = decodePathSegment(m[1]!) ?? '';
        if (id.length === 0 || id.length > 253) return send(400, { error: 'invalid object set id: want 1 to 253 characters' });
        if (typeof window === 'object') return send(400, window);
        const tree = store.getObjectSet(id, { window });
        return tree ? send(200, tree) : send(404, { error: `object set ${id} not found` });
      }
      m = /^\/api\/v1\/objects\/([^/]+)\/(?:([^/]*)\/)?([^/]+)$/.exec(path);
      if (m) {
        route = 'object';
        const [kind, namespace, name] = [m[1]!, m[2] ?? '', m[3]!].map((x) => decodePathSegment(x));
        if (kind === undefined || namespace === undefined || name === undefined) return send(400, { error: 'malformed percent-encoding in the object path' });
        if (typeof window === 'object') return send(400, window);
        const tree = store.getObjectSetOf(kind, namespace, name, { window });
        return tree ? send(200, tree) : send(404, { error: `object ${kind}/${namespace ? `${namespace}/` : ''}${name} not found` });
      }
      if (path === '/api/v1/receivers') {
        route = 'receivers';
        return send(200, opts.receivers?.() ?? {});
      }
      if (path === '/api/v1/traces') {
        route = 'traces';
        const limit = Number(url.searchParams.get('limit') ?? '20');
        if (!Number.isInteger(limit) || limit < 1 || limit > 1000) return send(400, { error: 'limit must be an integer from 1 to 1000' });
        return send(200, { traces: store.recentTraces(limit) });
      }
      return send(404, { error: `no route ${path}` });
    }
  };
}


/** A percent-decoded path segment, or undefined when the encoding is malformed (answered 400). */
function decodePathSegment(segment: string): string | undefined {
  try {
    return decodeURIComponent(segment);
  } catch {
    return undefined;
  }
}
