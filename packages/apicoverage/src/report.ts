/**
 * API usage and coverage from mapped audit events, in APISnoop's terms:
 *
 * - an endpoint is *hit* when any request maps to it, *tested* when an e2e.test request hits it
 *   (whatever the test, even none named), *conformance-tested* (`conf_tested`) when the e2e.test
 *   request's test name carries `[Conformance]`;
 * - the endpoints counted are the catalogue's coverage endpoints (every operation but the watch and
 *   watchlist actions): APISnoop's "total endpoints";
 * - an endpoint is *conformance eligible* when it is stable, its description does not say
 *   "deprecated", and it is not in APISnoop's ineligible list (`ineligible_endpoints.json`), as
 *   APISnoop's `conformance.eligible_endpoint` view has it;
 * - *usage* is what clients other than e2e.test do: untested stable endpoints are ranked by it.
 *
 * One request is counted once: the stages of one audit ID (RequestReceived, ResponseStarted,
 * ResponseComplete, Panic) are one request ({@link StageDeduper}).
 */
import type { AuditEvent } from '@kube-correlate/audit';
import { Catalogue } from './catalogue.js';
import { identify, isE2e } from './identity.js';
import { mapAuditEvent } from './mapping.js';
import type { Endpoint, EndpointMatch, Identity, Level } from './types.js';

export const LEVELS: readonly Level[] = ['stable', 'beta', 'alpha'];

/** One entry of APISnoop's `ineligible_endpoints.json`. */
export interface IneligibleEndpoint {
  endpoint: string;
  reason: string;
  link?: string;
}

/**
 * APISnoop's list of stable endpoints that are not eligible for conformance
 * (resources/coverage/ineligible_endpoints.json at the time of the 1.35.0 coverage file), grouped
 * by reason. Give another list with `ReportOptions.ineligible` (or `--ineligible <file>`).
 */
