/**
 * The co-partitioned assignment (`ConsumerOptions.coPartitioned`): partition number p of every
 * subscribed topic goes to the same member, members sorted by id, partition p to member p mod N.
 * Topics with fewer partitions simply have no p past their count. Both client libraries use this
 * function under the same group protocol name, so a group may mix them (a rolling switch of
 * `client:`), whichever member leads the group.
 */
export const CO_PARTITIONED_PROTOCOL = 'KubeCorrelateCoPartitioned';

/** The protocol name of ordinary groups: kafkajs's round-robin assigner's, used by both clients. */
export const ROUND_ROBIN_PROTOCOL = 'RoundRobinAssigner';

/** memberId -> topic -> partitions. Every member gets an entry, possibly empty. */
export function coPartitionedAssignment(memberIds: readonly string[], partitionCounts: ReadonlyMap<string, number>): Map<string, Record<string, number[]>> {
  const ids = [...memberIds].sort();
  const out = new Map<string, Record<string, number[]>>(ids.map((id) => [id, {}]));
  if (ids.length === 0) return out;
  for (const [topic, count] of [...partitionCounts].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    for (let p = 0; p < count; p++) {
      const member = out.get(ids[p % ids.length]!)!;
      (member[topic] ??= []).push(p);
    }
  }
  return out;
}
