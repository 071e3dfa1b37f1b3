import { fileURLToPath } from 'node:url';

/** The repository's collector-config/ directory (this file is packages/cli/dist/src/paths.js). */
export const COLLECTOR_CONFIG_DIR = fileURLToPath(new URL('../../../../collector-config/', import.meta.url));
export const DEFAULT_CONFIG = `${COLLECTOR_CONFIG_DIR}embedded.yaml`;