const APISNOOP_INELIGIBLE_GROUPS: ReadonlyArray<{ reason: string; link: string; endpoints: readonly string[] }> = [
  {
    reason: 'Unable to be tested, and likely soon deprecated',
    link: 'https://github.com/kubernetes/kubernetes/issues/95930',
    endpoints: [
      'connectCoreV1DeleteNodeProxy', 'connectCoreV1DeleteNodeProxyWithPath', 'connectCoreV1GetNodeProxy', 'connectCoreV1GetNodeProxyWithPath',
      'connectCoreV1HeadNodeProxy', 'connectCoreV1HeadNodeProxyWithPath', 'connectCoreV1OptionsNodeProxy', 'connectCoreV1OptionsNodeProxyWithPath',
      'connectCoreV1PatchNodeProxy', 'connectCoreV1PatchNodeProxyWithPath', 'connectCoreV1PostNodeProxy', 'connectCoreV1PostNodeProxyWithPath',
      'connectCoreV1PutNodeProxy', 'connectCoreV1PutNodeProxyWithPath',
    ],
  },
  {
    reason: 'Explicitly designed to be a debug feature',
    link: 'https://github.com/kubernetes/kubernetes/issues/112778#issuecomment-1427995711',
    endpoints: ['connectCoreV1GetNamespacedPodAttach', 'connectCoreV1GetNamespacedPodPortforward', 'connectCoreV1PostNamespacedPodAttach'],
  },
  {
    reason: 'Deprecated and uses a sometime unreliable SPDY protocol',
    link: 'https://github.com/kubernetes/kubernetes/issues/133689#issuecomment-3233952615',
    endpoints: ['connectCoreV1PostNamespacedPodExec', 'connectCoreV1PostNamespacedPodPortforward'],
  },
  {
    reason: 'Cluster providers are allowed to choose to not serve this API, and the whoami command handles unavailability gracefully.',
    link: 'https://github.com/kubernetes/enhancements/blob/master/keps/sig-auth/3325-self-subject-attributes-review-api/README.md#ga',
    endpoints: ['createAuthenticationV1SelfSubjectReview'],
  },
  {
    reason: 'Endpoint likely to be deprecated',
    link: 'https://github.com/kubernetes/kubernetes/issues/112657#issuecomment-1265441626',
    endpoints: ['createAuthorizationV1SelfSubjectRulesReview'],
  },
  {
    reason: 'optional feature',
    link: 'https://github.com/kubernetes/kubernetes/pull/106595#issuecomment-1006015756',
    endpoints: [
      'createAutoscalingV1NamespacedHorizontalPodAutoscaler', 'createAutoscalingV2NamespacedHorizontalPodAutoscaler',
      'deleteAutoscalingV1CollectionNamespacedHorizontalPodAutoscaler', 'deleteAutoscalingV1NamespacedHorizontalPodAutoscaler',
      'deleteAutoscalingV2CollectionNamespacedHorizontalPodAutoscaler', 'deleteAutoscalingV2NamespacedHorizontalPodAutoscaler',
      'listAutoscalingV1HorizontalPodAutoscalerForAllNamespaces', 'listAutoscalingV1NamespacedHorizontalPodAutoscaler',
      'listAutoscalingV2HorizontalPodAutoscalerForAllNamespaces', 'listAutoscalingV2NamespacedHorizontalPodAutoscaler',
      'patchAutoscalingV1NamespacedHorizontalPodAutoscaler', 'patchAutoscalingV1NamespacedHorizontalPodAutoscalerStatus',
      'patchAutoscalingV2NamespacedHorizontalPodAutoscaler', 'patchAutoscalingV2NamespacedHorizontalPodAutoscalerStatus',
      'readAutoscalingV1NamespacedHorizontalPodAutoscaler', 'readAutoscalingV1NamespacedHorizontalPodAutoscalerStatus',
      'readAutoscalingV2NamespacedHorizontalPodAutoscaler', 'readAutoscalingV2NamespacedHorizontalPodAutoscalerStatus',
      'replaceAutoscalingV1NamespacedHorizontalPodAutoscaler', 'replaceAutoscalingV1NamespacedHorizontalPodAutoscalerStatus',
      'replaceAutoscalingV2NamespacedHorizontalPodAutoscaler', 'replaceAutoscalingV2NamespacedHorizontalPodAutoscalerStatus',
    ],
  },
  {
    reason: 'Endpoint was deprecated in 1.7',
    link: 'https://github.com/kubernetes/kubernetes/pull/47041',
    endpoints: ['createCoreV1NamespacedBinding'],
  },
  {
    reason: 'optional feature',
    link: 'https://github.com/kubernetes/kubernetes/pull/100149#issuecomment-800501953',
    endpoints: [
      'createNetworkingV1NamespacedNetworkPolicy', 'deleteNetworkingV1CollectionNamespacedNetworkPolicy',
      'deleteNetworkingV1NamespacedNetworkPolicy', 'listNetworkingV1NamespacedNetworkPolicy', 'listNetworkingV1NetworkPolicyForAllNamespaces',
      'patchNetworkingV1NamespacedNetworkPolicy', 'readNetworkingV1NamespacedNetworkPolicy', 'replaceNetworkingV1NamespacedNetworkPolicy',
    ],
  },
  {
    reason: 'Kubernetes distribution would reasonably not allow this action via the API',
    link: 'https://github.com/kubernetes/enhancements/pull/4983#issuecomment-2541699445',
    endpoints: [
      'createNetworkingV1ServiceCIDR', 'deleteNetworkingV1CollectionServiceCIDR', 'deleteNetworkingV1ServiceCIDR', 'patchNetworkingV1ServiceCIDR',
      'patchNetworkingV1ServiceCIDRStatus', 'replaceNetworkingV1ServiceCIDR', 'replaceNetworkingV1ServiceCIDRStatus',
    ],
  },
  {
    reason: 'optional feature',
    link: 'https://kubernetes.io/docs/reference/access-authn-authz/rbac/',
    endpoints: [
      'createRbacAuthorizationV1ClusterRole', 'createRbacAuthorizationV1ClusterRoleBinding', 'createRbacAuthorizationV1NamespacedRole',
      'createRbacAuthorizationV1NamespacedRoleBinding', 'deleteRbacAuthorizationV1ClusterRole', 'deleteRbacAuthorizationV1ClusterRoleBinding',
      'deleteRbacAuthorizationV1CollectionClusterRole', 'deleteRbacAuthorizationV1CollectionClusterRoleBinding',
      'deleteRbacAuthorizationV1CollectionNamespacedRole', 'deleteRbacAuthorizationV1CollectionNamespacedRoleBinding',
      'deleteRbacAuthorizationV1NamespacedRole', 'deleteRbacAuthorizationV1NamespacedRoleBinding', 'getRbacAuthorizationAPIGroup',
      'getRbacAuthorizationV1APIResources', 'listRbacAuthorizationV1ClusterRole', 'listRbacAuthorizationV1ClusterRoleBinding',
      'listRbacAuthorizationV1NamespacedRole', 'listRbacAuthorizationV1NamespacedRoleBinding', 'listRbacAuthorizationV1RoleBindingForAllNamespaces',
      'listRbacAuthorizationV1RoleForAllNamespaces', 'patchRbacAuthorizationV1ClusterRole', 'patchRbacAuthorizationV1ClusterRoleBinding',
      'patchRbacAuthorizationV1NamespacedRole', 'patchRbacAuthorizationV1NamespacedRoleBinding', 'readRbacAuthorizationV1ClusterRole',
      'readRbacAuthorizationV1ClusterRoleBinding', 'readRbacAuthorizationV1NamespacedRole', 'readRbacAuthorizationV1NamespacedRoleBinding',
      'replaceRbacAuthorizationV1ClusterRole', 'replaceRbacAuthorizationV1ClusterRoleBinding', 'replaceRbacAuthorizationV1NamespacedRole',
      'replaceRbacAuthorizationV1NamespacedRoleBinding',
    ],
  },
  {
    reason: 'Kubernetes distribution would reasonably not allow this action via the API',
    link: 'https://github.com/kubernetes/kubernetes/issues/109379',
    endpoints: ['deleteCoreV1CollectionNode', 'readCoreV1NodeStatus', 'replaceCoreV1NodeStatus'],
  },
  {
    reason: 'The endpoint is part of a group that has no stable endpoints yet, reporting as a stable endpoint in apisnoop.',
    link: 'https://github.com/kubernetes/issues/124248',
    endpoints: ['getInternalApiserverAPIGroup', 'getResourceAPIGroup', 'getStoragemigrationAPIGroup'],
  },
  {
    reason: 'pending deprecation',
    link: 'https://github.com/kubernetes/community/blame/master/contributors/devel/sig-architecture/conformance-tests.md#L69',
    endpoints: ['listCoreV1ComponentStatus', 'readCoreV1ComponentStatus'],
  },
  {
    reason: 'optional feature',
    link: 'https://github.com/kubernetes/kubernetes/issues/108675',
    endpoints: ['logFileHandler', 'logFileListHandler'],
  },
];

