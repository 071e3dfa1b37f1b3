import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readlinkSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { freePort, ROOT, tempDir, waitFor } from '../harness/index.js';
import { killGroup, trackHelper, untrackHelper } from '../harness/supervise.js';

/**
 * The README's quickstart as a newcomer runs it: a fresh clone, `npm start` (which installs the npm
 * packages, builds, and serves), then the README's next command, `npx correlate --trace <id>`, in
 * the same clone. npm links a workspace's `bin` when it installs, before anything is built: the
 * link must name a file the repository holds (packages/cli/bin/correlate.mjs), or npx asks the
 * npm registry for a package called "correlate" and fails with a 404.
 *
 * The clone is of this repository's committed HEAD (what CI checks out); uncommitted changes are
 * not in it. It installs from the npm cache the suite's own install filled.
 */
const tmp = tempDir('kc-clone-');
test.after(() => tmp.cleanup());

const UNKNOWN = '0af7651916cd43dd8448eb211c80319c';

function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}) {
  return spawnSync(cmd, args, { cwd, env: { ...process.env, ...env }, encoding: 'utf8', timeout: 120_000 });
}

test('fresh clone: npm start serves, then npx correlate --trace <unknown id> prints one line and exits 1', async () => {
  const clone = join(tmp.dir, 'kube-correlate');
  const cloned = run('git', ['clone', '--quiet', '--no-hardlinks', ROOT, clone], tmp.dir);
  assert.is(cloned.status, 0, `git clone of ${ROOT} failed (the test needs the repository as a git checkout): ${cloned.stderr}`);

  const [grpc, http, audit, query] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const env: NodeJS.ProcessEnv = {
    KC_OTLP_GRPC_ENDPOINT: `127.0.0.1:${grpc}`, KC_OTLP_HTTP_ENDPOINT: `127.0.0.1:${http}`,
    KC_AUDIT_WEBHOOK_ENDPOINT: `127.0.0.1:${audit}`, KC_QUERY_ENDPOINT: `127.0.0.1:${query}`,
    KC_DATA_DIR: join(tmp.dir, 'data'), npm_config_update_notifier: 'false',
  };
  const child = spawn('npm', ['start'], { cwd: clone, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  trackHelper(child);
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d));
  child.stderr!.on('data', (d: Buffer) => (out += d));
  const exited = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
  try {
    // npm ci (better-sqlite3 compiles from source) and tsc -b: minutes on two busy cores.
    await waitFor('`npm start` in the fresh clone to serve', () => {
      if (child.exitCode !== null) throw new Error(`npm start exited ${child.exitCode}:\n${out.slice(-3000)}`);
      return out.includes('kube-correlate is running') ? true : undefined;
    }, 8 * 60_000).catch((err: Error) => {
      throw new Error(`${err.message}; its output so far:\n${out.slice(-3000)}`);
    });

    const bin = join(clone, 'node_modules', '.bin', 'correlate');
    assert.ok(existsSync(bin), 'npm linked node_modules/.bin/correlate');
    assert.is(realpathSync(bin), realpathSync(join(clone, 'packages', 'cli', 'bin', 'correlate.mjs')), `the link names the committed bin file (${readlinkSync(bin)})`);

    const q = run('npx', ['--no-install', 'correlate', '--trace', UNKNOWN, '--endpoint', `http://127.0.0.1:${query}`], clone, { npm_config_update_notifier: 'false' });
    assert.is(q.stdout, '', 'nothing on stdout');
    assert.is(q.stderr, `correlate: trace ${UNKNOWN} not found\n`, 'one line on stderr');
    assert.is(q.status, 1, 'exit 1: not found');

    // A malformed id is a usage error: exit 2, one line, before any connection.
    const bad = run('npx', ['--no-install', 'correlate', '--trace', 'not-hex'], clone, { npm_config_update_notifier: 'false' });
    assert.is(bad.status, 2, bad.stderr);
    assert.is(bad.stderr.trim().split('\n').length, 1, `one line: ${bad.stderr}`);
  } finally {
    killGroup(child.pid, 'SIGTERM');
    const code = await Promise.race([exited, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 20_000))]);
    if (code === 'timeout') killGroup(child.pid, 'SIGKILL');
    untrackHelper(child);
  }
});

test('the bin entry, before the CLI is built, says what to do in one line and exits 2', () => {
  const dir = join(tmp.dir, 'unbuilt', 'packages', 'cli', 'bin');
  mkdirSync(dir, { recursive: true });
  copyFileSync(join(ROOT, 'packages', 'cli', 'bin', 'correlate.mjs'), join(dir, 'correlate.mjs'));
  const r = run(process.execPath, [join(dir, 'correlate.mjs'), '--trace', UNKNOWN], tmp.dir);
  assert.is(r.status, 2);
  assert.is(r.stdout, '');
  assert.match(r.stderr, /^correlate: the CLI is not built yet: run `npm run build` \(or `npm start`\)[^\n]*\n$/);
});

test.run();
