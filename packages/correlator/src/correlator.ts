import { validateAuditEvent, type AuditEvent } from '@kube-correlate/audit';
import { decodeTraceRequest, encodeTraceRequest, type Span } from '@kube-correlate/otlp';
import { PipelineMetrics, silentLogger, type Logger } from '@kube-correlate/telemetry';
import { TraceJoin, type CorrelatorOutput, type JoinOutput, type TraceJoinOptions } from './trace-join.js';

/**
 * The embedded driver of the join (trace-join.ts): what receivers hand over is made durable first,
 * in the store's inbox, and only then acknowledged and joined; settled trees are written to the
 * store in one transaction with the deletion of the inbox rows they no longer need. So:
 *
 *  - **an OK means durable**: `consumeSpans` / `consumeAuditEvents` resolve once the data is
 *    committed (the inbox; many concurrent requests share one commit), and a SIGKILL at any moment
 *    loses nothing acknowledged: a restart replays the inbox rows not yet stored in full;
 *  - **no poison**: when a write fails on something (not on the disk), each update is written on its
 *    own and the one that fails is set aside in the store's quarantine, with the bytes received,
 *    counted; everything else goes on. No retry holds other data back;
 *  - **backpressure**: when the store cannot write (disk full, I/O error), what settled is kept and
 *    retried with backoff, and receivers are refused with a retryable error (gRPC UNAVAILABLE, HTTP
 *    503 with Retry-After) until a write succeeds again; the inbox append refuses the same way;
 *  - **bounded shutdown**: `stop(timeoutMs)` settles and writes what it can in that time; what it
 *    could not is still in the inbox for the next start;
 *  - **the event loop keeps turning**: what settles is written in slices of at most
 *    `writeSliceItems` spans and audit events per transaction (a trace is never split), in order,
 *    with a turn of the event loop between two slices, so receivers, their inbox commits, `/metrics`
 *    and the query API are served while a large settle is written. Only the last slice of a settle
 *    releases its inbox rows.
 */

/** What the embedded driver needs of the store (TraceStore implements it). */
export interface InboxStore {
  /** Appends rows in one transaction; returns their sequence numbers, increasing. */
  appendInbox(rows: ReadonlyArray<{ kind: 1 | 2; data: Uint8Array }>): number[];
  inboxRows(fromSeq: number, limit: number): Array<{ seq: number; kind: 1 | 2; data: Uint8Array }>;
  inboxData(seq: number): Uint8Array | undefined;
  /** One transaction: the output, and the deletion of inbox rows before `inboxBefore`. */
  writeSync(output: CorrelatorOutput, opts?: { inboxBefore?: number }): void;
  quarantine(what: string, reason: string, summary: string, data?: Uint8Array): void;
}

/** What a store's write may throw that another try can cure (the disk, a lock); anything else is the data's fault. */
export function retryableStoreError(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | undefined)?.code;
  if (typeof code !== 'string') return undefined;
  if (code === 'SQLITE_FULL') return 'full';
  if (code.startsWith('SQLITE_IOERR')) return 'io';
  if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) return 'busy';
  if (code === 'SQLITE_CANTOPEN' || code.startsWith('SQLITE_READONLY')) return 'unavailable';
  return undefined;
}

/** The store cannot take data now: receivers answer with a retryable status. */
export class StoreUnavailableError extends Error {
  override readonly name = 'StoreUnavailableError';
  constructor(message: string, readonly retryAfterSeconds = 5) {
    super(message);
  }
}

export interface CorrelatorOptions extends Omit<TraceJoinOptions, 'metrics' | 'onHold'> {
  store: InboxStore;
  metrics?: PipelineMetrics;
  logger?: Logger;
  /** Clock, for tests. */
  now?: () => number;
  /** Updates settled early (caps) are written once this many pile up, without waiting for the timer. Default 1000. */
  flushAt?: number;
  /**
   * Most spans and audit events written in one store transaction (a trace bigger than that is
   * written alone); the event loop turns between two. Default 250.
   */
  writeSliceItems?: number;
  /** First pause after a failed write (doubles up to 30 s). Default 500 ms. */
  retryPauseMs?: number;
  /** Called when a write or an append finds the store full (the pipeline runs retention then). */
  onStoreFull?: () => void;
}