/** APISnoop's ineligible endpoints (see {@link APISNOOP_INELIGIBLE_GROUPS}). */
export const APISNOOP_INELIGIBLE_ENDPOINTS: readonly IneligibleEndpoint[] = APISNOOP_INELIGIBLE_GROUPS.flatMap((g) =>
  g.endpoints.map((endpoint) => ({ endpoint, reason: g.reason, link: g.link })),
);

/**
 * Reads APISnoop's `ineligible_endpoints.json` shape (`[{endpoint, reason, link}]`). Throws with
 * what is wrong.
 */
export function parseIneligibleEndpoints(json: unknown): IneligibleEndpoint[] {
  if (!Array.isArray(json)) throw new Error('ineligible endpoints: expected a JSON array of {endpoint, reason, link}');
  return json.map((item, i) => {
    const r = item as Partial<IneligibleEndpoint> | null;
    if (typeof r !== 'object' || r === null || typeof r.endpoint !== 'string' || r.endpoint === '') {
      throw new Error(`ineligible endpoints: item ${i} has no "endpoint" string`);
    }
    return { endpoint: r.endpoint, reason: typeof r.reason === 'string' ? r.reason : '', ...(typeof r.link === 'string' ? { link: r.link } : {}) };
  });
}

/** Why an endpoint is not conformance eligible, or undefined when it is. */
export function ineligibility(endpoint: Endpoint, ineligible: ReadonlyMap<string, string>): string | undefined {
  if (endpoint.level !== 'stable') return `${endpoint.level} endpoint`;
  if (/deprecated/i.test(endpoint.description)) return 'deprecated (its description says so)';
  const listed = ineligible.get(endpoint.operationId);
  if (listed !== undefined) return `ineligible: ${listed || 'listed in the ineligible endpoints'}`;
  return undefined;
}

