/**
 * The shared vocabulary of @kube-correlate/apicoverage (APISnoop's, so that our JSON matches its
 * published coverage files in ../shared/data/apisnoop).
 */

/** stable | beta | alpha, from the endpoint's API version (v1, v2beta1, v1alpha3). */
export type Level = 'stable' | 'beta' | 'alpha';

/** One API operation of the OpenAPI spec (APISnoop's "endpoint"). */
export interface Endpoint {
  /** The spec's operationId, e.g. `createAppsV1NamespacedDeployment`: the endpoint's name. */
  operationId: string;
  /** The spec's path template, e.g. `/apis/apps/v1/namespaces/{namespace}/deployments`. */
  path: string;
  /** HTTP method, upper case. */
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE' | 'HEAD' | 'OPTIONS';
  /** `x-kubernetes-action`: get, list, watch, watchlist, create, update, patch, delete, deletecollection, connect, put, post, ... */
  action: string;
  /** API group ('' for core). */
  group: string;
  /** API version, e.g. v1, v1beta1. */
  version: string;
  /** Kind from `x-kubernetes-group-version-kind`, '' when the spec has none. */
  kind: string;
  level: Level;
  /** APISnoop's category, e.g. core, apps, rbacAuthorization, from the operation's tag. */
  category: string;
  description: string;
}

/** What one audit event maps to. */
export type EndpointMatch =
  | { type: 'endpoint'; endpoint: Endpoint }
  /** A non-resource URL: /healthz, /livez, /readyz, /metrics, /version, /openapi/..., /api, /apis discovery, ... */
  | { type: 'non-resource'; kind: string }
  /** Nothing in the spec: kept, with why (unknown path, verb not served at that path, CRD or aggregated API, ...). */
  | { type: 'unmatched'; reason: string };

/** Who made a request, as an operator groups by it (KEP-16). */
export interface Identity {
  /** A stable key to group by, e.g. `kubectl`, `kube-controller-manager/deployment-controller`, `e2e.test`. */
  key: string;
  /** The program from the user agent (`kubectl`, `kube-controller-manager`, `e2e.test`, ...), or ''. */
  program: string;
  /** Program version from the user agent, or ''. */
  version: string;
  os: string;
  arch: string;
  /** The part after the first space-separated `project/commit`, e.g. `kubernetes/abc1234`, or ''. */
  commit: string;
  /** The controller or component named after ` -- ` or in the user name, e.g. `deployment-controller`, or ''. */
  component: string;
  /** The e2e test name after ` -- ` (e2e.test user agents), or ''. */
  test: string;
  /** The test carries `[Conformance]`. */
  conformance: boolean;
  /** The authenticated user (or the service account as `system:serviceaccount:<ns>:<name>`). */
  user: string;
  /** `<namespace>/<name>` when the user is a service account, else ''. */
  serviceAccount: string;
}