/** At-least-once bookkeeping over increasing sequence numbers: the lowest one still held bounds what may go. */
class SeqTracker {
  private readonly held = new Map<number, number>();
  private next = 0;

  seen(seq: number): void {
    if (seq + 1 > this.next) this.next = seq + 1;
  }

  hold(seq: number): void {
    this.held.set(seq, (this.held.get(seq) ?? 0) + 1);
  }

  release(seq: number): void {
    const n = this.held.get(seq);
    if (n === undefined) return;
    if (n <= 1) this.held.delete(seq);
    else this.held.set(seq, n - 1);
  }

  /** Rows before this are stored in full. */
  watermark(): number {
    let w = this.next;
    // Map iteration is insertion order, and sequence numbers are held in increasing order: the
    // first key is the lowest (a re-hold after a failed write may come later: scan then).
    for (const s of this.held.keys()) if (s < w) w = s;
    return w;
  }

  heldCount(): number {
    return this.held.size;
  }
}

const REPLAY_CHUNK = 500;

/** Lets the event loop run what waits (I/O callbacks: requests, their commits, scrapes) before going on. */
const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * Cuts what one settle gave into slices of at most `maxItems` spans and audit events (a trace is
 * never split: one bigger than that is a slice of its own), in order. The tokens it releases and
 * the API operations go with the last slice and the first: a slice releases nothing before the
 * whole settle is written.
 */
export function sliceOutput<T, S>(out: JoinOutput<T, S>, maxItems: number): JoinOutput<T, S>[] {
  const slices: JoinOutput<T, S>[] = [];
  let cur: JoinOutput<T, S> = { traces: [], unjoinedAuditEvents: [], released: [] };
  let items = 0;
  const add = (n: number, put: (o: JoinOutput<T, S>) => void) => {
    if (items > 0 && items + n > maxItems) {
      slices.push(cur);
      cur = { traces: [], unjoinedAuditEvents: [], released: [] };
      items = 0;
    }
    put(cur);
    items += n;
  };
  for (const t of out.traces) add(t.spans.length + t.auditEvents.length, (o) => o.traces.push(t));
  for (const e of out.unjoinedAuditEvents) add(1, (o) => o.unjoinedAuditEvents.push(e));
  slices.push(cur);
  if (out.apiOperations) slices[0]!.apiOperations = out.apiOperations;
  slices[slices.length - 1]!.released = out.released;
  return slices;
}

export class Correlator {
  readonly join: TraceJoin<number>;
  private readonly store: InboxStore;
  private readonly metrics: PipelineMetrics;
  private readonly logger: Logger;
  private readonly now: () => number;
  private readonly tracker = new SeqTracker();
  private readonly flushAt: number;
  private readonly writeSliceItems: number;
  private readonly retryPauseMs: number;
  private readonly onStoreFull: (() => void) | undefined;
  /** Bytes of each inbox row not deleted yet, in sequence order: the inbox's size without asking the store. */
  private readonly inboxSizes = new Map<number, number>();
  private inboxBytes = 0;
  /** Appends waiting for the next commit. */
  private appends: Array<{ kind: 1 | 2; data: Uint8Array; resolve: (seq: number) => void; reject: (err: Error) => void }> = [];
  private commitScheduled = false;
  /**
   * Slices of settled output not written yet, in order: the rest of a settle being written, or what
   * a retryable failure left (written first, before anything else, once its pause is over).
   */
  private unwritten: JoinOutput<number>[] = [];
  private retryPause = 0;
  private retryAt = 0;
  /** Why the store refuses data now (a retryable write failure), or undefined. */
  private unavailable: string | undefined;
  private writing: Promise<void> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private started = false;