// -------------------------------------------------------------------------------------------------
// Counting requests once.

const TERMINAL_STAGES: ReadonlySet<string> = new Set(['ResponseComplete', 'Panic']);

/**
 * Counts a request once whatever stages of it the log has. In a log file the stages of one audit ID
 * come in time order, with other requests in between: the first stage seen counts, the later ones
 * do not (IDs wait in a set until their terminal stage, ResponseComplete or Panic, comes, so the set
 * holds only requests in flight). In the store they come together (ordered by audit ID): a stage
 * with the same ID as the one before never counts. Events without an audit ID always count.
 */
export class StageDeduper {
  private readonly open = new Set<string>();
  private last = '';

  /** True when this event is the first seen of its request. */
  first(event: Pick<AuditEvent, 'auditID' | 'stage'>): boolean {
    const id = event.auditID;
    if (typeof id !== 'string' || id === '') return true;
    const terminal = TERMINAL_STAGES.has(event.stage);
    if (id === this.last) {
      if (terminal) this.open.delete(id);
      return false;
    }
    this.last = id;
    if (terminal) return !this.open.delete(id);
    if (this.open.has(id)) return false;
    this.open.add(id);
    return true;
  }

  /** Requests whose terminal stage has not been seen (yet). */
  get inFlight(): number {
    return this.open.size;
  }
}

// -------------------------------------------------------------------------------------------------
// The report.

/** Usage and coverage of one endpoint. */
export interface EndpointCoverage {
  endpoint: Endpoint;
  /** Requests that hit it. */
  hits: number;
  /** Requests from e2e.test. */
  e2eHits: number;
  /** Requests from everyone else: real usage. */
  usageHits: number;
  /** Identity key -> requests, most first. */
  identities: Array<{ key: string; hits: number }>;
  /** e2e test names that hit it, sorted ('' for e2e.test requests that named no test). */
  tests: string[];
  /** Hit by an e2e.test request. */
  tested: boolean;
  /** Hit by an e2e.test request of a `[Conformance]` test. */
  conf_tested: boolean;
  /** Conformance eligible (stable, not deprecated, not in the ineligible list). */
  eligible: boolean;
  /** Why not eligible, '' when eligible. */
  ineligibleReason: string;
}

export interface LevelCounts {
  total: number;
  hit: number;
  tested: number;
  confTested: number;
}

/** What one identity (client) did. */
export interface IdentityUsage {
  key: string;
  program: string;
  /** Versions of the program seen (at most 10). */
  versions: string[];
  /** Users seen (at most 10). */
  users: string[];
  /** Requests, whatever they mapped to. */
  requests: number;
  /** Requests that hit a coverage endpoint. */
  endpointRequests: number;
  nonResource: number;
  unmatched: number;
  /** Requests that hit an endpoint outside the coverage set (watch, watchlist). */
  excluded: number;
  /** Endpoint operationId -> requests, most first. */
  endpoints: Array<{ endpoint: string; hits: number }>;
  /** Distinct endpoints and requests per level. */
  levels: Record<Level, { endpoints: number; hits: number }>;
  /** Category -> requests, most first. */
  categories: Array<{ category: string; hits: number }>;
  /** Distinct e2e test names (e2e.test only). */
  tests: number;
}

