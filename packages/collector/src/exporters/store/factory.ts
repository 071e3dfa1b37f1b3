import { KafkaStoreLoader } from '@kube-correlate/store';
import type { Component, KafkaSource } from '../../component/component.js';
import { exporterFactory } from '../../component/factory.js';
import { storeExtensionOf } from '../../extensions/store/extension.js';
import { requireStoreExtension } from '../../extensions/store/factory.js';
import { parseDuration } from '../../confmap/schema.js';
import { storeExporterConfig } from './config.js';

/**
 * `exporters.store` (Kafka mode, `correlate store`, see README.md): takes a kafka receiver's topics
 * over and writes the correlated trees it reads into the store extension, committing offsets after
 * each batch is stored.
 */
export const storeExporterFactory = exporterFactory({
  kind: 'exporter',
  type: 'store',
  signals: ['traces'],
  takes: ['kafka_topics'],
  config: storeExporterConfig,
  create({ metrics, logger, host }, config) {
    return {
      async start() {},
      async shutdown() {},
      consumeKafkaTopics(source: KafkaSource): Component {
        let loader: KafkaStoreLoader | undefined;
        return {
          async start() {
            const o = config.object_sets;
            loader = new KafkaStoreLoader({
              client: source.client, store: storeExtensionOf(host).store, topic: source.topics.traces, groupId: source.groupId, metrics, logger: logger.child({ component: 'store-loader' }),
              ...(o.partitioned ? { objectSets: { objectsTopic: o.objects_topic, requestsTopic: o.requests_topic, partitions: o.partitions, reemitForMs: parseDuration(o.reemit_for) } } : {}),
            });
            await loader.start();
          },
          shutdown: async () => loader?.stop(),
        };
      },
    };
  },
  checkService: (self, service) => requireStoreExtension(self, service, 'writes to the embedded store'),
});
