/**
 * Audit event -> endpoint (operationId). The request path is matched against the catalogue's
 * compiled path trie with the HTTP method the audit verb stands for; what the spec does not serve is
 * classified as a non-resource URL or kept as unmatched with the reason.
 */
import type { AuditEvent } from '@kube-correlate/audit';
import type { Catalogue, HttpMethod } from './catalogue.js';
import type { EndpointMatch } from './types.js';

/** The fields of an audit event the mapping reads. */
export type MappableAuditEvent = Pick<AuditEvent, 'requestURI' | 'verb' | 'objectRef'>;

/**
 * HTTP method of an audit verb. kube-apiserver (`NewRequestInfo`) records, for resource requests,
 * POST as create, GET and HEAD as get (list/watch without a name), PUT as update, PATCH as patch,
 * DELETE as delete (deletecollection without a name) and any other method (OPTIONS) as ''; for
 * non-resource requests it records the method lower-cased (get, post, put, head, options, ...).
 * Connect subresources (proxy, exec, attach, portforward) follow the same rule: `create` for a POST
 * to pods/exec, `get` for a GET through a proxy.
 */
const VERB_METHODS: ReadonlyMap<string, HttpMethod> = new Map<string, HttpMethod>([
  ['get', 'GET'], ['list', 'GET'], ['watch', 'GET'],
  ['create', 'POST'], ['post', 'POST'],
  ['update', 'PUT'], ['put', 'PUT'],
  ['patch', 'PATCH'],
  ['delete', 'DELETE'], ['deletecollection', 'DELETE'],
  ['head', 'HEAD'],
  ['options', 'OPTIONS'], ['', 'OPTIONS'],
]);

/** The HTTP method an audit verb stands for, or undefined for a verb kube-apiserver does not record. */
export function methodOfVerb(verb: string): HttpMethod | undefined {
  return VERB_METHODS.get(verb);
}

/** Non-resource URL families by first path segment (when the spec has no operation for the path). */
const NON_RESOURCE_ROOTS: ReadonlyMap<string, string> = new Map([
  ['healthz', 'healthz'], ['livez', 'livez'], ['readyz', 'readyz'],
  ['metrics', 'metrics'], ['openapi', 'openapi'], ['version', 'version'],
  ['.well-known', 'well-known'], ['openid', 'openid'], ['logs', 'logs'], ['debug', 'debug'],
]);

function unmatched(reason: string): EndpointMatch {
  return { type: 'unmatched', reason };
}

/**
 * Maps one audit event to the endpoint it hit.
 *
 * - The query string is ignored: a list with `?watch=true` (audit verb `watch`) maps to the list
 *   operation, as APISnoop maps it (the list operation documents the `watch` parameter); the legacy
 *   `/api/v1/watch/...` paths map to their own watch/watchlist operations, which are outside the
 *   coverage set (`Catalogue.coverageEndpoints()`).
 * - Paths the spec serves win, discovery included (`/api`, `/apis`, `/apis/apps/v1`, `/version`).
 * - Otherwise `/healthz*`, `/livez*`, `/readyz*`, `/metrics*`, `/openapi/*`, `/.well-known/*`,
 *   `/debug/*`, `/logs*`, `/`, and discovery of groups the spec does not have (`/apis/<group>[/<version>]`)
 *   are `non-resource`; anything else is `unmatched` with the reason.
 */
export function mapAuditEvent(catalogue: Catalogue, event: MappableAuditEvent): EndpointMatch {
  const uri = event.requestURI;
  if (typeof uri !== 'string' || uri === '') return unmatched('no requestURI');
  const q = uri.indexOf('?');
  const path = q < 0 ? uri : uri.slice(0, q);
  const verb = typeof event.verb === 'string' ? event.verb : '';
  const method = VERB_METHODS.get(verb);
  if (method !== undefined) {
    const m = catalogue.matcher.match(path, method);
    if (m.type === 'endpoint') return { type: 'endpoint', endpoint: m.endpoint };
    if (m.type === 'method') {
      return unmatched(`method ${method} (verb ${verb || "''"}) not served at ${m.template} (the spec has ${m.allowed.join(', ')})`);
    }
  }
  return classifyMiss(catalogue, path, verb, method, event);
}

/** Non-resource, or why nothing in the spec matched. */
function classifyMiss(
  catalogue: Catalogue,
  path: string,
  verb: string,
  method: HttpMethod | undefined,
  event: MappableAuditEvent,
): EndpointMatch {
  const segs = path.split('/').filter((s) => s !== '');
  const first = segs[0];
  if (first === undefined) return { type: 'non-resource', kind: 'root' };
  const family = NON_RESOURCE_ROOTS.get(first);
  if (family !== undefined) return { type: 'non-resource', kind: family };
  if ((first === 'api' && segs.length <= 2) || (first === 'apis' && segs.length <= 3)) {
    return { type: 'non-resource', kind: 'discovery' };
  }
  if (method === undefined) return unmatched(`unknown audit verb ${JSON.stringify(verb)}`);
  if (first === 'apis') {
    const group = segs[1]!;
    const version = segs[2]!;
    if (!catalogue.groupVersions.has(`apis/${group}/${version}`)) {
      if (catalogue.groups.has(group)) {
        return unmatched(`API version ${group}/${version} not in the spec (the group is, with other versions): not served by this release`);
      }
      return unmatched(`unknown API group/version ${group}/${version}: not in the spec, likely a CRD or an aggregated API`);
    }
    return unmatched(`path not in the spec: ${resourceOf(segs, 3, event)} in ${group}/${version}`);
  }
  if (first === 'api') {
    const version = segs[1]!;
    if (!catalogue.groupVersions.has(`api/${version}`)) return unmatched(`unknown core API version ${version}: not in the spec`);
    return unmatched(`path not in the spec: ${resourceOf(segs, 2, event)} in core/${version}`);
  }
  return unmatched(`path not in the spec: non-resource URL /${first}`);
}

/**
 * `resource[/subresource]` of an unmatched resource path, for the reason: from objectRef when the
 * audit event has one, else parsed like kube-apiserver's RequestInfo.
 */
function resourceOf(segs: string[], from: number, event: MappableAuditEvent): string {
  const ref = event.objectRef;
  if (ref?.resource) return ref.subresource ? `${ref.resource}/${ref.subresource}` : ref.resource;
  let parts = segs.slice(from);
  if (parts[0] === 'watch') parts = parts.slice(1);
  if (parts[0] === 'namespaces' && parts.length > 2 && parts[2] !== 'status' && parts[2] !== 'finalize') parts = parts.slice(2);
  const resource = parts[0] ?? '';
  return parts.length >= 3 ? `${resource}/${parts[2]!}` : resource;
}