export interface CoverageSummary {
  /** Coverage endpoints (APISnoop's "total endpoints"). */
  totalEndpoints: number;
  hitEndpoints: number;
  testedEndpoints: number;
  confTestedEndpoints: number;
  /** Hit by a client other than e2e.test and not tested. */
  hitUntestedEndpoints: number;
  eligibleEndpoints: number;
  /** Eligible and conformance-tested. */
  testedEligibleEndpoints: number;
  /** Eligible endpoints not in the previous release's spec; null without one. */
  newEligibleEndpoints: number | null;
  newTestedEligibleEndpoints: number | null;
  byLevel: Record<Level, LevelCounts>;
  /** Requests counted (each audit ID once). */
  requests: number;
  endpointRequests: number;
  nonResourceRequests: number;
  unmatchedRequests: number;
  excludedRequests: number;
  /** Further stages of requests already counted. */
  duplicateStages: number;
  /** Lines (or rows) that were not audit events. */
  unparseable: number;
}

export interface ReportMeta {
  /** Release, e.g. `1.35.0` (APISnoop's form). */
  release: string;
  /** The Kubernetes version as its source says it: the server's `/version` (`v1.37.2`), or the spec's `info.version` (`1.37`); '' when unknown. */
  version: string;
  /** Where the spec came from (file, URL, cluster). */
  spec: string;
  /** Where the audit events came from. */
  sources: string[];
  /** APISnoop's `release_date`: `YYYY-MM-DDTHH:MM:SS`. */
  releaseDate: string;
  /** When the report was made (ISO 8601). */
  generated: string;
}

export interface CoverageReport {
  meta: ReportMeta;
  summary: CoverageSummary;
  /** Every coverage endpoint: level (stable, beta, alpha), then category, then operationId. */
  endpoints: EndpointCoverage[];
  /** Stable endpoints without a conformance test that clients other than e2e.test use, most used first. */
  untestedStableByUsage: EndpointCoverage[];
  /** Most requests first. */
  identities: IdentityUsage[];
  /** e2e test names seen, sorted, with whether each is a conformance test. */
  tests: Array<{ test: string; conformance: boolean }>;
  nonResource: { total: number; byKind: Array<{ kind: string; requests: number }> };
  unmatched: { total: number; byReason: Array<{ reason: string; requests: number; samples: string[] }> };
  /** Requests to endpoints outside the coverage set (watch, watchlist), by operationId. */
  excluded: { total: number; byEndpoint: Array<{ endpoint: string; requests: number }> };
  unparseable: { total: number; samples: string[] };
}

export interface ReportOptions {
  release?: string;
  /** See ReportMeta.version. Default: the release. */
  version?: string;
  spec?: string;
  sources?: string[];
  releaseDate?: string;
  /** Default: APISnoop's list ({@link APISNOOP_INELIGIBLE_ENDPOINTS}). */
  ineligible?: readonly IneligibleEndpoint[];
  /** operationIds of the previous release's spec, for "new conformance eligible endpoints". */
  previousEndpoints?: Iterable<string>;
  /** Default: now. */
  now?: Date;
}

/** Where a request went, for samples of what did not map. */
export interface RequestSample {
  verb?: string;
  requestURI?: string;
}

interface EndpointAcc {
  hits: number;
  e2eHits: number;
  identities: Map<string, number>;
  tests: Set<string>;
  confTested: boolean;
}

interface IdentityAcc {
  identity: Identity;
  versions: Set<string>;
  users: Set<string>;
  requests: number;
  endpointRequests: number;
  nonResource: number;
  unmatched: number;
  excluded: number;
  endpoints: Map<string, number>;
  tests: Set<string>;
}

const MAX_SAMPLES = 5;
const MAX_DISTINCT = 10;

function bump<K>(m: Map<K, number>, k: K, n = 1): void {
  m.set(k, (m.get(k) ?? 0) + n);
}

function sortedCounts<K>(m: Map<K, number>): Array<[K, number]> {
  return [...m].sort((a, b) => b[1] - a[1] || String(a[0]).localeCompare(String(b[0])));
}

