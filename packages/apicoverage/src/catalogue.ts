/**
 * The endpoint catalogue: every operation of a Kubernetes OpenAPI v2 document (the published
 * `api/openapi-spec/swagger.json`, or a cluster's `/openapi/v2`) as an {@link Endpoint}, with each
 * field derived the way APISnoop derives it (`apps/snoopdb/postgres/initdb/300_fn_load_open_api.sql`),
 * and the path templates compiled once into a segment trie ({@link PathMatcher}) for mapping.
 */
import { readFileSync } from 'node:fs';
import type { Endpoint, Level } from './types.js';

export type HttpMethod = Endpoint['method'];

const METHODS: Readonly<Record<string, HttpMethod>> = {
  get: 'GET', post: 'POST', put: 'PUT', patch: 'PATCH', delete: 'DELETE', head: 'HEAD', options: 'OPTIONS',
};

/** Actions APISnoop leaves out of its endpoint list and coverage ("total endpoints"). */
const NON_COVERAGE_ACTIONS: ReadonlySet<string> = new Set(['watch', 'watchlist']);

/**
 * APISnoop marks these two beta although nothing in their path or spec says so
 * (`300_fn_load_open_api.sql`: "these endpoints are beta, but are not marked as such, yet, in the
 * swagger.json"). Kept so that our levels equal APISnoop's.
 */
const APISNOOP_BETA_OPERATIONS: ReadonlySet<string> = new Set([
  'getServiceAccountIssuerOpenIDConfiguration',
  'getServiceAccountIssuerOpenIDKeyset',
]);

/** Path parameters that swallow the rest of the path (go-restful `{path:*}`): proxy paths, `/logs/{logpath}`. */
const GREEDY_PARAMS: ReadonlySet<string> = new Set(['{path}', '{logpath}']);

/** True for the endpoints APISnoop counts: every operation except the watch and watchlist actions. */
export function isCoverageEndpoint(endpoint: Endpoint): boolean {
  return !NON_COVERAGE_ACTIONS.has(endpoint.action);
}

/** Level from a path or version: contains `alpha` -> alpha, else `beta` -> beta, else stable. */
export function levelOf(pathOrVersion: string): Level {
  if (pathOrVersion.includes('alpha')) return 'alpha';
  if (pathOrVersion.includes('beta')) return 'beta';
  return 'stable';
}

/**
 * Group and version named by a path: `/api/v1/...` -> ('', 'v1'), `/apis/apps/v1/...` ->
 * ('apps', 'v1'), `/apis/apps/` -> ('apps', ''), anything else -> ('', '').
 */
export function groupVersionOfPath(path: string): { group: string; version: string } {
  const s = splitPath(path);
  if (s[0] === 'api') return { group: '', version: s[1] ?? '' };
  if (s[0] === 'apis') return { group: s[1] ?? '', version: s[2] ?? '' };
  return { group: '', version: '' };
}

/** Path segments without the empty ones a leading or trailing slash produces. */
function splitPath(path: string): string[] {
  const parts = path.split('/');
  let start = 0;
  let end = parts.length;
  while (start < end && parts[start] === '') start++;
  while (end > start && parts[end - 1] === '') end--;
  return parts.slice(start, end);
}

// -------------------------------------------------------------------------------------------------
// The matcher: a trie over path segments.

/** One node of the compiled path trie. */
export interface MatchNode {
  /** Literal segments (`api`, `v1`, `namespaces`, `pods`, `status`, ...). */
  readonly literal: Map<string, MatchNode>;
  /** A one-segment parameter (`{namespace}`, `{name}`), any name: they share one child. */
  param: MatchNode | null;
  /** A greedy parameter (`{path}`, `{logpath}`): one or more remaining segments. */
  rest: MatchNode | null;
  /** Operations served at exactly this node, by HTTP method; null when none. */
  ops: Partial<Record<HttpMethod, Endpoint>> | null;
  /** The spec's path template of this node (first one seen), '' when the node serves nothing. */
  template: string;
  /** The template ends with '/' (`/logs/`, `/apis/apps/v1/`): a request with a trailing slash prefers it. */
  slashTemplate: boolean;
}

function newNode(): MatchNode {
  return { literal: new Map(), param: null, rest: null, ops: null, template: '', slashTemplate: false };
}

