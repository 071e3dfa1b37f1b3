import type { CommitOffset } from './client.js';

/**
 * At-least-once bookkeeping for a consumer whose output is produced later than its input is read
 * (a join that waits). Each consumed message is `hold`-en by whatever still needs it and
 * `release`-d once its output is durable; the offset safe to commit for a partition is the lowest
 * offset still held there, or the one after the last message seen when nothing is held.
 */
export class OffsetTracker {
  private readonly parts = new Map<string, { held: Map<number, number>; next: number; committed: number }>();

  private part(topic: string, partition: number) {
    const key = `${topic}\u0000${partition}`;
    let p = this.parts.get(key);
    if (!p) this.parts.set(key, (p = { held: new Map(), next: -1, committed: -1 }));
    return p;
  }

  /** Records that a message was read; call before hold/release of it. */
  seen(topic: string, partition: number, offset: number): void {
    const p = this.part(topic, partition);
    if (offset + 1 > p.next) p.next = offset + 1;
  }

  hold(topic: string, partition: number, offset: number): void {
    const p = this.part(topic, partition);
    p.held.set(offset, (p.held.get(offset) ?? 0) + 1);
  }

  release(topic: string, partition: number, offset: number): void {
    const p = this.part(topic, partition);
    const n = p.held.get(offset);
    if (n === undefined) return;
    if (n <= 1) p.held.delete(offset);
    else p.held.set(offset, n - 1);
  }

  /** Offsets that moved forward since the last call (to pass to Consumer.commit). */
  commitable(): CommitOffset[] {
    const out: CommitOffset[] = [];
    for (const [key, p] of this.parts) {
      if (p.next < 0) continue;
      let point = p.next;
      for (const o of p.held.keys()) if (o < point) point = o;
      if (point > p.committed) {
        const [topic, partition] = key.split('\u0000');
        out.push({ topic: topic!, partition: Number(partition), offset: String(point) });
        p.committed = point;
      }
    }
    return out;
  }

  /** Forgets partitions this member no longer owns (after a rebalance). */
  retain(owned: Record<string, number[]>): void {
    for (const key of [...this.parts.keys()]) {
      const [topic, partition] = key.split('\u0000');
      if (!owned[topic!]?.includes(Number(partition))) this.parts.delete(key);
    }
  }

  /** Held messages in all (for metrics and tests). */
  heldCount(): number {
    let n = 0;
    for (const p of this.parts.values()) for (const c of p.held.values()) n += c;
    return n;
  }
}
