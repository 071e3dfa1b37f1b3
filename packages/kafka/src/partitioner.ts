/**
 * The Java client's default partitioner for keyed records, written out from
 * org.apache.kafka.common.utils.Utils.murmur2 and BuiltInPartitioner.partitionForKey:
 * `toPositive(murmur2(keyBytes)) % numPartitions`, toPositive being `n & 0x7fffffff`.
 *
 * Both client libraries are configured to pick the same partition (kafkajs's DefaultPartitioner,
 * @platformatic/kafka's compatibilityPartitioner); this module is the reference the tests hold
 * them to, so topics written by any producer keyed alike partition alike.
 */

/** Kafka's murmur2 of the bytes, as a signed 32-bit integer. */
export function murmur2(data: Uint8Array): number {
  const seed = 0x9747b28c;
  const m = 0x5bd1e995;
  const r = 24;
  const length = data.length;
  let h = seed ^ length;
  const length4 = length >> 2;
  for (let i = 0; i < length4; i++) {
    const o = i * 4;
    let k = (data[o]! & 0xff) | ((data[o + 1]! & 0xff) << 8) | ((data[o + 2]! & 0xff) << 16) | ((data[o + 3]! & 0xff) << 24);
    k = Math.imul(k, m);
    k ^= k >>> r;
    k = Math.imul(k, m);
    h = Math.imul(h, m);
    h ^= k;
  }
  const rest = length & ~3;
  const tail = length % 4;
  if (tail >= 3) h ^= (data[rest + 2]! & 0xff) << 16;
  if (tail >= 2) h ^= (data[rest + 1]! & 0xff) << 8;
  if (tail >= 1) {
    h ^= data[rest]! & 0xff;
    h = Math.imul(h, m);
  }
  h ^= h >>> 13;
  h = Math.imul(h, m);
  h ^= h >>> 15;
  return h | 0;
}

/** The partition the Java client picks for a record with this key. */
export function javaPartition(key: Uint8Array | string, partitions: number): number {
  const bytes = typeof key === 'string' ? Buffer.from(key, 'utf8') : key;
  return (murmur2(bytes) & 0x7fffffff) % partitions;
}
