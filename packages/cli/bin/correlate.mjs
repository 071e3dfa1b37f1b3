#!/usr/bin/env node
// The `correlate` command as npm links it (node_modules/.bin/correlate). npm links a workspace's
// bin when it installs, before anything is built, so the link must name a file that is in the
// repository: this one, which loads the compiled CLI. `npm start`, `npm test` and `npm run build`
// build it.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const built = new URL('../dist/src/bin.js', import.meta.url);
if (!existsSync(fileURLToPath(built))) {
  process.stderr.write('correlate: the CLI is not built yet: run `npm run build` (or `npm start`) in the repository first\n');
  process.exit(2);
}
await import(built.href);
