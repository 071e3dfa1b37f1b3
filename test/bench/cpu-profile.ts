/**
 * Where a process spent its CPU time, from a V8 `.cpuprofile` (what `node --cpu-prof` writes): the
 * top functions by self time and the time per package, as markdown.
 *
 *   node test/dist/bench/cpu-profile.js <file.cpuprofile> [top]
 *
 * Self time of a function is the time of the samples whose innermost frame is that function; total
 * time counts every sample with the function anywhere on its stack (once per sample, so recursion is
 * not counted twice). A sample lasts until the next one (the last sample gets the average
 * interval), as Chrome DevTools computes it.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';

interface CallFrame { functionName: string; url: string; lineNumber: number; columnNumber: number; scriptId?: string | number }
interface ProfileNode { id: number; callFrame: CallFrame; hitCount?: number; children?: number[] }
interface CpuProfile { nodes: ProfileNode[]; startTime: number; endTime: number; samples?: number[]; timeDeltas?: number[] }

/** The repository root (this file is test/bench/cpu-profile.ts, compiled to test/dist/bench/). */
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** A file URL or path, relative to the repository, or to node_modules for dependencies. */
export function shortUrl(url: string): string {
  if (!url) return '';
  let p = url;
  if (p.startsWith('file://')) {
    try { p = fileURLToPath(p); } catch { /* keep as is */ }
  }
  const nm = p.lastIndexOf('/node_modules/');
  if (nm >= 0) return p.slice(nm + 1);
  if (p.startsWith(ROOT)) return p.slice(ROOT.length);
  return p;
}

/** The package a frame belongs to: node_modules/<pkg>, packages/<name>, test, node internals, V8 builtins, or a special node. */
export function packageOf(frame: CallFrame): string {
  const { functionName, url } = frame;
  if (!url) {
    if (functionName === '(garbage collector)') return 'GC (garbage collector)';
    if (functionName === '(program)') return '(program): native code outside JS (V8, libuv, syscalls)';
    if (functionName === '(idle)') return '(idle)';
    if (functionName === '(root)') return '(root)';
    return 'V8 builtins / native functions (no script)';
  }
  if (url.startsWith('node:') || (!url.includes('/') && !url.startsWith('file:'))) return 'node internals';
  const short = shortUrl(url);
  const nm = /^node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(short);
  if (nm) return `node_modules/${nm[1]}`;
  const pk = /^packages\/([^/]+)/.exec(short);
  if (pk) return `packages/${pk[1]}`;
  if (short.startsWith('test/')) return 'test';
  return short.startsWith('/') ? 'other files' : short;
}

interface FnStat { name: string; where: string; pkg: string; self: number; total: number }

export interface ProfileSummary {
  /** Milliseconds from the first to the last sample. */
  durationMs: number;
  samples: number;
  /** Average sampling interval, µs. */
  intervalUs: number;
  functions: FnStat[];
  packages: Array<{ pkg: string; self: number }>;
  /** Sum of all sample times, µs (= 100%). */
  totalUs: number;
}

