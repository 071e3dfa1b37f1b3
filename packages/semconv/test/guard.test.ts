import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

/**
 * The names live in @kube-correlate/semconv only: no package's `src/` (other than semconv) writes
 * one of them as a string literal. Comments may name them; tests may pin wire values on purpose.
 */
const PACKAGES = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/** Whole quoted names: `'audit-id'`, "trace.kubernetes.io/objsetid", `objectSetID`. */
const EXACT = /(['"`])(audit-id|trace\.kubernetes\.io\/(?:objsetid|span)|objectSetID|kube-apiserver-audit|kube-correlate\/objset)\1/g;
/** A string or template literal starting with one of our attribute namespaces: 'k8s.objset.id', `k8s.audit.stage.${s}`. */
const ADDED = /['"`]k8s\.(?:audit|object|objset|api)\.[\w.]*/g;

/** Comments blanked out (line numbers kept); `://` in a URL is not a comment. */
function stripComments(source: string): string {
  return source.replace(/\/\*[\s\S]*?\*\//g, (m) => m.replace(/[^\n]/g, ' ')).replace(/(^|[\s;,(){}])\/\/.*$/gm, '$1');
}

function movedLiterals(source: string): Array<{ line: number; literal: string }> {
  const out: Array<{ line: number; literal: string }> = [];
  stripComments(source).split('\n').forEach((l, i) => {
    for (const m of [...l.matchAll(EXACT), ...l.matchAll(ADDED)]) out.push({ line: i + 1, literal: m[0] });
  });
  return out;
}

function tsFiles(dir: string, out: string[] = []): string[] {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) tsFiles(p, out);
    else if (p.endsWith('.ts') && !p.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

test('the detector: literals in code, not names in comments or other strings', () => {
  assert.equal(movedLiterals(`const a = 'k8s.objset.id';\nconst b = "audit-id";`).map((h) => h.line), [1, 2]);
  assert.equal(movedLiterals('x[`k8s.audit.stage.${stage}`] = 1;').map((h) => h.literal), ['`k8s.audit.stage.']);
  assert.equal(movedLiterals(`m.set('trace.kubernetes.io/objsetid', v); k.endsWith('/objectSetID') || k === 'objectSetID'`).map((h) => h.literal), ["'trace.kubernetes.io/objsetid'", "'objectSetID'"]);
  assert.equal(movedLiterals(`/** the \`k8s.audit.*\` attributes, 'audit-id' */\n// 'k8s.objset.id'\nconst u = 'http://x'; // 'audit-id'`), []);
  assert.equal(movedLiterals(`const s = 'audit-ids'; const t = 'k8s.objectset'; const header = 'traceparent';`), []);
});

test('no package src/ but semconv writes a moved name as a string literal', () => {
  const files = readdirSync(PACKAGES)
    .filter((p) => p !== 'semconv' && statSync(join(PACKAGES, p)).isDirectory())
    .flatMap((p) => { try { return tsFiles(join(PACKAGES, p, 'src')); } catch { return []; } });
  assert.ok(files.length > 50, `${files.length} source files read`);
  assert.ok(files.some((f) => f.endsWith(join('correlator', 'src', 'correlated-format.ts'))), 'the correlator is among them');
  const found = files.flatMap((f) => movedLiterals(readFileSync(f, 'utf8')).map((h) => `${relative(PACKAGES, f)}:${h.line}: ${h.literal}`));
  assert.equal(found, [], `use @kube-correlate/semconv:\n${found.join('\n')}`);
});

test.run();
