import { z } from 'zod';
import { duration, serverSettings, size } from '../../confmap/schema.js';

export const STORE_EXTENSION_DEFAULTS = {
  directory: './data',
  endpoint: '127.0.0.1:4320',
  retention: '168h',
  max_size: '2GiB',
  sync: 'normal',
} as const;

/** `extensions.store`: the embedded store and its query API (which also serves /metrics). */
export const storeExtensionConfig = serverSettings(STORE_EXTENSION_DEFAULTS.endpoint, {
  /** SQLite store (`kube-correlate.db`); the directory is made 0700, its files 0600. */
  directory: z.string().min(1).default(STORE_EXTENSION_DEFAULTS.directory),
  /** Data older than this is deleted, oldest first ('0s': kept for ever). */
  retention: duration.default(STORE_EXTENSION_DEFAULTS.retention),
  /** The database's cap: retention keeps the data under 80% of it; at it, writes fail and receivers refuse retryably (0: no cap). */
  max_size: size.default(STORE_EXTENSION_DEFAULTS.max_size),
  /** normal: a commit survives a crash of the process (SIGKILL); full: also a power loss (an fsync per commit, slower). */
  sync: z.enum(['normal', 'full']).default(STORE_EXTENSION_DEFAULTS.sync),
});

export type StoreExtensionConfig = z.output<typeof storeExtensionConfig>;
