import { readFileSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mutate, parseAdmissionReview, type AdmissionReviewRequest, type MutateResult } from '../src/index.js';
import { applyPatch } from './json-patch.js';
import { dataFile } from './shared-data.js';

/**
 * The webhook against what real kube-apiserver v1.37.2 and v1.34.4 recorded (../shared/data/captures,
 * README there). In those runs our webhook was registered for every resource and rewrote
 * `trace.kubernetes.io/span` on every ReplicaSet UPDATE of the deployment controller, which copies
 * the Deployment's annotations back on every sync: hundreds of UPDATEs and 409 conflicts in seconds.
 *
 * Each recorded write is turned into the AdmissionReview kube-apiserver would have sent: `object` =
 * the audit event's `requestObject` (the body as received, before admission), `oldObject` = the
 * object as last seen in an earlier `responseObject` with the same uid (the stored state the write
 * was admitted against, as close as the log shows it), and `traceparent` = the one kube-apiserver
 * sent our webhook for that very request (its `<webhook>/traceparent` audit annotation).
 */

const RELEASES = ['v1.37.2-full', 'v1.34.4-full'];
const DEPLOYMENT_CONTROLLER = 'system:serviceaccount:kube-system:deployment-controller';

type Obj = Record<string, unknown> & { kind?: string; metadata?: { uid?: string; name?: string; namespace?: string; ownerReferences?: Array<{ controller?: boolean }> } };
interface AuditEvent {
  auditID: string;
  stage: string;
  verb: string;
  user: { username: string };
  objectRef?: { resource?: string; subresource?: string; apiGroup?: string; apiVersion?: string; namespace?: string; name?: string };
  requestObject?: Obj;
  responseObject?: Obj;
  annotations?: Record<string, string>;
  responseStatus?: { code?: number };
}

/** One recorded write, as the AdmissionReview and headers our webhook would have been called with. */
interface RecordedWrite {
  event: AuditEvent;
  review: AdmissionReviewRequest;
  headers: { traceparent: string };
}

function loadWrites(release: string): { writes: RecordedWrite[]; withoutOldObject: number } {
  const lines = readFileSync(dataFile(`captures/${release}/audit.log`), 'utf8').split('\n').filter((l) => l.trim() !== '');
  const lastSeen = new Map<string, Obj>();
  const writes: RecordedWrite[] = [];
  let withoutOldObject = 0;
  let n = 0;
  for (const line of lines) {
    const e = JSON.parse(line) as AuditEvent;
    if (e.stage !== 'ResponseComplete') continue;
    const ref = e.objectRef ?? {};
    const body = e.requestObject;
    if ((e.verb === 'create' || e.verb === 'update') && !ref.subresource && body && typeof body === 'object' && body.metadata) {
      const operation = e.verb === 'create' ? 'CREATE' : 'UPDATE';
      const uid = body.metadata.uid;
      const oldObject = operation === 'UPDATE' && uid ? lastSeen.get(uid) : undefined;
      if (operation === 'UPDATE' && !oldObject) withoutOldObject++;
      const recorded = Object.entries(e.annotations ?? {}).find(([k]) => k.endsWith('/traceparent'))?.[1];
      const traceparent = recorded ?? `00-${(++n).toString(16).padStart(32, '0')}-${n.toString(16).padStart(16, '0')}-01`;
      const apiVersion = String(body['apiVersion'] ?? '');
      const [group, version] = apiVersion.includes('/') ? (apiVersion.split('/') as [string, string]) : ['', apiVersion];
      const review = parseAdmissionReview({
        apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview',
        request: {
          uid: e.auditID, kind: { group, version, kind: body.kind }, resource: { group: ref.apiGroup ?? '', version: ref.apiVersion ?? version, resource: ref.resource },
          name: ref.name ?? body.metadata.name, namespace: ref.namespace, operation, userInfo: e.user,
          object: body, oldObject: oldObject ?? null, dryRun: false,
          options: { apiVersion: 'meta.k8s.io/v1', kind: operation === 'CREATE' ? 'CreateOptions' : 'UpdateOptions' },
        },
      });
      writes.push({ event: e, review, headers: { traceparent } });
    }
    const seen = e.responseObject;
    if (seen && typeof seen === 'object' && seen.kind !== 'Status' && seen.kind !== 'PartialObjectMetadata' && !seen.kind?.endsWith('List') && seen.kind !== 'Table') {
      if (typeof seen.metadata?.uid === 'string') lastSeen.set(seen.metadata.uid, seen);
    }
  }
  return { writes, withoutOldObject };
}