function addCapped(s: Set<string>, v: string): void {
  if (v !== '' && s.size < MAX_DISTINCT) s.add(v);
}

const LEVEL_ORDER: Record<Level, number> = { stable: 0, beta: 1, alpha: 2 };

/** Endpoint order of the report: level (stable, beta, alpha), category, operationId. */
export function compareEndpoints(a: Endpoint, b: Endpoint): number {
  return LEVEL_ORDER[a.level] - LEVEL_ORDER[b.level] || a.category.localeCompare(b.category) || a.operationId.localeCompare(b.operationId);
}

/** `YYYY-MM-DDTHH:MM:SS` (APISnoop's release_date). */
function apisnoopDate(d: Date): string {
  return d.toISOString().slice(0, 19);
}

/** The part of a catalogue the collector needs. */
export interface CoverageCatalogue {
  coverageEndpoints(): Endpoint[];
}

export type EventMapper = (event: Pick<AuditEvent, 'requestURI' | 'verb' | 'objectRef'>) => EndpointMatch;

/**
 * Aggregates requests into a {@link CoverageReport}. Feed audit events with `addEvent` (mapped with
 * the given mapper, identified with {@link identify}, each request once), or already mapped
 * requests with `add`.
 */
export class CoverageCollector {
  private readonly coverage: Map<string, Endpoint>;
  private readonly acc = new Map<string, EndpointAcc>();
  private readonly ids = new Map<string, IdentityAcc>();
  private readonly testNames = new Map<string, boolean>();
  private readonly nonResource = new Map<string, number>();
  private readonly unmatchedReasons = new Map<string, { requests: number; samples: string[] }>();
  private readonly excludedEndpoints = new Map<string, number>();
  private readonly unparseableSamples: string[] = [];
  private readonly dedupe = new StageDeduper();
  private requests = 0;
  private duplicates = 0;
  private unparseableCount = 0;

  private readonly map: EventMapper | undefined;

  /** `map` defaults to {@link mapAuditEvent} over the catalogue when it is a {@link Catalogue}. */
  constructor(catalogue: CoverageCatalogue, map?: EventMapper) {
    this.map = map ?? (catalogue instanceof Catalogue ? (e) => mapAuditEvent(catalogue, e) : undefined);
    this.coverage = new Map(catalogue.coverageEndpoints().map((e) => [e.operationId, e]));
  }

  /** Maps and counts an audit event; false when it is a further stage of a request already counted. */
  addEvent(event: AuditEvent): boolean {
    if (!this.map) throw new Error('CoverageCollector: addEvent needs a Catalogue or an event mapper');
    if (!this.dedupe.first(event)) {
      this.duplicates++;
      return false;
    }
    this.add(this.map(event), identify(event), event);
    return true;
  }

  /** Counts a line or row that was not an audit event. */
  addUnparseable(reason: string): void {
    this.unparseableCount++;
    if (this.unparseableSamples.length < MAX_SAMPLES) this.unparseableSamples.push(reason);
  }

  /** Counts one request. */
  add(match: EndpointMatch, identity: Identity, sample: RequestSample = {}): void {
    this.requests++;
    const id = this.identityAcc(identity);
    id.requests++;
    if (match.type === 'non-resource') {
      bump(this.nonResource, match.kind);
      id.nonResource++;
      return;
    }
    if (match.type === 'unmatched') {
      let r = this.unmatchedReasons.get(match.reason);
      if (!r) this.unmatchedReasons.set(match.reason, (r = { requests: 0, samples: [] }));
      r.requests++;
      if (r.samples.length < MAX_SAMPLES) r.samples.push(`${sample.verb ?? '?'} ${sample.requestURI ?? '?'} (${identity.key})`);
      id.unmatched++;
      return;
    }
    const opId = match.endpoint.operationId;
    if (!this.coverage.has(opId)) {
      bump(this.excludedEndpoints, opId);
      id.excluded++;
      return;
    }
    id.endpointRequests++;
    bump(id.endpoints, opId);
    let a = this.acc.get(opId);
    if (!a) this.acc.set(opId, (a = { hits: 0, e2eHits: 0, identities: new Map(), tests: new Set(), confTested: false }));
    a.hits++;
    bump(a.identities, identity.key);
    if (isE2e(identity)) {
      a.e2eHits++;
      a.tests.add(identity.test);
      this.testNames.set(identity.test, identity.conformance);
      if (identity.conformance) a.confTested = true;
    }
  }

