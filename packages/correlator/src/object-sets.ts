import { auditIDForSpans, type AuditEvent } from '@kube-correlate/audit';
import { ANNOTATION_OBJSETID, isObjsetIdAuditAnnotation } from '@kube-correlate/semconv';

/**
 * Objects and object sets, from what audit events carry (DESIGN.md, "Contracts"; issue 4).
 *
 * An object is known by its uid from a Request/RequestResponse-level `responseObject` (or
 * `requestObject`). Its object set is, in order of precedence:
 *  1. its `trace.kubernetes.io/objsetid` annotation (the log-tracking KEP's webhook writes it);
 *  2. an object-set id in the audit annotations of a request that touched it (our admission
 *     webhook records one there: `trace.kubernetes.io/objsetid`, or any key ending `/objectSetID`);
 *  3. the set of its controller (`ownerReferences` with `controller: true`), up any number of
 *     levels, so a ReplicaSet and its Pods join their Deployment's set with no webhook installed;
 *     an owner never seen is still the set (its uid), so children seen first group correctly;
 *  4. its own uid: a root object starts its own set.
 * These are resolved when read, so an owner seen after its children, or an annotation that comes
 * later, changes the answer for everything already stored: ObjectSets (object-set-resolution.ts)
 * over an ObjectIndex (object-index.ts) that a store implements.
 */

export interface ObjectRecord {
  uid: string;
  kind: string;
  apiVersion: string;
  /** Resource (plural) from the audit event's objectRef. */
  resource: string;
  namespace: string;
  name: string;
  /** uid of the controller owner, or ''. */
  ownerUid: string;
  /** Kind, name and apiVersion of the controller owner, from the ownerReference ('' when none). */
  ownerKind: string;
  ownerName: string;
  ownerApiVersion: string;
  /** From the object's trace.kubernetes.io/objsetid annotation, or ''. */
  objsetId: string;
  /** stageTimestamp of the first event that showed it. */
  firstSeen: string;
  deleted: boolean;
}

/** What one audit request touched. */
export interface ObjectRef {
  /** The 64-byte form, as stored. */
  auditId: string;
  resource: string;
  subresource: string;
  namespace: string;
  name: string;
  /** uid when the event names it (objectRef.uid or the object it carries), else ''. */
  uid: string;
  /** An object-set id from the event's audit annotations, or ''. */
  objsetId: string;
  requestReceived: string;
}

type OwnerReference = { uid?: string; controller?: boolean; kind?: string; name?: string; apiVersion?: string };
type Meta = { uid?: string; name?: string; namespace?: string; annotations?: Record<string, string>; ownerReferences?: OwnerReference[] };
type K8sObject = { kind?: string; apiVersion?: string; metadata?: Meta };

/**
 * Kinds of a response that is not the object itself: a metadata-only read (the garbage collector's
 * client asks for `PartialObjectMetadata`), a server-side table (kubectl get), a Status.
 */
const NOT_THE_OBJECT = new Set(['PartialObjectMetadata', 'PartialObjectMetadataList', 'Table', 'Status']);

/** Built-in resources (group/resource) and their kinds, for responses that do not name the kind. */
const BUILTIN_KINDS: Record<string, string> = {
  '/pods': 'Pod', '/services': 'Service', '/configmaps': 'ConfigMap', '/secrets': 'Secret', '/namespaces': 'Namespace',
  '/nodes': 'Node', '/serviceaccounts': 'ServiceAccount', '/endpoints': 'Endpoints', '/events': 'Event',
  '/persistentvolumeclaims': 'PersistentVolumeClaim', '/persistentvolumes': 'PersistentVolume',
  '/replicationcontrollers': 'ReplicationController', '/limitranges': 'LimitRange', '/resourcequotas': 'ResourceQuota',
  '/podtemplates': 'PodTemplate',
  'apps/deployments': 'Deployment', 'apps/replicasets': 'ReplicaSet', 'apps/statefulsets': 'StatefulSet',
  'apps/daemonsets': 'DaemonSet', 'apps/controllerrevisions': 'ControllerRevision',
  'batch/jobs': 'Job', 'batch/cronjobs': 'CronJob',
  'autoscaling/horizontalpodautoscalers': 'HorizontalPodAutoscaler', 'policy/poddisruptionbudgets': 'PodDisruptionBudget',
  'networking.k8s.io/ingresses': 'Ingress', 'networking.k8s.io/networkpolicies': 'NetworkPolicy',
  'discovery.k8s.io/endpointslices': 'EndpointSlice', 'coordination.k8s.io/leases': 'Lease', 'events.k8s.io/events': 'Event',
  'rbac.authorization.k8s.io/roles': 'Role', 'rbac.authorization.k8s.io/rolebindings': 'RoleBinding',
  'rbac.authorization.k8s.io/clusterroles': 'ClusterRole', 'rbac.authorization.k8s.io/clusterrolebindings': 'ClusterRoleBinding',
  'storage.k8s.io/storageclasses': 'StorageClass', 'apiextensions.k8s.io/customresourcedefinitions': 'CustomResourceDefinition',
  'admissionregistration.k8s.io/mutatingwebhookconfigurations': 'MutatingWebhookConfiguration',
  'admissionregistration.k8s.io/validatingwebhookconfigurations': 'ValidatingWebhookConfiguration',
};

