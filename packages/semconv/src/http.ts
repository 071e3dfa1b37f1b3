/**
 * kube-apiserver's otelhttp and otelgrpc attributes, under both semantic-convention generations it
 * has sent: v1.34 the old names (`http.method`, `http.status_code`, `http.target`, `http.scheme`,
 * `net.host.name`, `net.sock.peer.addr`, `rpc.grpc.status_code`), v1.37 the new ones
 * (`http.request.method`, `http.response.status_code`, `url.path`, `url.scheme`, `server.address`,
 * `client.address`, `network.peer.address`, `user_agent.original`, `rpc.system.name`,
 * `rpc.response.status_code`). Everything that reads them reads them through here, new name first.
 */

type Attrs = Readonly<Record<string, unknown>>;

const first = (a: Attrs, keys: readonly string[]): unknown => {
  for (const k of keys) if (a[k] !== undefined && a[k] !== '') return a[k];
  return undefined;
};
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : typeof v === 'number' ? String(v) : undefined);
const num = (v: unknown): number | undefined => (typeof v === 'number' ? v : typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : undefined);

export const SEMCONV = {
  method: ['http.request.method', 'http.method'],
  statusCode: ['http.response.status_code', 'http.status_code'],
  path: ['url.path', 'http.target'],
  url: ['url.full', 'http.url'],
  scheme: ['url.scheme', 'http.scheme'],
  server: ['server.address', 'net.host.name'],
  client: ['client.address', 'network.peer.address', 'net.sock.peer.addr', 'net.peer.ip'],
  userAgent: ['user_agent.original', 'http.user_agent'],
  rpcSystem: ['rpc.system.name', 'rpc.system'],
  rpcStatus: ['rpc.response.status_code', 'rpc.grpc.status_code'],
} as const;

/** What an HTTP span says of its request, whichever convention it follows; undefined for a span with no HTTP attributes. */
export interface HttpRequestInfo {
  method?: string;
  statusCode?: number;
  /** Path (and query) of a server span, or the full URL of a client span. */
  target?: string;
  scheme?: string;
  server?: string;
  client?: string;
  userAgent?: string;
}

export function httpRequestInfo(a: Attrs): HttpRequestInfo | undefined {
  const out: HttpRequestInfo = {};
  const method = str(first(a, SEMCONV.method));
  const statusCode = num(first(a, SEMCONV.statusCode));
  const target = str(first(a, SEMCONV.path)) ?? str(first(a, SEMCONV.url));
  const scheme = str(first(a, SEMCONV.scheme));
  const server = str(first(a, SEMCONV.server));
  const client = str(first(a, SEMCONV.client));
  const userAgent = str(first(a, SEMCONV.userAgent));
  if (method !== undefined) out.method = method;
  if (statusCode !== undefined) out.statusCode = statusCode;
  if (target !== undefined) out.target = target;
  if (scheme !== undefined) out.scheme = scheme;
  if (server !== undefined) out.server = server;
  if (client !== undefined) out.client = client;
  if (userAgent !== undefined) out.userAgent = userAgent;
  return method !== undefined || statusCode !== undefined ? out : undefined;
}

/** An RPC span's system and status code (gRPC codes), whichever convention it follows. */
export function rpcInfo(a: Attrs): { system?: string; statusCode?: number } | undefined {
  const system = str(first(a, SEMCONV.rpcSystem));
  const statusCode = num(first(a, SEMCONV.rpcStatus));
  if (system === undefined && statusCode === undefined) return undefined;
  return { ...(system !== undefined ? { system } : {}), ...(statusCode !== undefined ? { statusCode } : {}) };
}
