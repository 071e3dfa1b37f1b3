#!/usr/bin/env node
// Runs every compiled uvu test file in its own process (servers and ports never leak between
// files), prints each file's output, and ends with the one line CI reads: `N passed, N failed`.
// Usage: node test/run.mjs [substring filter...]
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fileCounts } from './uvu-summary.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const filters = process.argv.slice(2);
const FILE_TIMEOUT_MS = 10 * 60 * 1000;

function find(dir, out = []) {
  if (!existsSync(dir)) return out;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) find(p, out);
    else if (e.name.endsWith('.test.js')) out.push(p);
  }
  return out;
}

const files = [
  ...readdirSync(join(root, 'packages')).sort().flatMap((p) => find(join(root, 'packages', p, 'dist', 'test'))),
  ...find(join(root, 'test', 'dist')),
].filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)));

let passed = 0;
let failed = 0;
const failures = [];

function runFile(file, args = [], timeoutMs = FILE_TIMEOUT_MS) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--enable-source-maps', file, ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], env: process.env });
    let out = '';
    child.stdout.on('data', (d) => { out += d; process.stdout.write(d); });
    child.stderr.on('data', (d) => { out += d; process.stderr.write(d); });
    const timer = setTimeout(() => { out += `\n[run] timed out after ${timeoutMs / 1000}s\n`; child.kill('SIGKILL'); }, timeoutMs);
    child.on('close', (code, signal) => { clearTimeout(timer); resolve({ code, signal, out }); });
  });
}

const started = Date.now();
// Real components first (Kafka jars, the Jaeger, otelcol, kustomize and Kubernetes binaries), outside any
// one file's time limit. Tools built once and cached, before the per-file limit starts: which test
// files need which. Each tool is prepared by its own run with its own limit (a cold Kubernetes build
// alone took 18-46 minutes on two shared cores), so a slow one cannot starve the next.
const TOOLS = {
  kafka: ['kafka', 'bench-harness'],
  jaeger: ['jaeger', 'bench-harness'],
  otelcol: ['bench-harness', 'otelcol-file'],
  kustomize: ['deploy-manifests', 'openapi-validator'],
  chromium: ['coverage-html', 'jaeger-ui'],
  kubernetes: ['control-plane', 'real-cluster'],
};
const PREPARE_TIMEOUT_MS = { kubernetes: 60 * 60 * 1000 };
const needs = Object.keys(TOOLS).filter((tool) => files.some((f) => TOOLS[tool].some((w) => f.includes(w))));
for (const tool of needs) {
  process.stdout.write(`\n=== prepare: ${tool}\n`);
  const { code, out } = await runFile(join(root, 'test', 'dist', 'harness', 'prepare.js'), [tool], PREPARE_TIMEOUT_MS[tool] ?? 45 * 60 * 1000);
  if (code !== 0) {
    failed++;
    failures.push(`prepare ${tool} (${out.trim().split('\n').pop()})`);
  }
}
for (const file of files) {
  const name = relative(root, file);
  process.stdout.write(`\n=== ${name}\n`);
  const { code, signal, out } = await runFile(file);
  const { passed: ok, failed: bad, ranNothing } = fileCounts(out, { code, signal });
  if (ranNothing && code === 0 && !signal) process.stdout.write(`[run] ${name} ran no test\n`);
  passed += ok;
  failed += bad;
  if (bad) failures.push(`${name} (${bad} failed${signal ? `, ${signal}` : ''})`);
}
process.stdout.write(`\n${files.length} test files in ${((Date.now() - started) / 1000).toFixed(1)}s\n`);
if (files.length === 0) { process.stdout.write('no test files found: was the build run?\n'); failed++; }
if (failures.length) process.stdout.write(`failed: ${failures.join(', ')}\n`);
process.stdout.write(`${passed} passed, ${failed} failed\n`);
process.exitCode = failed ? 1 : 0;
