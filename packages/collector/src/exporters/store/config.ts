import { z } from 'zod';

/** `exporters.store` (Kafka mode) has no settings: it writes what a kafka receiver reads into the store extension. */
export const storeExporterConfig = z.strictObject({});

export type StoreExporterConfig = z.output<typeof storeExporterConfig>;