  constructor(options: CorrelatorOptions) {
    const { store, logger, now, flushAt, writeSliceItems, retryPauseMs, onStoreFull, ...join } = options;
    this.onStoreFull = onStoreFull;
    this.store = store;
    this.metrics = options.metrics ?? new PipelineMetrics();
    this.logger = logger ?? silentLogger();
    this.now = now ?? Date.now;
    this.flushAt = flushAt ?? 1000;
    this.writeSliceItems = writeSliceItems ?? 250;
    if (!(this.writeSliceItems >= 1)) throw new RangeError(`correlator: writeSliceItems must be at least 1, got ${writeSliceItems}`);
    this.retryPauseMs = retryPauseMs ?? 500;
    this.join = new TraceJoin<number>({ ...join, metrics: this.metrics, onHold: ((seq: number) => this.tracker.hold(seq)) as (t: never) => void });
  }

  /**
   * Replays the inbox (what was acknowledged before a stop or a crash and not stored in full), then
   * settles on a timer. The replay is joined like new data; the store's keys drop what was stored.
   */
  async start(): Promise<void> {
    if (this.started || this.stopped) return;
    this.started = true;
    let replayed = 0;
    let from = 0;
    for (;;) {
      const rows = this.store.inboxRows(from, REPLAY_CHUNK);
      if (rows.length === 0) break;
      for (const r of rows) {
        this.ingestRow(r.seq, r.kind, r.data);
        from = r.seq + 1;
      }
      replayed += rows.length;
      if (this.join.earlyCount() >= this.flushAt) await this.flush();
    }
    if (replayed) this.logger.info({ rows: replayed }, 'replayed the inbox: acknowledged data not stored in full before the last stop');
    this.updateInboxGauges();
    const every = Math.max(10, Math.min(1000, Math.floor(this.join.opts.settleAfterMs / 4)));
    this.timer = setInterval(() => void this.tick(), every);
    this.timer.unref();
  }

  /** Durable, then joined. Rejects with StoreUnavailableError when the store cannot take it now. */
  async consumeSpans(spans: Span[], raw?: Uint8Array): Promise<void> {
    if (spans.length === 0) return;
    const data = raw ?? encodeTraceRequest(spans);
    const seq = await this.append(1, data);
    this.join.addSpans(spans, this.now(), seq, data.byteLength);
    this.tracker.seen(seq);
    this.afterAdd();
  }

  async consumeAuditEvents(events: AuditEvent[]): Promise<void> {
    if (events.length === 0) return;
    const data = Buffer.from(JSON.stringify(events));
    const seq = await this.append(2, data);
    this.join.addAuditEvents(events, this.now(), seq, data.byteLength);
    this.tracker.seen(seq);
    this.afterAdd();
  }

  /** Settles idle traces and expired pending audits and writes them. Never throws. */
  async tick(): Promise<void> {
    await this.flush().catch((err: unknown) => this.logger.error({ err }, 'settle failed'));
  }

