import type { RequestTree, TreeAudit, TreeNode } from '@kube-correlate/correlator';

/**
 * The text form of a request tree (DESIGN.md, "correlate --trace"): one line per span with name,
 * status, duration and service; under a request's span its audit line (verb, resource,
 * namespace/name, user, user agent, code) and its followed links.
 */
export function renderTree(tree: RequestTree & { objectSetId?: string }): string {
  const lines: string[] = [];
  const requests = countAudited(tree.root);
  lines.push(
    tree.objectSetId !== undefined
      ? `object set ${tree.objectSetId}  trace ${tree.traceId}  ${countObjects(tree.root)} objects  ${requests} requests`
      : tree.traceId
      ? `trace ${tree.traceId}  ${tree.spanCount} span${tree.spanCount === 1 ? '' : 's'}  ${requests} audited request${requests === 1 ? '' : 's'}`
      : `audit ${tree.auditIds[0] ?? ''}  no spans were received for this request (not sampled, or not yet arrived)`,
  );
  walk(tree.root, '', '', lines);
  return lines.join('\n') + '\n';
}

function walk(node: TreeNode, firstPrefix: string, restPrefix: string, out: string[]): void {
  out.push(firstPrefix + spanLine(node));
  const detailPrefix = restPrefix + (node.children.length ? '│  ' : '   ');
  if (node.audit) out.push(detailPrefix + auditLine(node.audit));
  // A request span without its audit (not audited, or not arrived): what its HTTP attributes say.
  else if (node.http && node.kind === 'SERVER') out.push(detailPrefix + httpLine(node.http));
  for (const l of node.links ?? []) {
    out.push(
      detailPrefix +
        `link → trace ${l.traceId} span ${l.spanId}` +
        (l.target ? `: ${l.target.name} (${l.target.service}) ${formatDuration(l.target.durationNanos)}` : ' (not received)'),
    );
  }
  for (const l of node.linkedFrom ?? []) {
    out.push(detailPrefix + `linked from ← trace ${l.traceId} span ${l.spanId}` + (l.target ? `: ${l.target.name} (${l.target.service}) ${formatDuration(l.target.durationNanos)}` : ''));
  }
  node.children.forEach((child, i) => {
    const last = i === node.children.length - 1;
    walk(child, restPrefix + (last ? '└─ ' : '├─ '), restPrefix + (last ? '   ' : '│  '), out);
  });
}

function spanLine(n: TreeNode): string {
  const status = n.status.code === 'ERROR' ? `ERROR${n.status.message ? `: ${n.status.message}` : ''}` : n.status.code;
  const parts = [n.name, status, formatDuration(n.durationNanos), n.service];
  if (n.missingParent) parts.push(`[parent ${n.parentSpanId} not received]`);
  return parts.join('  ');
}

export function auditLine(a: TreeAudit): string {
  const ref = a.objectRef ?? {};
  const resource = ref.resource ? ref.resource + (ref.subresource ? `/${ref.subresource}` : '') : a.requestURI;
  const object = ref.namespace ? `${ref.namespace}/${ref.name ?? ''}` : (ref.name ?? '');
  return [
    'audit',
    a.verb,
    resource,
    object || '-',
    `user=${a.user}`,
    `ua=${JSON.stringify(a.userAgent ?? '')}`,
    `code=${a.code ?? '-'}`,
    `id=${a.auditID}`,
  ].join('  ');
}

export function httpLine(h: NonNullable<TreeNode['http']>): string {
  return ['http', h.method ?? '-', h.target ?? '-', `code=${h.statusCode ?? '-'}`, ...(h.client ? [`client=${h.client}`] : []), ...(h.userAgent ? [`ua=${JSON.stringify(h.userAgent)}`] : [])].join('  ');
}

export function formatDuration(nanos: number): string {
  if (nanos < 1_000) return `${nanos}ns`;
  if (nanos < 1_000_000) return `${(nanos / 1_000).toFixed(1)}µs`;
  if (nanos < 1_000_000_000) return `${(nanos / 1_000_000).toFixed(2)}ms`;
  return `${(nanos / 1_000_000_000).toFixed(3)}s`;
}

function countObjects(n: TreeNode): number {
  return ('k8s.object.uid' in n.attributes && !n.audit ? 1 : 0) + n.children.reduce((s, c) => s + countObjects(c), 0);
}

function countAudited(n: TreeNode): number {
  return (n.audit ? 1 : 0) + n.children.reduce((s, c) => s + countAudited(c), 0);
}
