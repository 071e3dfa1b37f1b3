import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** packages/collector (this file runs as dist/test/paths.js). */
export const PACKAGE_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const REPO_ROOT = join(PACKAGE_ROOT, '../../');
export const COLLECTOR_CONFIG_DIR = join(REPO_ROOT, 'collector-config/');

/** A component's testdata file, e.g. testdata('exporters/kafka') -> src/exporters/kafka/testdata/config.yaml. */
export function testdata(component: string, file = 'config.yaml'): string {
  return join(PACKAGE_ROOT, 'src', component, 'testdata', file);
}