/**
 * The kind of the object a request addressed: the kind the object carries when it is the object
 * itself, else the built-in kind of the addressed resource, else '' (unknown: a later event names
 * it). Never `PartialObjectMetadata`: that is the shape of a metadata-only response, not a kind.
 */
export function objectKind(carriedKind: string | undefined, resource: string | undefined, apiGroup: string | undefined): string {
  if (carriedKind && !NOT_THE_OBJECT.has(carriedKind)) return carriedKind;
  return BUILTIN_KINDS[`${apiGroup ?? ''}/${resource ?? ''}`] ?? '';
}

function carried(e: AuditEvent): K8sObject | undefined {
  for (const o of [e.responseObject, e.requestObject] as unknown[]) {
    const obj = o as K8sObject | undefined;
    if (obj && typeof obj === 'object' && obj.kind !== 'Status' && typeof obj.metadata?.uid === 'string' && obj.metadata.uid) return obj;
  }
  return undefined;
}

function auditObjsetId(e: AuditEvent): string {
  for (const [k, v] of Object.entries(e.annotations ?? {})) {
    if (isObjsetIdAuditAnnotation(k)) return v;
  }
  return '';
}

/** The object an audit event carries (if any) and what the request touched. */
export function objectsOfAudit(e: AuditEvent): { object?: ObjectRecord; ref: ObjectRef } {
  const obj = carried(e);
  const ref = e.objectRef ?? {};
  const code = e.responseStatus?.code ?? 0;
  const out: { object?: ObjectRecord; ref: ObjectRef } = {
    ref: {
      auditId: auditIDForSpans(e.auditID),
      resource: ref.resource ?? '',
      subresource: ref.subresource ?? '',
      namespace: ref.namespace ?? obj?.metadata?.namespace ?? '',
      name: ref.name ?? obj?.metadata?.name ?? '',
      uid: ref.uid ?? (ref.subresource ? '' : (obj?.metadata?.uid ?? '')),
      objsetId: auditObjsetId(e),
      requestReceived: e.requestReceivedTimestamp,
    },
  };
  if (obj && !ref.subresource) {
    const m = obj.metadata!;
    const owner = Array.isArray(m.ownerReferences) ? m.ownerReferences.find((o) => o?.controller === true && typeof o.uid === 'string') : undefined;
    const kind = objectKind(obj.kind, ref.resource, ref.apiGroup);
    out.object = {
      uid: m.uid!,
      kind,
      // A metadata-only response's apiVersion is meta.k8s.io's, not the object's.
      apiVersion: kind === obj.kind ? (obj.apiVersion ?? '') : ref.apiVersion ? `${ref.apiGroup ? `${ref.apiGroup}/` : ''}${ref.apiVersion}` : '',
      resource: ref.resource ?? '',
      namespace: m.namespace ?? ref.namespace ?? '',
      name: m.name ?? ref.name ?? '',
      ownerUid: owner?.uid ?? '',
      ownerKind: typeof owner?.kind === 'string' ? owner.kind : '',
      ownerName: typeof owner?.name === 'string' ? owner.name : '',
      ownerApiVersion: typeof owner?.apiVersion === 'string' ? owner.apiVersion : '',
      objsetId: m.annotations?.[ANNOTATION_OBJSETID] ?? '',
      firstSeen: e.stageTimestamp,
      deleted: e.verb === 'delete' && code >= 200 && code < 300,
    };
  }
  return out;
}

/** Default length of an object set's time window (`object_sets.window`): one hour. */
export const DEFAULT_OBJSET_WINDOW_MS = 3_600_000;

// The window start, the object-set trace ids and span ids are in @kube-correlate/semconv.
