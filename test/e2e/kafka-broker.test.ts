import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { KAFKA_VERSIONS, ensureKafka, kafkaApiVersions, kafkaMetadata, startKafka, type KafkaBroker } from '../harness/kafka.js';

/**
 * The real Kafka broker the Kafka suites run against (test/kafka/README.md), for every version we
 * support: it starts in KRaft mode on a loopback port, answers the Kafka protocol, comes back on
 * the same port and data after a restart, and leaves nothing behind when stopped.
 */
const started: KafkaBroker[] = [];
test.after(async () => { for (const b of started) await b.stop(); });

for (const version of KAFKA_VERSIONS) {
  test(`Kafka ${version}: starts, answers, restarts on the same port, stops clean`, async () => {
    const t0 = Date.now();
    await ensureKafka(version);
    const t1 = Date.now();
    const broker = await startKafka({ version, partitions: 3 });
    started.push(broker);
    const t2 = Date.now();
    assert.match(broker.brokers, /^127\.0\.0\.1:\d+$/);
    assert.ok(broker.running);
    assert.ok(existsSync(broker.logPath), 'the broker logs to a file in its temp dir');

    const apis = await kafkaApiVersions(broker.brokers);
    for (const key of [0, 1, 3, 8, 11, 18, 19]) assert.ok(apis.has(key), `API key ${key} supported`); // Produce, Fetch, Metadata, OffsetCommit, JoinGroup, ApiVersions, CreateTopics
    const md = await kafkaMetadata(broker.brokers);
    assert.equal(md.brokers, [{ nodeId: 1, host: '127.0.0.1', port: broker.port }]);
    assert.is(md.controllerId, 1);

    const port = broker.port;
    const firstReady = broker.readyMs;
    const t3 = Date.now();
    await broker.restart();
    const t4 = Date.now();
    const restartReady = broker.readyMs;
    assert.is(broker.port, port, 'same port after restart');
    assert.match(readFileSync(join(broker.dir, 'data', 'meta.properties'), 'utf8'), `cluster.id=${broker.clusterId}`, 'same log dir after restart');
    assert.equal((await kafkaMetadata(broker.brokers)).brokers, [{ nodeId: 1, host: '127.0.0.1', port }]);

    await broker.stopBroker();
    assert.not.ok(broker.running);
    const down = await kafkaApiVersions(broker.brokers, 500).then(() => 'answered', (e: Error) => e.message);
    assert.match(down, /ECONNREFUSED/, 'nothing listens while stopped');
    await broker.startBroker();
    assert.ok((await kafkaApiVersions(broker.brokers)).has(18));

    const t5 = Date.now();
    await broker.stop();
    const t6 = Date.now();
    assert.not.ok(existsSync(broker.dir), 'temp dir removed');
    await broker.stop(); // safe twice
    console.log(`  Kafka ${version}: jars ${t1 - t0} ms; format+start ${t2 - t1} ms (java to ready ${firstReady} ms); restart ${t4 - t3} ms (java to ready ${restartReady} ms); stop ${t6 - t5} ms`);
    console.log(`  Kafka ${version}: min..max Produce ${range(apis, 0)}, Fetch ${range(apis, 1)}, Metadata ${range(apis, 3)}, ListOffsets ${range(apis, 2)}, JoinGroup ${range(apis, 11)}`);
  });
}

function range(apis: Map<number, { min: number; max: number }>, key: number): string {
  const r = apis.get(key);
  return r ? `v${r.min}..v${r.max}` : 'none';
}

test.run();
