import type { RequestTree, TreeAudit, TreeNode } from '@kube-correlate/correlator';
import type { ObjectSetChainEntry, ObjectSetTree, ObjectSetWindow } from '@kube-correlate/store';
import { OBJECT_ATTR } from '@kube-correlate/semconv';

/**
 * The text form of a request tree (DESIGN.md, "correlate --trace"): one line per span with name,
 * status, duration and service; under a request's span its audit line (verb, resource,
 * namespace/name, user, user agent, code) and its followed links.
 */
export function renderTree(tree: RequestTree & { objectSetId?: string; window?: ObjectSetWindow | null; chain?: ObjectSetChainEntry[] }): string {
  const lines: string[] = [];
  const requests = countAudited(tree.root);
  if (tree.objectSetId !== undefined) lines.push(...objectSetHeader(tree as ObjectSetTree, countObjects(tree.root), requests));
  else lines.push(
    tree.traceId
      ? `trace ${tree.traceId}  ${tree.spanCount} span${tree.spanCount === 1 ? '' : 's'}  ${requests} audited request${requests === 1 ? '' : 's'}`
      : `audit ${tree.auditIds[0] ?? ''}  no spans were received for this request (not sampled, or not yet arrived)`,
  );
  walk(tree.root, '', '', lines);
  return lines.join('\n') + '\n';
}

/** 2026-12-02T16:00:00.000Z -> 2026-12-02T16:00:00Z */
const shortTime = (iso: string) => iso.replace(/\.000Z$/, 'Z');

/**
 * An object set's first lines: the set, the window shown, its trace, what it holds; then the chain
 * of the set's windows (one trace per window, more for a window that outgrew its trace), the one
 * shown marked with `▶`.
 */
function objectSetHeader(tree: ObjectSetTree, objects: number, requests: number): string[] {
  const w = tree.window;
  const plural = (n: number, what: string) => `${n} ${what}${n === 1 ? '' : 's'}`;
  const lines = [
    `object set ${tree.objectSetId}  ${w ? `window ${shortTime(w.start)} to ${shortTime(w.end)}  trace ${tree.traceId}` : 'every window'}  ${plural(objects, 'object')}  ${plural(requests, 'request')}`,
  ];
  const chain = tree.chain ?? [];
  if (chain.length === 0) return lines;
  lines.push(`chain: ${chain.length} window${chain.length === 1 ? '' : 's'}, oldest first (--window <time> shows another, --window all every one)`);
  const width = Math.max(...chain.map((c) => String(c.requests).length));
  for (const c of chain) {
    const mark = w && c.start === w.start ? '▶' : ' ';
    lines.push(`${mark} ${shortTime(c.start)}  ${String(c.requests).padStart(width)} request${c.requests === 1 ? ' ' : 's'}  trace ${c.traceIds.join(', ')}${c.traceIds.length > 1 ? ` (${c.traceIds.length} parts)` : ''}`);
  }
  return lines;
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
  return (OBJECT_ATTR.uid in n.attributes && !n.audit ? 1 : 0) + n.children.reduce((s, c) => s + countObjects(c), 0);
}

function countAudited(n: TreeNode): number {
  return (n.audit ? 1 : 0) + n.children.reduce((s, c) => s + countAudited(c), 0);
}
