import { randomBytes } from 'node:crypto';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Partitioners } from 'kafkajs';
import { compatibilityPartitioner, defaultPartitioner } from '@platformatic/kafka';
import { javaPartition, murmur2 } from '../src/index.js';

/**
 * The Java client's partition for a keyed record, from three sides: our reference (a transcription
 * of Utils.murmur2 and BuiltInPartitioner.partitionForKey), kafkajs's DefaultPartitioner and
 * @platformatic/kafka's compatibilityPartitioner, as our producers are configured. The real Java
 * function and real brokers are compared in test/e2e/kafka-client.test.ts.
 */

// org.apache.kafka.common.utils.UtilsTest#testMurmur2
const JAVA_VECTORS: Array<[string, number]> = [
  ['21', -973932308],
  ['foobar', -790332482],
  ['a-little-bit-long-string', -985981536],
  ['a-little-bit-longer-string', -1486304829],
  ['lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8', -58897971],
  ['abc', 479470107],
];

test('murmur2 gives the Java client\'s values (UtilsTest vectors)', () => {
  for (const [key, want] of JAVA_VECTORS) assert.is(murmur2(Buffer.from(key)), want, key);
});

/** Keys like ours (32-hex trace ids, auditIDs) plus random bytes of every tail length. */
function keys(): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < 600; i++) out.push(Buffer.from(randomBytes(16).toString('hex')));
  for (let i = 0; i < 200; i++) out.push(Buffer.from(`${randomBytes(4).toString('hex')}-aaaa-4000-8000-${randomBytes(6).toString('hex')}`));
  for (let len = 0; len < 40; len++) for (let i = 0; i < 5; i++) out.push(randomBytes(len));
  return out;
}

test('kafkajs DefaultPartitioner and @platformatic/kafka compatibilityPartitioner pick the Java partition', () => {
  const ks = keys();
  let negative = 0;
  for (const n of [1, 2, 3, 4, 5, 7, 8, 12, 16, 31, 100]) {
    const kjs = Partitioners.DefaultPartitioner();
    const partitionMetadata = Array.from({ length: n }, (_, i) => ({ partitionId: i, leader: 1, replicas: [1], isr: [1], partitionErrorCode: 0 }));
    for (const k of ks) {
      const want = javaPartition(k, n);
      assert.is(kjs({ topic: 't', partitionMetadata, message: { key: k, value: null } }), want, `kafkajs, ${n} partitions, key ${k.toString('hex')}`);
      // @platformatic/kafka: the partitioner's number, then % partitions in the producer.
      assert.is(compatibilityPartitioner({ topic: 't', key: k, value: undefined }, k) % n, want, `platformatic, ${n} partitions, key ${k.toString('hex')}`);
      if (murmur2(k) < 0) negative++;
    }
  }
  assert.ok(negative > 100, 'negative hashes were covered');
});

test('the library default of @platformatic/kafka would not (why the producer sets compatibilityPartitioner)', () => {
  const ks = keys();
  const differ = ks.filter((k) => defaultPartitioner({ topic: 't', key: k, value: undefined }, k) % 7 !== javaPartition(k, 7)).length;
  assert.ok(differ > ks.length / 4, `${differ} of ${ks.length} keys on another partition of 7`);
});

test('string keys are their UTF-8 bytes', () => {
  assert.is(javaPartition('abc', 7), javaPartition(Buffer.from('abc'), 7));
  assert.is(javaPartition('ü', 7), javaPartition(Buffer.from([0xc3, 0xbc]), 7));
});

test.run();