/** Parses and aggregates a profile (self and total time per function, self time per package). */
export function analyzeCpuProfile(profile: CpuProfile): ProfileSummary {
  const byId = new Map<number, ProfileNode>();
  for (const n of profile.nodes) byId.set(n.id, n);
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  const selfUs = new Map<number, number>();
  let totalUs = 0;
  if (samples.length > 0 && deltas.length === samples.length) {
    // Sample i lasts until sample i+1 (deltas[i+1]); the last one the average.
    const avg = (profile.endTime - profile.startTime) / samples.length;
    for (let i = 0; i < samples.length; i++) {
      const d = i + 1 < deltas.length ? Math.max(0, deltas[i + 1]!) : avg;
      selfUs.set(samples[i]!, (selfUs.get(samples[i]!) ?? 0) + d);
      totalUs += d;
    }
  } else {
    // Older profiles: hit counts only.
    const hits = profile.nodes.reduce((s, n) => s + (n.hitCount ?? 0), 0) || 1;
    const per = (profile.endTime - profile.startTime) / hits;
    for (const n of profile.nodes) if (n.hitCount) { selfUs.set(n.id, n.hitCount * per); totalUs += n.hitCount * per; }
  }

  const keyOf = (f: CallFrame) => `${f.functionName}\u0000${f.url}\u0000${f.lineNumber}`;
  const fns = new Map<string, FnStat>();
  const stat = (f: CallFrame): FnStat => {
    const k = keyOf(f);
    let s = fns.get(k);
    if (!s) {
      const name = f.functionName || (f.url ? '(anonymous)' : '(native)');
      const where = f.url ? `${shortUrl(f.url)}:${f.lineNumber + 1}` : '';
      fns.set(k, (s = { name, where, pkg: packageOf(f), self: 0, total: 0 }));
    }
    return s;
  };

  // Subtree time per node, then total per function counted once per stack (iterative DFS: stacks can be deep).
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const root = profile.nodes.find((n) => !parent.has(n.id)) ?? profile.nodes[0];
  const subtree = new Map<number, number>();
  const order: number[] = [];
  if (root) {
    const stack = [root.id];
    while (stack.length) {
      const id = stack.pop()!;
      order.push(id);
      for (const c of byId.get(id)?.children ?? []) stack.push(c);
    }
  }
  for (let i = order.length - 1; i >= 0; i--) {
    const id = order[i]!;
    let t = selfUs.get(id) ?? 0;
    for (const c of byId.get(id)?.children ?? []) t += subtree.get(c) ?? 0;
    subtree.set(id, t);
  }
  if (root) {
    const onStack = new Map<string, number>();
    // Explicit enter/leave DFS.
    const stack: Array<{ id: number; leave: boolean }> = [{ id: root.id, leave: false }];
    while (stack.length) {
      const { id, leave } = stack.pop()!;
      const node = byId.get(id);
      if (!node) continue;
      const k = keyOf(node.callFrame);
      if (leave) {
        onStack.set(k, onStack.get(k)! - 1);
        continue;
      }
      const s = stat(node.callFrame);
      s.self += selfUs.get(id) ?? 0;
      if (!onStack.get(k)) s.total += subtree.get(id) ?? 0;
      onStack.set(k, (onStack.get(k) ?? 0) + 1);
      stack.push({ id, leave: true });
      for (const c of node.children ?? []) stack.push({ id: c, leave: false });
    }
  }
  const pk = new Map<string, number>();
  for (const f of fns.values()) if (f.self > 0) pk.set(f.pkg, (pk.get(f.pkg) ?? 0) + f.self);
  const functions = [...fns.values()].filter((f) => f.name !== '(root)').sort((a, b) => b.self - a.self);
  const packages = [...pk].map(([p, self]) => ({ pkg: p, self })).sort((a, b) => b.self - a.self);
  const durationMs = (profile.endTime - profile.startTime) / 1000;
  return { durationMs, samples: samples.length, intervalUs: samples.length ? (profile.endTime - profile.startTime) / samples.length : 0, functions, packages, totalUs };
}

const pct = (v: number, of: number) => (of > 0 ? `${((100 * v) / of).toFixed(1)}%` : '—');
const cell = (s: string) => s.replace(/\|/g, '\\|');

/**
 * Markdown: top `top` functions by self time, then self time per package. Percentages are of the
 * busy samples (all but `(idle)`, i.e. of the CPU time the profile saw); the idle share is stated
 * in the heading.
 */
export function summarizeCpuProfile(file: string, top = 15): string {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const s = analyzeCpuProfile(profile);
  const idle = s.functions.filter((f) => f.name === '(idle)').reduce((a, f) => a + f.self, 0);
  const busy = s.totalUs - idle;
  const lines: string[] = [];
  lines.push(`CPU profile ${shortUrl(file)}: ${(s.durationMs / 1000).toFixed(1)} s, ${s.samples} samples (every ${s.intervalUs.toFixed(0)} µs); busy ${(busy / 1e6).toFixed(2)} s (${pct(busy, s.totalUs)}), idle ${pct(idle, s.totalUs)}. Percentages below are of the busy time.`);
  lines.push('');
  lines.push('| # | function | where | self % | total % |');
  lines.push('|---:|---|---|---:|---:|');
  s.functions.filter((f) => f.name !== '(idle)').slice(0, top).forEach((f, i) => {
    lines.push(`| ${i + 1} | ${cell(f.name)} | ${cell(f.where || f.pkg)} | ${pct(f.self, busy)} | ${pct(f.total, busy)} |`);
  });
  lines.push('');
  lines.push('| package | self % |');
  lines.push('|---|---:|');
  for (const p of s.packages) if (p.pkg !== '(idle)' && p.self / busy >= 0.001) lines.push(`| ${cell(p.pkg)} | ${pct(p.self, busy)} |`);
  return lines.join('\n');
}

// CLI: node test/dist/bench/cpu-profile.js <file.cpuprofile> [top]
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [file, top] = process.argv.slice(2);
  if (!file) {
    process.stderr.write('usage: node test/dist/bench/cpu-profile.js <file.cpuprofile> [top]\n');
    process.exit(2);
  }
  process.stdout.write(`${summarizeCpuProfile(file, top ? Number(top) : 15)}\n`);
}