  private identityAcc(identity: Identity): IdentityAcc {
    let id = this.ids.get(identity.key);
    if (!id) {
      id = {
        identity,
        versions: new Set(),
        users: new Set(),
        requests: 0,
        endpointRequests: 0,
        nonResource: 0,
        unmatched: 0,
        excluded: 0,
        endpoints: new Map(),
        tests: new Set(),
      };
      this.ids.set(identity.key, id);
    }
    addCapped(id.versions, identity.version);
    addCapped(id.users, identity.user);
    if (isE2e(identity)) id.tests.add(identity.test);
    return id;
  }

  /** The report of what was added so far. */
  report(options: ReportOptions = {}): CoverageReport {
    const now = options.now ?? new Date();
    const ineligible = new Map((options.ineligible ?? APISNOOP_INELIGIBLE_ENDPOINTS).map((i) => [i.endpoint, i.reason]));
    const previous = options.previousEndpoints ? new Set(options.previousEndpoints) : undefined;
    const endpoints: EndpointCoverage[] = [...this.coverage.values()].sort(compareEndpoints).map((endpoint) => {
      const a = this.acc.get(endpoint.operationId);
      const reason = ineligibility(endpoint, ineligible);
      return {
        endpoint,
        hits: a?.hits ?? 0,
        e2eHits: a?.e2eHits ?? 0,
        usageHits: (a?.hits ?? 0) - (a?.e2eHits ?? 0),
        identities: a ? sortedCounts(a.identities).map(([key, hits]) => ({ key, hits })) : [],
        tests: a ? [...a.tests].sort() : [],
        tested: (a?.e2eHits ?? 0) > 0,
        conf_tested: a?.confTested ?? false,
        eligible: reason === undefined,
        ineligibleReason: reason ?? '',
      };
    });

    const byLevel = Object.fromEntries(LEVELS.map((l) => [l, { total: 0, hit: 0, tested: 0, confTested: 0 }])) as Record<Level, LevelCounts>;
    let eligible = 0;
    let testedEligible = 0;
    let newEligible = 0;
    let newTestedEligible = 0;
    let hitUntested = 0;
    for (const e of endpoints) {
      const l = byLevel[e.endpoint.level];
      l.total++;
      if (e.hits > 0) l.hit++;
      if (e.tested) l.tested++;
      if (e.conf_tested) l.confTested++;
      if (e.usageHits > 0 && !e.tested) hitUntested++;
      if (!e.eligible) continue;
      eligible++;
      if (e.conf_tested) testedEligible++;
      if (previous && !previous.has(e.endpoint.operationId)) {
        newEligible++;
        if (e.conf_tested) newTestedEligible++;
      }
    }
    const sum = (f: (c: LevelCounts) => number) => LEVELS.reduce((s, l) => s + f(byLevel[l]), 0);
    const count = (m: Map<unknown, number>) => [...m.values()].reduce((s, n) => s + n, 0);
    const levelOf = new Map(endpoints.map((e) => [e.endpoint.operationId, e.endpoint]));

    const identities: IdentityUsage[] = [...this.ids.values()]
      .sort((a, b) => b.requests - a.requests || a.identity.key.localeCompare(b.identity.key))
      .map((id) => {
        const levels = Object.fromEntries(LEVELS.map((l) => [l, { endpoints: 0, hits: 0 }])) as IdentityUsage['levels'];
        const categories = new Map<string, number>();
        for (const [opId, hits] of id.endpoints) {
          const ep = levelOf.get(opId)!;
          levels[ep.level].endpoints++;
          levels[ep.level].hits += hits;
          bump(categories, ep.category, hits);
        }
        return {
          key: id.identity.key,
          program: id.identity.program,
          versions: [...id.versions].sort(),
          users: [...id.users].sort(),
          requests: id.requests,
          endpointRequests: id.endpointRequests,
          nonResource: id.nonResource,
          unmatched: id.unmatched,
          excluded: id.excluded,
          endpoints: sortedCounts(id.endpoints).map(([endpoint, hits]) => ({ endpoint, hits })),
          levels,
          categories: sortedCounts(categories).map(([category, hits]) => ({ category, hits })),
          tests: id.tests.size,
        };
      });

    const summary: CoverageSummary = {
      totalEndpoints: endpoints.length,
      hitEndpoints: sum((c) => c.hit),
      testedEndpoints: sum((c) => c.tested),
      confTestedEndpoints: sum((c) => c.confTested),
      hitUntestedEndpoints: hitUntested,
      eligibleEndpoints: eligible,
      testedEligibleEndpoints: testedEligible,
      newEligibleEndpoints: previous ? newEligible : null,
      newTestedEligibleEndpoints: previous ? newTestedEligible : null,
      byLevel,
      requests: this.requests,
      endpointRequests: this.requests - count(this.nonResource) - [...this.unmatchedReasons.values()].reduce((s, r) => s + r.requests, 0) - count(this.excludedEndpoints),
      nonResourceRequests: count(this.nonResource),
      unmatchedRequests: [...this.unmatchedReasons.values()].reduce((s, r) => s + r.requests, 0),
      excludedRequests: count(this.excludedEndpoints),
      duplicateStages: this.duplicates,
      unparseable: this.unparseableCount,
    };

    return {
      meta: {
        release: options.release ?? '',
        version: options.version ?? options.release ?? '',
        spec: options.spec ?? '',
        sources: options.sources ?? [],
        releaseDate: options.releaseDate ?? apisnoopDate(now),
        generated: now.toISOString(),
      },
      summary,
      endpoints,
      untestedStableByUsage: endpoints
        .filter((e) => e.endpoint.level === 'stable' && !e.conf_tested && e.usageHits > 0)
        .sort((a, b) => b.usageHits - a.usageHits || a.endpoint.operationId.localeCompare(b.endpoint.operationId)),
      identities,
      tests: [...this.testNames].sort((a, b) => a[0].localeCompare(b[0])).map(([test, conformance]) => ({ test, conformance })),
      nonResource: { total: summary.nonResourceRequests, byKind: sortedCounts(this.nonResource).map(([kind, requests]) => ({ kind, requests })) },
      unmatched: {
        total: summary.unmatchedRequests,
        byReason: [...this.unmatchedReasons]
          .sort((a, b) => b[1].requests - a[1].requests || a[0].localeCompare(b[0]))
          .map(([reason, r]) => ({ reason, requests: r.requests, samples: r.samples })),
      },
      excluded: { total: summary.excludedRequests, byEndpoint: sortedCounts(this.excludedEndpoints).map(([endpoint, requests]) => ({ endpoint, requests })) },
      unparseable: { total: this.unparseableCount, samples: [...this.unparseableSamples] },
    };
  }
}

/** The report of a set of audit events (each request once), mapped with `options.map` (default {@link mapAuditEvent}). */
export function coverageReport(catalogue: CoverageCatalogue, events: Iterable<AuditEvent>, options: ReportOptions & { map?: EventMapper } = {}): CoverageReport {
  const c = new CoverageCollector(catalogue, options.map);
  for (const e of events) c.addEvent(e);
  return c.report(options);
}

/** `v1.35.0`, `1.35`, `v1.35.0-alpha.1` -> `1.35.0` (APISnoop's release), or '' when not a version. */
export function releaseOf(version: string): string {
  const m = /^v?(\d+)\.(\d+)(?:\.(\d+))?/.exec(version.trim());
  return m ? `${m[1]}.${m[2]}.${m[3] ?? '0'}` : '';
}
