/**
 * Audit events that replay APISnoop's published coverage (../shared/data/apisnoop): for every
 * endpoint APISnoop lists with tests, one e2e.test request per test name, shaped as kube-apiserver
 * audits them (the verb RequestInfo records, a request path with the parameters filled in), plus
 * requests from other clients for the usage side of the report.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AuditEvent } from '@kube-correlate/audit';
import type { Catalogue, Endpoint } from '@kube-correlate/apicoverage';
import { ROOT } from './index.js';

/** ../shared/data beside the repository, or $KC_SHARED_DATA. */
export const SHARED_DATA = process.env['KC_SHARED_DATA'] ?? join(ROOT, '..', 'shared', 'data');

export function sharedDataFile(rel: string): string {
  const p = join(SHARED_DATA, rel);
  if (!existsSync(p)) throw new Error(`shared data file ${p} is missing (set KC_SHARED_DATA to the directory holding openapi/ and apisnoop/)`);
  return p;
}

export interface SnoopEndpoint {
  endpoint: string;
  path: string;
  level: string;
  action: string | null;
  tested: boolean;
  conf_tested: boolean;
  description: string | null;
  /** Test names; APISnoop writes `[null]` for an untested endpoint and '' for e2e.test requests outside a test. */
  tests: Array<string | null>;
}

export interface SnoopCoverage {
  release: string;
  endpoints: SnoopEndpoint[];
  'total endpoints': number;
  'tested endpoints': number;
  'total conformance eligible endpoints': number;
  'tested conformance eligible endpoints': number;
  [k: string]: unknown;
}

export function loadSnoop(version: string): SnoopCoverage {
  return JSON.parse(readFileSync(sharedDataFile(`apisnoop/coverage-${version}.0.json`), 'utf8')) as SnoopCoverage;
}

export function specPath(version: string): string {
  return sharedDataFile(`openapi/swagger-v${version}.json`);
}

/**
 * The audit verb kube-apiserver records (RequestInfo): the action, `create`/`update` for the post
 * and put actions, and for connect operations the HTTP method's verb (GET and HEAD -> get, POST ->
 * create, PUT -> update, PATCH -> patch, DELETE -> delete, OPTIONS -> ''); requests without an
 * action (discovery, /version, /logs) record the method lower-cased.
 */
export function auditVerb(ep: Endpoint): string {
  switch (ep.action) {
    case 'post':
      return 'create';
    case 'put':
      return 'update';
    case 'watch':
    case 'watchlist':
      return 'watch';
    case 'connect':
      return ({ GET: 'get', HEAD: 'get', POST: 'create', PUT: 'update', PATCH: 'patch', DELETE: 'delete', OPTIONS: '' } as const)[ep.method];
    case '':
      return ep.method.toLowerCase();
    default:
      return ep.action;
  }
}

/**
 * A request URI for an endpoint: parameters filled in; proxies as the Proxy conformance tests call
 * them (`.../proxy?method=HEAD`, `.../proxy/some/path/with/HEAD`), which is how APISnoop tells a HEAD
 * from a GET when both are audited as verb get.
 */
export function requestURIOf(ep: Endpoint): string {
  const filled = ep.path
    .replaceAll('{namespace}', 'e2e-ns-1')
    .replaceAll('{name}', 'obj-1')
    .replaceAll('{logpath}', 'kube-apiserver.log')
    .replace(/\{[^}]+\}/g, (p) => (p === '{path}' ? `some/path/with/${ep.method}` : 'x'));
  if (ep.action === 'connect' && ep.path.endsWith('/proxy')) return `${filled}?method=${ep.method}`;
  return filled;
}

export const E2E_UA = (release: string) => `e2e.test/v${release} (linux/amd64) kubernetes/0123456`;

let seq = 0;
export function auditEvent(ep: Endpoint, userAgent: string, username = 'kubernetes-admin'): AuditEvent {
  const id = `cov-${++seq}`;
  return {
    kind: 'Event',
    apiVersion: 'audit.k8s.io/v1',
    level: 'Metadata',
    auditID: id,
    stage: 'ResponseComplete',
    requestURI: requestURIOf(ep),
    verb: auditVerb(ep),
    user: { username },
    userAgent,
    sourceIPs: ['10.0.0.2'],
    requestReceivedTimestamp: '2026-11-21T05:49:15.123456Z',
    stageTimestamp: '2026-11-21T05:49:15.223456Z',
  };
}

export interface ReplayedEvents {
  events: AuditEvent[];
  /** operationId -> the endpoint each event was built for, in order. */
  intended: string[];
}

/** One e2e.test event per (endpoint, test name) of APISnoop's list; '' names no test. */
export function apisnoopE2eEvents(catalogue: Catalogue, snoop: SnoopCoverage): ReplayedEvents {
  const ua = E2E_UA(snoop.release);
  const events: AuditEvent[] = [];
  const intended: string[] = [];
  for (const s of snoop.endpoints) {
    const ep = catalogue.byOperationId(s.endpoint);
    if (!ep) throw new Error(`${s.endpoint} of APISnoop ${snoop.release} is not in the catalogue`);
    for (const t of s.tests) {
      if (t === null) continue;
      events.push(auditEvent(ep, t === '' ? ua : `${ua} -- ${t}`));
      intended.push(s.endpoint);
    }
  }
  return { events, intended };
}

/** Clients other than e2e.test, each using some endpoints `hits` times. */
export const USAGE_CLIENTS: ReadonlyArray<{ ua: string; user: string }> = [
  { ua: 'kubectl/v1.35.0 (linux/amd64) kubernetes/0123456', user: 'kubernetes-admin' },
  { ua: 'kube-controller-manager/v1.35.0 (linux/amd64) kubernetes/0123456/system:serviceaccount:kube-system:deployment-controller', user: 'system:serviceaccount:kube-system:deployment-controller' },
  { ua: 'kubelet/v1.35.0 (linux/amd64) kubernetes/0123456', user: 'system:node:worker-1' },
  { ua: 'manager/v0.0.0 (linux/amd64) kubernetes/$Format', user: 'system:serviceaccount:cert-manager:cert-manager' },
];

export function usageEvents(catalogue: Catalogue, plan: ReadonlyArray<{ client: number; endpoint: string; hits: number }>): AuditEvent[] {
  const out: AuditEvent[] = [];
  for (const p of plan) {
    const ep = catalogue.byOperationId(p.endpoint);
    if (!ep) throw new Error(`${p.endpoint} is not in the catalogue`);
    const c = USAGE_CLIENTS[p.client]!;
    for (let i = 0; i < p.hits; i++) out.push(auditEvent(ep, c.ua, c.user));
  }
  return out;
}