/** Result of {@link PathMatcher.match}. */
export type PathMatch =
  /** A path template served the method. */
  | { type: 'endpoint'; endpoint: Endpoint }
  /** A path template matched, but not for this method: `allowed` lists the methods it has, sorted. */
  | { type: 'method'; template: string; allowed: HttpMethod[] }
  /** No path template matched. */
  | { type: 'none' };

const NO_MATCH: PathMatch = { type: 'none' };

/**
 * Path templates compiled into a segment trie: a request path is matched in one walk over its
 * segments (literal children first, then a `{param}` child, then a greedy `{path}` child, with
 * backtracking), never by scanning the templates.
 */
export class PathMatcher {
  readonly root: MatchNode = newNode();

  /** Adds an operation at a path template; the first operation for a (template, method) wins. */
  add(endpoint: Endpoint): void {
    const segs = splitPath(endpoint.path);
    let node = this.root;
    for (let i = 0; i < segs.length; i++) {
      const seg = segs[i]!;
      if (seg.startsWith('{') && seg.endsWith('}')) {
        if (GREEDY_PARAMS.has(seg) && i === segs.length - 1) node = node.rest ??= newNode();
        else node = node.param ??= newNode();
      } else {
        let next = node.literal.get(seg);
        if (next === undefined) node.literal.set(seg, (next = newNode()));
        node = next;
      }
    }
    node.ops ??= {};
    if (node.template === '') node.template = endpoint.path;
    if (endpoint.path.endsWith('/')) node.slashTemplate = true;
    node.ops[endpoint.method] ??= endpoint;
  }

  /**
   * Matches a request path (no query string) and method. A trailing slash is ignored, except that
   * `.../proxy/` is the `{path}` form with an empty path, as kube-apiserver routes it.
   */
  match(path: string, method: HttpMethod): PathMatch {
    const segs = path.split('/');
    let start = 0;
    while (start < segs.length && segs[start] === '') start++;
    let end = segs.length;
    const trailingSlash = end > start && segs[end - 1] === '';
    while (end > start && segs[end - 1] === '') end--;
    const state: WalkState = { segs, end, trailingSlash, method, found: null, firstTerminal: null };
    walk(this.root, start, state);
    if (state.found !== null) return { type: 'endpoint', endpoint: state.found };
    const t = state.firstTerminal;
    if (t !== null && t.ops !== null) {
      return { type: 'method', template: t.template, allowed: (Object.keys(t.ops) as HttpMethod[]).sort() };
    }
    return NO_MATCH;
  }
}

interface WalkState {
  readonly segs: string[];
  readonly end: number;
  readonly trailingSlash: boolean;
  readonly method: HttpMethod;
  found: Endpoint | null;
  /** The first node with operations reached, for "method not allowed". */
  firstTerminal: MatchNode | null;
}

/** Depth-first walk; stops at the first node serving the method. Returns true when found. */
function walk(node: MatchNode, i: number, st: WalkState): boolean {
  if (i === st.end) {
    // A trailing slash: a template written with one (`/logs/`, `/apis/apps/`) first, then the
    // greedy form with an empty rest (`.../proxy/` is ProxyWithPath with path '', as go-restful
    // routes it), then the template without the slash.
    if (st.trailingSlash) {
      if (node.slashTemplate && terminal(node, st)) return true;
      if (node.rest !== null && terminal(node.rest, st)) return true;
    }
    return node.ops !== null && terminal(node, st);
  }
  const next = node.literal.get(st.segs[i]!);
  if (next !== undefined && walk(next, i + 1, st)) return true;
  if (node.param !== null && walk(node.param, i + 1, st)) return true;
  if (node.rest !== null && terminal(node.rest, st)) return true;
  return false;
}

function terminal(node: MatchNode, st: WalkState): boolean {
  if (node.ops === null) return false;
  const ep = node.ops[st.method];
  if (ep !== undefined) {
    st.found = ep;
    return true;
  }
  st.firstTerminal ??= node;
  return false;
}

// -------------------------------------------------------------------------------------------------
// The catalogue.

export class Catalogue {
  /** Every operation of the spec, in spec order, watch and watchlist actions included. */
  readonly endpoints: Endpoint[];
  /** The compiled path templates used by `mapAuditEvent`. */
  readonly matcher: PathMatcher;
  /**
   * API group/version prefixes served by the spec, as path segments joined by '/': `api/v1`,
   * `apis/apps/v1`, ... Used to tell an unknown group/version (CRD, aggregated API) from an
   * unknown path.
   */
  readonly groupVersions: ReadonlySet<string>;
  /** API groups of the spec (`apps`, `batch`, ...; not the core group). */
  readonly groups: ReadonlySet<string>;
  private readonly byId: Map<string, Endpoint>;
  private coverage: Endpoint[] | null = null;

