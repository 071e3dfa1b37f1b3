import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** ../shared/data beside the repository (from packages/audit/dist/test/), or $KC_SHARED_DATA. */
export const DATA_DIR = process.env['KC_SHARED_DATA'] ?? fileURLToPath(new URL('../../../../../shared/data/', import.meta.url));

/** A file of the shared data (captures/...); throws naming it and the override when it is missing. */
export function dataFile(rel: string): string {
  const p = join(DATA_DIR, rel);
  if (!existsSync(p)) {
    throw new Error(`shared data file ${p} is missing (data dir ${DATA_DIR}; set KC_SHARED_DATA to the directory holding captures/)`);
  }
  return p;
}

/** Every recorded capture's audit.log, as parsed lines: [capture directory, events]. */
export function recordedAuditLogs(): Array<[string, Array<Record<string, unknown>>]> {
  const dir = dataFile('captures');
  return readdirSync(dir, { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d) => d.name)
    .sort()
    .map((name) => [name, readFileSync(join(dir, name, 'audit.log'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>)]);
}
