#!/usr/bin/env node
// Makes a fresh clone runnable: installs npm packages when package-lock.json changed since the last
// install (or none happened), then builds all TypeScript projects (incremental, fast when current).
// Dependency-free on purpose: it runs before anything is installed.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const lock = join(root, 'package-lock.json');
const stamp = join(root, 'node_modules', '.kube-correlate-install');
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

function run(cmd, args) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] });
  if (r.status !== 0) {
    process.stderr.write(`bootstrap: \`${cmd} ${args.join(' ')}\` failed (exit ${r.status ?? r.signal})\n`);
    process.exit(r.status || 1);
  }
}

const want = createHash('sha256').update(readFileSync(lock)).digest('hex');
const have = existsSync(stamp) ? readFileSync(stamp, 'utf8').trim() : '';
if (want !== have) {
  process.stderr.write('bootstrap: installing npm packages (npm ci; better-sqlite3 compiles from source, about a minute)\n');
  run(npm, ['ci', '--no-audit', '--no-fund', '--loglevel=error']);
  writeFileSync(stamp, want + '\n');
}
run(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-b', join(root, 'tsconfig.json')]);