  constructor(endpoints: Endpoint[]) {
    this.endpoints = endpoints;
    this.matcher = new PathMatcher();
    this.byId = new Map();
    const gvs = new Set<string>();
    const groups = new Set<string>();
    for (const ep of endpoints) {
      if (!this.byId.has(ep.operationId)) this.byId.set(ep.operationId, ep);
      this.matcher.add(ep);
      const s = splitPath(ep.path);
      if (s[0] === 'api' && s.length >= 3) gvs.add(`api/${s[1]!}`);
      else if (s[0] === 'apis' && s.length >= 4) {
        gvs.add(`apis/${s[1]!}/${s[2]!}`);
        groups.add(s[1]!);
      }
    }
    this.groupVersions = gvs;
    this.groups = groups;
  }

  /** APISnoop's endpoint set: every operation but the watch and watchlist actions. */
  coverageEndpoints(): Endpoint[] {
    return (this.coverage ??= this.endpoints.filter(isCoverageEndpoint));
  }

  byOperationId(operationId: string): Endpoint | undefined {
    return this.byId.get(operationId);
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function str(v: unknown): string {
  return typeof v === 'string' ? v : '';
}

/**
 * Builds the catalogue of a Kubernetes OpenAPI v2 (swagger 2.0) document. Throws when the
 * document has no `paths` object (an OpenAPI v3 document is refused with that said).
 *
 * Fields, as APISnoop derives them: `level` from the path (alpha/beta substring; two OpenID
 * operations forced to beta), `category` = first tag up to the first `_`, kind/group/version from
 * `x-kubernetes-group-version-kind` (group/version from the path when there is none; kind ''),
 * `action` = `x-kubernetes-action` ('' when none), `description` ('' when none).
 */
export function buildCatalogue(spec: unknown): Catalogue {
  if (!isRecord(spec)) throw new Error('OpenAPI document: expected a JSON object');
  if (typeof spec['openapi'] === 'string') {
    throw new Error(`OpenAPI document: version ${spec['openapi']} is OpenAPI v3; give the v2 document (swagger.json, /openapi/v2)`);
  }
  const paths = spec['paths'];
  if (!isRecord(paths)) throw new Error('OpenAPI document: no "paths" object (expected Kubernetes OpenAPI v2, swagger.json or /openapi/v2)');
  const endpoints: Endpoint[] = [];
  for (const path of Object.keys(paths)) {
    const item = paths[path];
    if (!isRecord(item)) continue;
    for (const key of Object.keys(item)) {
      const method = METHODS[key];
      const op = item[key];
      if (method === undefined || !isRecord(op)) continue;
      endpoints.push(endpointOf(path, method, op));
    }
  }
  return new Catalogue(endpoints);
}

function endpointOf(path: string, method: HttpMethod, op: Record<string, unknown>): Endpoint {
  const operationId = str(op['operationId']) || `${method} ${path}`;
  const gvk = isRecord(op['x-kubernetes-group-version-kind']) ? op['x-kubernetes-group-version-kind'] : null;
  const tags = Array.isArray(op['tags']) ? op['tags'] : [];
  const tag = str(tags[0]);
  const underscore = tag.indexOf('_');
  let group: string;
  let version: string;
  if (gvk !== null) {
    group = str(gvk['group']);
    version = str(gvk['version']);
  } else {
    ({ group, version } = groupVersionOfPath(path));
  }
  return {
    operationId,
    path,
    method,
    action: str(op['x-kubernetes-action']),
    group,
    version,
    kind: gvk !== null ? str(gvk['kind']) : '',
    level: APISNOOP_BETA_OPERATIONS.has(operationId) ? 'beta' : levelOf(path),
    category: underscore < 0 ? tag : tag.slice(0, underscore),
    description: str(op['description']),
  };
}

/** Reads an OpenAPI v2 JSON file (e.g. `api/openapi-spec/swagger.json`) and builds its catalogue. */
export function loadCatalogueFile(path: string): Catalogue {
  let spec: unknown;
  try {
    spec = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new Error(`${path}: cannot read the OpenAPI document: ${(err as Error).message}`, { cause: err });
  }
  try {
    return buildCatalogue(spec);
  } catch (err) {
    throw new Error(`${path}: ${(err as Error).message}`, { cause: err });
  }
}