  /**
   * Stops the timer, settles everything in flight and writes it, for at most `timeoutMs`. What could
   * not be written is still in the inbox: the next start replays it. Safe twice, safe without start.
   */
  async stop(timeoutMs = 10_000): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (this.stopped) return this.writing;
    this.stopped = true;
    const deadline = this.now() + timeoutMs;
    await this.flushAll(true, deadline).catch((err: unknown) => this.logger.error({ err }, 'final settle failed; what was not stored stays in the inbox for the next start'));
    for (const a of this.appends.splice(0)) a.reject(new StoreUnavailableError('shutting down'));
  }

  stats(): ReturnType<TraceJoin['stats']> & { inboxHeld: number; retrying: number } {
    return { ...this.join.stats(), inboxHeld: this.tracker.heldCount(), retrying: this.unwritten.length };
  }

  /** Why data is refused now (the store cannot write), or undefined. */
  refusing(): string | undefined {
    return this.unavailable;
  }

  private append(kind: 1 | 2, data: Uint8Array): Promise<number> {
    if (this.stopped) return Promise.reject(new StoreUnavailableError('shutting down'));
    if (this.unavailable) return Promise.reject(new StoreUnavailableError(`the store cannot take data now: ${this.unavailable}`));
    return new Promise((resolve, reject) => {
      this.appends.push({ kind, data, resolve, reject });
      if (!this.commitScheduled) {
        this.commitScheduled = true;
        // Every request that arrives in this turn of the event loop shares one commit.
        setImmediate(() => this.commitAppends());
      }
    });
  }

  private commitAppends(): void {
    this.commitScheduled = false;
    const batch = this.appends.splice(0);
    if (batch.length === 0) return;
    let seqs: number[];
    try {
      seqs = this.store.appendInbox(batch.map((a) => ({ kind: a.kind, data: a.data })));
    } catch (err) {
      const reason = retryableStoreError(err) ?? 'error';
      this.metrics.storeWriteFailed.inc({ reason: `inbox_${reason}` });
      if (reason === 'full') this.onStoreFull?.();
      this.logger.warn({ err: (err as Error).message, requests: batch.length }, 'cannot append to the inbox: refusing data (retryable) until the store can write');
      for (const a of batch) a.reject(new StoreUnavailableError(`the store cannot take data now: ${(err as Error).message}`));
      return;
    }
    batch.forEach((a, i) => {
      this.inboxSizes.set(seqs[i]!, a.data.byteLength);
      this.inboxBytes += a.data.byteLength;
      a.resolve(seqs[i]!);
    });
    this.updateInboxGauges();
  }

  private afterAdd(): void {
    if (this.join.earlyCount() >= this.flushAt) void this.tick();
  }

  private ingestRow(seq: number, kind: number, data: Uint8Array): void {
    this.inboxSizes.set(seq, data.byteLength);
    this.inboxBytes += data.byteLength;
    try {
      if (kind === 1) this.join.addSpans(decodeTraceRequest(data).spans, this.now(), seq, data.byteLength);
      else {
        const items = JSON.parse(Buffer.from(data).toString('utf8')) as unknown[];
        const events = items.map((x) => validateAuditEvent(x)).filter((e): e is AuditEvent => typeof e !== 'string');
        this.join.addAuditEvents(events, this.now(), seq, data.byteLength);
      }
    } catch (err) {
      // A row that was accepted once cannot fail to decode unless something is badly wrong: keep
      // its bytes for inspection and go on.
      this.store.quarantine('inbox_row', `replay: ${(err as Error).message}`, `inbox row ${seq}, kind ${kind}, ${data.byteLength} bytes`, data);
      this.logger.error({ err, seq }, 'an inbox row does not decode: set aside in quarantine');
    }
    this.tracker.seen(seq);
  }

  /** One settle and write at a time. */
  private flush(): Promise<void> {
    return this.flushAll(false, Infinity);
  }

  private flushAll(all: boolean, deadline: number): Promise<void> {
    const run = this.writing.then(() => this.writeRound(all, deadline));
    this.writing = run.catch(() => undefined);
    return run;
  }

  private async writeRound(all: boolean, deadline: number): Promise<void> {
    // Earlier output first, in order, once its pause is over (or at shutdown, until the deadline).
    if (!(await this.writeUnwritten(all, deadline))) return;
    this.unwritten.push(...sliceOutput(this.join.settle(this.now(), all), this.writeSliceItems));
    await this.writeUnwritten(all, deadline);
  }

  /** Writes the unwritten slices in order, the event loop turning between two. False when some are left (a failure's pause, the deadline). */
  private async writeUnwritten(all: boolean, deadline: number): Promise<boolean> {
    while (this.unwritten.length) {
      const now = this.now();
      if (!all && now < this.retryAt) return false;
      if (now > deadline) return false;
      if (!this.write(this.unwritten[0]!)) {
        if (all) {
          if (this.now() > deadline) return false;
          await new Promise((r) => setTimeout(r, Math.min(this.retryPause, Math.max(0, deadline - this.now()))));
          continue;
        }
        return false;
      }
      this.unwritten.shift();
      if (this.unwritten.length) await yieldToEventLoop();
    }
    return true;
  }

  /** Writes one output with the inbox deletion it allows. False (and the output kept) when the store cannot write now. */
  private write(out: JoinOutput<number>): boolean {
    for (const seq of out.released) this.tracker.release(seq);
    const watermark = this.tracker.watermark();
    try {
      this.store.writeSync(out, { inboxBefore: watermark });
    } catch (err) {
      const reason = retryableStoreError(err);
      if (reason) {
        for (const seq of out.released) this.tracker.hold(seq);
        this.failed(reason, err);
        return false;
      }
      // Something in this output cannot be stored: write what can be, set the rest aside.
      this.isolate(out, err, watermark);
    }
    this.recovered();
    for (const [seq, bytes] of this.inboxSizes) {
      if (seq >= watermark) break;
      this.inboxSizes.delete(seq);
      this.inboxBytes -= bytes;
    }
    this.updateInboxGauges();
    return true;
  }

  /** Writes each update of an output alone; one that still fails goes to quarantine with the bytes it came from. */
  private isolate(out: JoinOutput<number>, first: unknown, watermark: number): void {
    this.logger.error({ err: (first as Error).message }, 'a store write failed on its data; writing each trace on its own and setting aside what fails');
    const one = (label: string, o: CorrelatorOutput, sources: unknown[] = []) => {
      try {
        this.store.writeSync(o);
      } catch (err) {
        if (retryableStoreError(err)) throw err;
        let summary: string;
        try {
          summary = JSON.stringify(o).slice(0, 10_000);
        } catch {
          summary = `${label} (not serializable)`;
        }
        this.store.quarantine(label.split(' ')[0]!, (err as Error).message ?? String(err), summary, this.received(sources));
        this.logger.error({ err: (err as Error).message, item: label }, 'set aside in quarantine: the store cannot write it');
      }
    };
    for (const t of out.traces) one(`trace ${t.traceId}`, { traces: [t], unjoinedAuditEvents: [], ...(out.apiOperations ? { apiOperations: out.apiOperations } : {}) }, t.sources);
    for (const e of out.unjoinedAuditEvents) one(`audit_event ${e.auditID}/${e.stage}`, { traces: [], unjoinedAuditEvents: [e] });
    this.store.writeSync({ traces: [], unjoinedAuditEvents: [] }, { inboxBefore: watermark });
  }

  /** The received bytes of inbox rows, each as a 4-byte big-endian length and the bytes (as the captures' otlp.bin). */
  private received(sources: unknown[]): Uint8Array | undefined {
    const parts: Buffer[] = [];
    for (const seq of sources) {
      const data = typeof seq === 'number' ? this.store.inboxData(seq) : undefined;
      if (!data) continue;
      const len = Buffer.alloc(4);
      len.writeUInt32BE(data.byteLength);
      parts.push(len, Buffer.from(data.buffer, data.byteOffset, data.byteLength));
    }
    return parts.length ? Buffer.concat(parts) : undefined;
  }

  private failed(reason: string, err: unknown): void {
    this.metrics.storeWriteFailed.inc({ reason });
    if (reason === 'full') this.onStoreFull?.();
    this.retryPause = Math.min(30_000, this.retryPause ? this.retryPause * 2 : this.retryPauseMs);
    this.retryAt = this.now() + this.retryPause;
    if (!this.unavailable) this.logger.error({ err: (err as Error).message, reason }, 'the store cannot write: refusing new data (retryable) and retrying');
    this.unavailable = `${reason}: ${(err as Error).message}`;
  }

  private recovered(): void {
    if (this.unavailable) this.logger.info('the store writes again: accepting data');
    this.unavailable = undefined;
    this.retryPause = 0;
  }

  private updateInboxGauges(): void {
    this.metrics.inboxRows.set(this.inboxSizes.size);
    this.metrics.inboxBytes.set(this.inboxBytes);
  }
}
