import { z } from 'zod';
import { serverSettings } from '../../confmap/schema.js';

export const STORE_EXTENSION_DEFAULTS = {
  directory: './data',
  endpoint: '127.0.0.1:4320',
} as const;

/** `extensions.store`: the embedded store and its query API (which also serves /metrics). */
export const storeExtensionConfig = serverSettings(STORE_EXTENSION_DEFAULTS.endpoint, {
  /** SQLite store (`kube-correlate.db`). */
  directory: z.string().min(1).default(STORE_EXTENSION_DEFAULTS.directory),
});

export type StoreExtensionConfig = z.output<typeof storeExtensionConfig>;
