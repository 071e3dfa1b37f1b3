import { z } from 'zod';
import { duration, positiveInt } from '../../confmap/schema.js';

const D = { objectsTopic: 'kc_objects', requestsTopic: 'kc_objset_requests', partitions: 8, reemitFor: '10m' };

/**
 * `exporters.store` (Kafka mode): writes what a kafka receiver reads into the store extension.
 * `object_sets.partitioned` shares the object-set work among the `correlate store` instances of one
 * consumer group (see @kube-correlate/store objset-partition.ts): a global objects table
 * (`objects_topic`, compacted), requests re-keyed by object-set id (`requests_topic`), each set
 * exported by the instance that owns its partition.
 */
export const storeExporterConfig = z.strictObject({
  object_sets: z.strictObject({
    partitioned: z.boolean().default(false),
    objects_topic: z.string().min(1).default(D.objectsTopic),
    requests_topic: z.string().min(1).default(D.requestsTopic),
    /** Partitions of the two topics when this process creates them. */
    partitions: positiveInt.default(D.partitions),
    /** How long a published request is watched for a change of its set id (then re-published under the new one). */
    reemit_for: duration.default(D.reemitFor),
  }).default({ partitioned: false, objects_topic: D.objectsTopic, requests_topic: D.requestsTopic, partitions: D.partitions, reemit_for: D.reemitFor }),
});

export type StoreExporterConfig = z.output<typeof storeExporterConfig>;
