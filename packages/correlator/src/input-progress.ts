/**
 * How far a consumer has read its input, as times: "everything that was in partition p at time t
 * has been read". The Kafka driver (kafka-correlator.ts) decides by it, not by how long it waited,
 * when a pending audit event may go out unjoined and when an idle trace may settle: under load a
 * lagging consumer reads data long after it was produced, and a wall-clock wait then gives up on
 * data that was in Kafka all along.
 *
 * The driver takes snapshots of end offsets (Admin.endOffsets) and reports read positions (from
 * its batches, or the group's committed offsets); a snapshot is *reached* once the position is at
 * or past its end offset, and the partition is then *covered* up to the time the snapshot stands
 * for. That time is normally when the snapshot was taken; for a downstream topic it is what its
 * upstream was covered up to when the snapshot was taken (a two-stage chain: the repartition
 * topics are written by consumers of other topics). A channel names one such use of a topic.
 *
 * No I/O and no clock: the driver passes both in.
 */
export class InputProgress {
  /** Next offset this consumer reads, per topic-partition (from delivered batches). */
  private readonly read = new Map<string, number>();
  /** The group's committed offset, per topic-partition (from the admin client). */
  private readonly committed = new Map<string, number>();
  /** Per channel and partition: snapshots not reached yet, oldest first. */
  private readonly snapshots = new Map<string, Array<{ end: number; covers: number }>>();
  /** Per channel and partition: the time the partition is covered up to. */
  private readonly coveredUntil = new Map<string, number>();
  /** Per channel: its topic. */
  private readonly channels = new Map<string, string>();

  /** Snapshots kept per partition while its reader lags; more drop the newest (covering less: conservative). */
  static readonly MAX_SNAPSHOTS = 64;

  /** A batch was read up to `next` (its last offset + 1). */
  seen(topic: string, partition: number, next: number): void {
    const key = pk(topic, partition);
    if (next > (this.read.get(key) ?? -1)) this.read.set(key, next);
  }

  /** The group's committed offsets (-1: none) of a topic, by partition. */
  setCommitted(topic: string, offsets: readonly number[]): void {
    offsets.forEach((o, p) => this.committed.set(pk(topic, p), Math.max(0, o)));
  }

  /** Whether this consumer's read position of a partition is known (else its committed offset is needed). */
  knows(topic: string, partition: number): boolean {
    return this.read.has(pk(topic, partition)) || this.committed.has(pk(topic, partition));
  }

  /** The position: what this consumer read, or what the group committed, whichever is further. */
  position(topic: string, partition: number): number | undefined {
    const r = this.read.get(pk(topic, partition));
    const c = this.committed.get(pk(topic, partition));
    if (r === undefined) return c;
    return c === undefined ? r : Math.max(r, c);
  }

  /** A snapshot of end offsets of `partitions` of the channel's topic, standing for time `covers`. */
  snapshot(channel: string, topic: string, ends: readonly number[], partitions: readonly number[], covers: number): void {
    this.channels.set(channel, topic);
    for (const p of partitions) {
      const end = ends[p];
      if (end === undefined) continue;
      const key = pk(channel, p);
      let q = this.snapshots.get(key);
      if (!q) this.snapshots.set(key, (q = []));
      if (q.length >= InputProgress.MAX_SNAPSHOTS) continue;
      q.push({ end, covers });
    }
  }

  /** Marks every snapshot whose end offset the position has reached as reached. */
  advance(): void {
    for (const [key, q] of this.snapshots) {
      const [channel, p] = splitKey(key);
      const pos = this.position(this.channels.get(channel)!, p);
      if (pos === undefined) continue;
      let covered = this.coveredUntil.get(key) ?? -Infinity;
      while (q.length && q[0]!.end <= pos) covered = Math.max(covered, q.shift()!.covers);
      this.coveredUntil.set(key, covered);
    }
  }

  /** The time partition `partition` of a channel is covered up to (-Infinity: nothing known yet). */
  covered(channel: string, partition: number): number {
    return this.coveredUntil.get(pk(channel, partition)) ?? -Infinity;
  }

  /** The least covered of `partitions` (+Infinity when there are none). */
  coveredAll(channel: string, partitions: readonly number[]): number {
    let min = Infinity;
    for (const p of partitions) min = Math.min(min, this.covered(channel, p));
    return min;
  }

  /**
   * Forgets positions of partitions this consumer no longer owns, and what channels know of them,
   * except the channels named in `groupWide` (those track every partition through the group's
   * committed offsets, set again at each refresh).
   */
  retain(owned: Record<string, number[]>, groupWide: readonly string[] = []): void {
    for (const map of [this.read, this.committed]) {
      for (const key of [...map.keys()]) {
        const [topic, p] = splitKey(key);
        if (!owned[topic]?.includes(p)) map.delete(key);
      }
    }
    for (const map of [this.snapshots, this.coveredUntil] as Array<Map<string, unknown>>) {
      for (const key of [...map.keys()]) {
        const [channel, p] = splitKey(key);
        if (groupWide.includes(channel)) continue;
        if (!owned[this.channels.get(channel) ?? '']?.includes(p)) map.delete(key);
      }
    }
  }
}

const pk = (name: string, partition: number) => `${name}\u0000${partition}`;

function splitKey(key: string): [string, number] {
  const i = key.lastIndexOf('\u0000');
  return [key.slice(0, i), Number(key.slice(i + 1))];
}
