import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A v1 Event as kube-apiserver's log backend writes it (kind/apiVersion on every line). */
export function v1Event(auditID: string, stage = 'ResponseComplete', extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    kind: 'Event',
    apiVersion: 'audit.k8s.io/v1',
    level: 'Metadata',
    auditID,
    stage,
    requestURI: '/api/v1/namespaces/default/configmaps',
    verb: 'create',
    user: { username: 'kubernetes-admin', groups: ['system:masters', 'system:authenticated'] },
    sourceIPs: ['192.168.1.10'],
    userAgent: 'kubectl/v1.34.0 (linux/amd64) kubernetes/abcdef0',
    objectRef: { resource: 'configmaps', namespace: 'default', name: 'cm1', apiVersion: 'v1' },
    requestReceivedTimestamp: '2026-11-21T05:49:15.123456Z',
    stageTimestamp: '2026-11-21T05:49:15.223456Z',
    ...extra,
  };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls until cond() holds; fails with the message (and the state it describes) past the deadline. */
export async function waitFor(cond: () => boolean, what: () => string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what()}`);
    await sleep(10);
  }
}

export async function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'kc-audit-'));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
