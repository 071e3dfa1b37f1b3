import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import { BUILTIN_FACTORIES, loadConfigFile, type AnyFactory } from '../src/index.js';
import { PACKAGE_ROOT, testdata } from './paths.js';

/**
 * Every registered component has the shape of the model: a folder with config.ts, factory.ts, a
 * README whose config table lists exactly the keys its schema has, and testdata/config.yaml that
 * loads and sets every key at least once.
 */

const SECTION = { receiver: 'receivers', processor: 'processors', exporter: 'exporters', extension: 'extensions' } as const;
/** Components that share a folder with another. */
const FOLDER: Record<string, string> = { 'exporter otlphttp': 'exporters/otlp' };
const folderOf = (f: AnyFactory) => FOLDER[`${f.kind} ${f.type}`] ?? `${SECTION[f.kind]}/${f.type}`;
const ENV = { KAFKA_BROKERS: '127.0.0.1:9092' };

/** The dotted paths of a schema's leaves (a record or a union is a leaf). */
function leaves(schema: z.ZodType, prefix = ''): string[] {
  const def = (schema as unknown as { _zod: { def: Record<string, unknown> & { type: string } } })._zod.def;
  switch (def.type) {
    case 'object':
      return Object.entries(def['shape'] as Record<string, z.ZodType>).flatMap(([k, v]) => leaves(v, prefix ? `${prefix}.${k}` : k));
    case 'default': case 'optional': case 'nullable': case 'prefault':
      return leaves(def['innerType'] as z.ZodType, prefix);
    case 'pipe': {
      const out = def['out'] as z.ZodType;
      return (out as unknown as { _zod: { def: { type: string } } })._zod.def.type === 'transform' ? leaves(def['in'] as z.ZodType, prefix) : leaves(out, prefix);
    }
    default:
      return [prefix];
  }
}

/** Keys in the first `| key | default | meaning |` table of a README. */
function readmeKeys(text: string): string[] {
  const lines = text.split('\n');
  const start = lines.findIndex((l) => /^\| key \| default \| meaning \|/.test(l));
  if (start < 0) return [];
  const keys: string[] = [];
  for (const l of lines.slice(start + 2)) {
    if (!l.startsWith('|')) break;
    const m = /^\| `([^`]+)`/.exec(l);
    if (m) keys.push(m[1]!);
  }
  return keys;
}

/** Dotted paths of the keys set in a YAML value (maps only; a list or scalar is a leaf). */
function setKeys(v: unknown, prefix = ''): string[] {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return prefix ? [prefix] : [];
  return Object.entries(v).flatMap(([k, x]) => setKeys(x, prefix ? `${prefix}.${k}` : k));
}

const folders = new Map<string, AnyFactory[]>();
for (const f of BUILTIN_FACTORIES as readonly AnyFactory[]) folders.set(folderOf(f), [...(folders.get(folderOf(f)) ?? []), f]);

for (const [folder, factories] of folders) {
  const types = factories.map((f) => `${f.kind} ${f.type}`).join(', ');
  test(`${folder} (${types}): config.ts, factory.ts, README.md, testdata/config.yaml`, () => {
    for (const file of ['config.ts', 'factory.ts', 'README.md', 'testdata/config.yaml']) assert.ok(existsSync(join(PACKAGE_ROOT, 'src', folder, file)), `${folder}/${file}`);
  });

  test(`${folder}: the README's config table lists exactly the config's keys`, () => {
    const documented = readmeKeys(readFileSync(join(PACKAGE_ROOT, 'src', folder, 'README.md'), 'utf8')).sort();
    const keys = [...new Set(factories.flatMap((f) => leaves(f.config as z.ZodType)).filter(Boolean))].sort();
    assert.equal(documented, keys);
  });

  test(`${folder}: testdata/config.yaml loads and sets every key at least once`, () => {
    loadConfigFile(testdata(folder), ENV);
    const raw = parseYaml(readFileSync(testdata(folder), 'utf8')) as Record<string, Record<string, unknown> | undefined>;
    for (const f of factories) {
      const instances = Object.entries(raw[SECTION[f.kind]] ?? {}).filter(([id]) => id.split('/')[0] === f.type);
      assert.ok(instances.length > 0, `a ${f.kind} of type ${f.type} in testdata`);
      const set = new Set(instances.flatMap(([, v]) => setKeys(v)));
      const keys = leaves(f.config as z.ZodType).filter(Boolean);
      // otlphttp has exactly otlp's keys (its testdata sets them on otlp/jaeger; only one of them may be used at once).
      if (f.type !== 'otlphttp') for (const k of keys) assert.ok(set.has(k) || [...set].some((x) => x.startsWith(`${k}.`)), `${f.type}: testdata sets ${k}`);
    }
  });
}

test('every folder under src/<kind>s/ is registered', async () => {
  const { readdirSync } = await import('node:fs');
  for (const section of Object.values(SECTION)) {
    for (const d of readdirSync(join(PACKAGE_ROOT, 'src', section))) assert.ok(folders.has(`${section}/${d}`), `${section}/${d} has a registered factory`);
  }
});

test.run();