const loaded = new Map(RELEASES.map((r) => [r, loadWrites(r)]));
const owned = (o: unknown): boolean => ((o as Obj).metadata?.ownerReferences ?? []).some((r) => r.controller === true);
const describe = (w: RecordedWrite, r: MutateResult) => `${w.review.request.operation} ${w.event.objectRef?.resource} ${w.review.request.name} (auditID ${w.event.auditID}): ${r.outcome} ${JSON.stringify(r.patch)}`;

for (const release of RELEASES) {
  test(`${release}: no ReplicaSet UPDATE of the deployment controller gets a patch (the recorded loop cannot start)`, () => {
    const { writes, withoutOldObject } = loaded.get(release)!;
    const rsUpdates = writes.filter((w) => w.event.objectRef?.resource === 'replicasets' && w.event.verb === 'update' && w.event.user.username === DEPLOYMENT_CONTROLLER);
    assert.ok(rsUpdates.length >= 300, `the recording holds the loop (${rsUpdates.length} ReplicaSet UPDATEs)`);
    assert.is(withoutOldObject, 0, 'every UPDATE has an earlier state of its object in the log');
    const conflicts = rsUpdates.filter((w) => w.event.responseStatus?.code === 409).length;
    assert.ok(conflicts >= 100, `${conflicts} of them were 409 conflicts`);
    for (const w of rsUpdates) {
      assert.ok(owned(w.review.request.object), 'a ReplicaSet of a Deployment has a controller owner');
      const r = mutate(w.review, w.headers);
      assert.equal(r.patch, [], describe(w, r));
      assert.is(r.outcome, 'owned', describe(w, r));
      assert.not.ok('patch' in r.review.response);
      // The audit event still names the request's context and the Deployment's set the controller copied.
      assert.is(r.review.response.auditAnnotations?.['traceparent'], w.headers.traceparent);
      assert.ok(r.review.response.auditAnnotations?.['objectSetID'], 'the copied objsetid is recorded');
    }
  });

  test(`${release}: every recorded CREATE and UPDATE converges: our patch applied, a second call patches nothing; owned objects are never patched`, () => {
    const { writes } = loaded.get(release)!;
    const byOutcome: Record<string, number> = {};
    for (const w of writes) {
      const r = mutate(w.review, w.headers);
      byOutcome[r.outcome] = (byOutcome[r.outcome] ?? 0) + 1;
      assert.is.not(r.outcome, 'error', describe(w, r));
      if (owned(w.review.request.object)) assert.equal(r.patch, [], describe(w, r));
      const again = mutate({ ...w.review, request: { ...w.review.request, object: applyPatch(w.review.request.object, r.patch) } }, w.headers, { newObjsetId: () => 'another-id' });
      assert.equal(again.patch, [], `second pass: ${describe(w, again)}`);
    }
    // Pods of ReplicaSets and ReplicaSets of Deployments are owned; the Deployment and the `kubernetes` Service are roots.
    assert.ok((byOutcome['owned'] ?? 0) >= 300, JSON.stringify(byOutcome));
    assert.ok((byOutcome['patched'] ?? 0) >= 2, JSON.stringify(byOutcome));
  });
}

test.run();
