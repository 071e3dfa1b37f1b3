import { spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ensureGoBinary, type CachedGoBinary } from '../harness/go-build.js';
import { tempDir } from '../harness/index.js';

/**
 * `ensureGoBinary` (test/harness/go-build.ts), the build-and-cache logic the Jaeger and otelcol
 * harnesses share, on a tiny module of its own built with the real Go toolchain: built once, then
 * taken from the cache; rebuilt when the module files, the version or the Go version change; a
 * failing build throws with the compiler's words and leaves nothing behind; without `go` a needed
 * build throws naming what is missing (never a skip), while a cached binary is still used.
 */
const tmp = tempDir('kc-go-build-');
test.after(() => tmp.cleanup());

const moduleDir = join(tmp.dir, 'mod');
const cacheDir = join(tmp.dir, 'cache');
mkdirSync(moduleDir);
writeFileSync(join(moduleDir, 'go.mod'), 'module example.local/hello\n\ngo 1.24\n');
writeFileSync(join(moduleDir, 'go.sum'), '');
const MAIN = 'package main\n\nimport "fmt"\n\nfunc main() { fmt.Println("hello from the cache") }\n';
writeFileSync(join(moduleDir, 'main.go'), MAIN);

const spec = (over: Partial<CachedGoBinary> = {}): CachedGoBinary => ({
  what: 'the hello test tool v1', version: 'v1', cacheDir, binName: 'hello', moduleDir, minGo: '1.24',
  buildArgs: (out) => ['build', '-mod=readonly', '-trimpath', '-o', out, '.'], timeoutMs: 5 * 60_000, ...over,
});
const stampOf = () => JSON.parse(readFileSync(join(cacheDir, 'complete'), 'utf8')) as Record<string, unknown>;

test('builds once into the cache, writes the stamp, then returns the cached binary without building', async () => {
  const bin = await ensureGoBinary(spec());
  assert.is(bin, join(cacheDir, 'hello'));
  assert.is(spawnSync(bin, { encoding: 'utf8' }).stdout.trim(), 'hello from the cache');
  const first = stampOf();
  assert.is(first['version'], 'v1');
  assert.match(String(first['go']), /^go version go\d/);
  assert.ok(existsSync(join(cacheDir, 'build.log')));
  assert.is(await ensureGoBinary(spec()), bin);
  assert.is(stampOf()['at'], first['at'], 'the second call did not rebuild');
  assert.equal(readdirSync(cacheDir).filter((e) => e.includes('.tmp') || e === 'lock'), []);
});

test('rebuilds when go.mod changes, when the version changes, and when the stamp names another Go', async () => {
  let at = stampOf()['at'];
  const rebuilt = async (why: string, over: Partial<CachedGoBinary> = {}) => {
    await new Promise((r) => setTimeout(r, 5)); // a distinct timestamp
    await ensureGoBinary(spec(over));
    assert.is.not(stampOf()['at'], at, why);
    at = stampOf()['at'];
  };
  appendFileSync(join(moduleDir, 'go.mod'), '// edited\n');
  await rebuilt('go.mod edited');
  await rebuilt('version changed', { version: 'v2' });
  const stamp = stampOf();
  writeFileSync(join(cacheDir, 'complete'), JSON.stringify({ ...stamp, go: 'go version go1.0 linux/amd64' }));
  await rebuilt('built by another Go', { version: 'v2' });
});

test('a failing build throws with the compiler error and leaves no binary, stamp or temp file', async () => {
  writeFileSync(join(moduleDir, 'main.go'), 'package main\n\nfunc main() { undefinedThing() }\n');
  try {
    await ensureGoBinary(spec({ version: 'v3' }));
    assert.unreachable('the build should fail');
  } catch (e) {
    const msg = (e as Error).message;
    assert.match(msg, /^building the hello test tool v1 failed \(go exited 1;/);
    assert.match(msg, /undefined: undefinedThing/);
  } finally {
    writeFileSync(join(moduleDir, 'main.go'), MAIN);
  }
  assert.equal(readdirSync(cacheDir).filter((e) => e !== 'build.log'), []);
});

test('without go: a needed build throws naming the toolchain and the tool, a cached binary is still used', async () => {
  const bin = await ensureGoBinary(spec({ version: 'v4' }));
  const path = process.env['PATH'];
  process.env['PATH'] = join(tmp.dir, 'no-such-bin');
  try {
    assert.is(await ensureGoBinary(spec({ version: 'v4' })), bin);
    try {
      await ensureGoBinary(spec({ version: 'v5' }));
      assert.unreachable('a build without go should throw');
    } catch (e) {
      assert.match((e as Error).message, /^the hello test tool v1 is not in the cache \(.+\) and building it needs the Go toolchain \(go 1\.24 or newer\), but `go` could not be run \(ENOENT\)/);
    }
  } finally {
    process.env['PATH'] = path;
  }
});

test.run();
