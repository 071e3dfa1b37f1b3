import { chmodSync, closeSync, existsSync, mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { auditEventsConflict, auditIDForSpans, parseAuditTimestamp, summarizeAudit, type AuditEvent } from '@kube-correlate/audit';
import {
  AUTHENTICATION_SPAN, buildRequestTree, DEFAULT_OBJSET_WINDOW_MS, objectsOfAudit, ObjectSets, objectUidOfRef, refMs, toTreeAudit,
  type ApiOperation, type CorrelatorOutput, type CorrelatorSink, type ObjectIndex, type ObjectRow, type ObjectSetChainEntry, type ObjectSetTree,
  type ObjectSetTreeData, type RefRow, type RequestTree, type TreeNode,
} from '@kube-correlate/correlator';
import { objectRequestSpanId, objectSetTraceId, objectSetWindowStart } from '@kube-correlate/semconv';
import type { Span } from '@kube-correlate/otlp';
import { PipelineMetrics } from '@kube-correlate/telemetry';
import { WalCheckpointer } from './wal-checkpointer.js';

/**
 * The embedded store: spans and audit events as they settled, keyed so that redelivery and
 * split updates merge (spans by (trace id, span id), audit events by (auditID, stage)), plus the
 * auditID <-> trace id pairs. Trees are built on read from what is stored, so a late span or
 * audit event shows up in the tree with no rewrite.
 *
 * One SQLite file in WAL mode; writes are one transaction per correlator output, so a crash
 * leaves either all of an output or none of it.
 */
export interface TraceStoreOptions {
  /** Directory of the database file; created if missing. */
  dir: string;
  metrics?: PipelineMetrics;
  /** Open read-only (the CLI reading a store that a pipeline owns). */
  readonly?: boolean;
  /** Record what each write touched in the export queue, for the OTLP exporter (see export-plan.ts). */
  exportQueue?: boolean;
  /**
   * When an object set's queue entry comes due (see export-plan.ts): `settleAfterMs` after the
   * latest data that touched one of its objects, and at most `maxDelayMs` after the first. Default
   * 0 (at once).
   */
  objectSetDebounce?: { settleAfterMs: number; maxDelayMs: number };
  /** Clock (ms), for tests. */
  now?: () => number;
  /**
   * A hard cap on the database's size (bytes): past it writes fail with SQLITE_FULL, and the
   * pipeline refuses data retryably (retention keeps it below, see applyRetention). Default none.
   */
  maxSizeBytes?: number;
  /** `PRAGMA synchronous`: NORMAL (default) survives a process crash; FULL also a power loss, with an fsync per commit. */
  synchronous?: 'normal' | 'full';
  /** Called after a write that queued something for export. */
  onExportQueued?: () => void;
  /** A throwaway in-memory database (the CLI's view of traces read from Jaeger); `dir` is ignored. */
  memory?: boolean;
  /**
   * Length of an object set's time windows (the OTLP exporter's `object_sets.window`): one trace per
   * set per window. A writable store records it, so the CLI reading the store directly shows the
   * windows the exporter used; default: what the store recorded, else 1 hour.
   */
  objectSetWindowMs?: number;
  /**
   * Checkpoint the WAL from a worker thread (wal-checkpointer.ts) instead of inside the commit that
   * crosses SQLite's threshold, so that a commit never waits for the copy and its syncs (the
   * embedded pipeline's one event loop). A failed checkpoint is counted in
   * `kube_correlate_store_write_failed_total{reason="checkpoint"}` and passed to `onCheckpointError`.
   */
  checkpointInBackground?: boolean | { intervalMs: number; restartFrames?: number };
  onCheckpointError?: (message: string, code: string) => void;
}

/** Page cache of a writable store's connection (KiB): the B-trees that writes touch stay in memory (SQLite's default is 2 MiB). */
const CACHE_KIB = 64 * 1024;

/**
 * What the OTLP exporter has still to look at: a trace, an unjoined audit request, an object in a
 * window (its set's trace of that window; key `<uid>@<window start ms>`), or the release, at the
 * entry's time, of spans held back (a trace's, an unjoined request's or an object set window's:
 * see export-plan.ts).
 */
export interface ExportQueueEntry {
  kind: 'trace' | 'unjoined' | 'object' | 'release';
  key: string;
}

/** Key of an `object` export queue entry: the object and the window of the request that touched it. */
export const objectEntryKey = {
  of: (uid: string, windowStartMs: number) => `${uid}@${windowStartMs}`,
  /** An entry queued before windows (schema v4) names no window: the set's newest. */
  parse: (key: string): { uid: string; windowStartMs?: number } => {
    const m = /^(.*)@(\d+)$/.exec(key);
    return m ? { uid: m[1]!, windowStartMs: Number(m[2]) } : { uid: key };
  },
};

/** Timestamps as audit events carry them (RFC 3339, UTC); the store compares them as text, so a day either side is read and filtered exactly. */
const DAY_MS = 86_400_000;

export interface TraceSummary {
  traceId: string;
  rootName: string;
  service: string;
  startTimeUnixNano: string;
  spanCount: number;
  auditIds: string[];
  updatedAt: string;
}

const SCHEMA_VERSION = 6;

/**
 * The store holds what the cluster's audit logs and traces say: only its owner may read it. The
 * directory is made (or set) 0700 and the database files 0600; SQLite gives its -wal and -shm files
 * the database file's mode, so the file is created 0600 before SQLite opens it.
 */
function protectDataDir(dir: string, dbPath: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  if (!existsSync(dbPath)) closeSync(openSync(dbPath, 'a', 0o600));
  for (const f of [dbPath, `${dbPath}-wal`, `${dbPath}-shm`]) if (existsSync(f)) chmodSync(f, 0o600);
}

/** What an inbox row holds: an OTLP ExportTraceServiceRequest (protobuf), or a JSON array of audit Events. */
export type InboxKind = 1 | 2;
export const INBOX_SPANS: InboxKind = 1;
export const INBOX_AUDIT: InboxKind = 2;

/** uid of the object an audit event is about (objectRef, else the object it carries), or ''. */
function objectUidOf(e: AuditEvent): string {
  const { object, ref } = objectsOfAudit(e);
  return ref.uid || object?.uid || '';
}

export class TraceStore implements CorrelatorSink {
  readonly path: string;
  private readonly db: Database.Database;
  private readonly metrics: PipelineMetrics;
  private readonly stmt;
  private obj!: ReturnType<TraceStore['objectStatements']>;
  private index!: ObjectIndex;
  /** Object-set resolution and trees (@kube-correlate/correlator) over this store's object tables. */
  readonly objectSets: ObjectSets;
  private closed = false;
  private readonly checkpointer: WalCheckpointer | undefined;
  private readonly now: () => number;
  private readonly windowMs: number;

  constructor(private readonly opts: TraceStoreOptions) {
    this.path = opts.memory ? ':memory:' : join(opts.dir, 'kube-correlate.db');
    if (!opts.readonly && !opts.memory) protectDataDir(opts.dir, this.path);
    this.db = new Database(this.path, { readonly: !!opts.readonly, fileMustExist: !!opts.readonly });
    this.metrics = opts.metrics ?? new PipelineMetrics();
    this.now = opts.now ?? Date.now;
    if (!opts.readonly) {
      if (!opts.memory) this.db.pragma('journal_mode = WAL');
      this.db.pragma(`synchronous = ${opts.synchronous === 'full' ? 'FULL' : 'NORMAL'}`);
      this.db.pragma(`cache_size = -${CACHE_KIB}`);
      this.migrate();
    }
    this.db.pragma('busy_timeout = 5000');
    if (opts.maxSizeBytes !== undefined && !opts.readonly) this.setMaxSize(opts.maxSizeBytes);
    if (opts.readonly) {
      const version = this.db.pragma('user_version', { simple: true }) as number;
      if (version !== SCHEMA_VERSION) {
        this.db.close();
        throw new Error(`${this.path}: schema version ${version}, this build reads ${SCHEMA_VERSION}: ${version < SCHEMA_VERSION ? 'start the pipeline (correlate start) with this build on it once to upgrade it' : 'upgrade kube-correlate'}`);
      }
    }
    this.prepareObjectStatements();
    this.windowMs = this.resolveWindow(opts);
    this.objectSets = new ObjectSets(this.index, this.windowMs);
    if (opts.checkpointInBackground && !opts.readonly && !opts.memory) {
      this.db.pragma(`wal_autocheckpoint = ${WalCheckpointer.BACKSTOP_PAGES}`);
      this.checkpointer = new WalCheckpointer(this.path, {
        ...(opts.synchronous ? { synchronous: opts.synchronous } : {}),
        ...(typeof opts.checkpointInBackground === 'object' ? opts.checkpointInBackground : {}),
        onError: (message, code) => {
          this.metrics.storeWriteFailed.inc({ reason: 'checkpoint' });
          opts.onCheckpointError?.(message, code);
        },
      });
    }
    this.stmt = {
      insertSpan: this.db.prepare('INSERT OR IGNORE INTO spans (trace_id, span_id, parent_span_id, start_ns, data) VALUES (?, ?, ?, ?, ?)'),
      insertOperation: this.db.prepare('INSERT OR IGNORE INTO audit_operations (audit_id, operation_id, stability) VALUES (?, ?, ?)'),
      operationOf: this.db.prepare('SELECT operation_id, stability FROM audit_operations WHERE audit_id = ?'),
      addPayload: this.db.prepare("UPDATE store_stats SET value = value + ? WHERE name = 'payload_bytes'"),
      payload: this.db.prepare("SELECT value FROM store_stats WHERE name = 'payload_bytes'"),
      insertLink: this.db.prepare('INSERT OR IGNORE INTO span_links (target_trace_id, target_span_id, trace_id, span_id) VALUES (?, ?, ?, ?)'),
      linkedFrom: this.db.prepare('SELECT s.data FROM span_links l JOIN spans s ON s.trace_id = l.trace_id AND s.span_id = l.span_id WHERE l.target_trace_id = ? AND l.target_span_id = ?'),
      insertAudit: this.db.prepare('INSERT OR IGNORE INTO audit_events (audit_id, stage, data, stored_ms) VALUES (?, ?, ?, ?)'),
      insertPair: this.db.prepare('INSERT OR IGNORE INTO audit_traces (audit_id, trace_id) VALUES (?, ?)'),
      touchTrace: this.db.prepare('INSERT INTO traces (trace_id, updated_at) VALUES (?, ?) ON CONFLICT(trace_id) DO UPDATE SET updated_at = excluded.updated_at'),
      spansOf: this.db.prepare('SELECT data FROM spans WHERE trace_id = ?'),
      span: this.db.prepare('SELECT data FROM spans WHERE trace_id = ? AND span_id = ?'),
      auditOf: this.db.prepare('SELECT data FROM audit_events WHERE audit_id = ?'),
      auditStage: this.db.prepare('SELECT data FROM audit_events WHERE audit_id = ? AND stage = ?'),
      auditIdsOf: this.db.prepare('SELECT audit_id FROM audit_traces WHERE trace_id = ? ORDER BY audit_id'),
      tracesOfAudit: this.db.prepare('SELECT trace_id FROM audit_traces WHERE audit_id = ? ORDER BY trace_id'),
      hasTrace: this.db.prepare('SELECT updated_at FROM traces WHERE trace_id = ?'),
      recent: this.db.prepare('SELECT trace_id, updated_at FROM traces ORDER BY updated_at DESC, trace_id LIMIT ?'),
      counts: this.db.prepare('SELECT (SELECT count(*) FROM traces) AS traces, (SELECT count(*) FROM spans) AS spans, (SELECT count(*) FROM audit_events) AS auditEvents'),
    };
  }

  private migrate(): void {
    const version = this.db.pragma('user_version', { simple: true }) as number;
    if (version > SCHEMA_VERSION) throw new Error(`${this.path}: schema version ${version} is newer than this build (${SCHEMA_VERSION}); upgrade kube-correlate`);
    if (version === SCHEMA_VERSION) return;
    this.rowidSpans();
    // Tables a store of an older version lacks are created as they are now; columns added since
    // are added below.
    this.db.exec(`
      -- v6: a rowid table (rows appended in the order written) with its key in an index; before,
      -- WITHOUT ROWID keyed by (trace_id, span_id): rows of 1-2 KB inserted at random keys left
      -- its pages 40% full and dirtied a page per span (4.2 KB of file per 1.6 KB span).
      CREATE TABLE IF NOT EXISTS spans (
        trace_id TEXT NOT NULL, span_id TEXT NOT NULL, parent_span_id TEXT NOT NULL,
        start_ns TEXT NOT NULL, data TEXT NOT NULL);
      CREATE UNIQUE INDEX IF NOT EXISTS spans_by_id ON spans (trace_id, span_id);
      CREATE TABLE IF NOT EXISTS audit_events (
        audit_id TEXT NOT NULL, stage TEXT NOT NULL, data TEXT NOT NULL,
        PRIMARY KEY (audit_id, stage)) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS audit_traces (
        audit_id TEXT NOT NULL, trace_id TEXT NOT NULL,
        PRIMARY KEY (audit_id, trace_id)) WITHOUT ROWID;
      CREATE INDEX IF NOT EXISTS audit_traces_by_trace ON audit_traces (trace_id, audit_id);
      CREATE TABLE IF NOT EXISTS traces (
        trace_id TEXT PRIMARY KEY NOT NULL, updated_at TEXT NOT NULL) WITHOUT ROWID;
      CREATE INDEX IF NOT EXISTS traces_by_update ON traces (updated_at);
      -- v2: objects seen in audit events, and what each audit request touched (object sets).
      -- v4: the controller owner's kind, name and apiVersion (from the ownerReference).
      CREATE TABLE IF NOT EXISTS objects (
        uid TEXT PRIMARY KEY NOT NULL, kind TEXT NOT NULL, api_version TEXT NOT NULL, resource TEXT NOT NULL,
        namespace TEXT NOT NULL, name TEXT NOT NULL, owner_uid TEXT NOT NULL, objset_id TEXT NOT NULL,
        first_seen TEXT NOT NULL, deleted INTEGER NOT NULL,
        owner_kind TEXT NOT NULL DEFAULT '', owner_name TEXT NOT NULL DEFAULT '', owner_api_version TEXT NOT NULL DEFAULT '') WITHOUT ROWID;
      CREATE INDEX IF NOT EXISTS objects_by_owner ON objects (owner_uid);
      CREATE INDEX IF NOT EXISTS objects_by_objset ON objects (objset_id);
      CREATE INDEX IF NOT EXISTS objects_by_name ON objects (resource, namespace, name);
      CREATE TABLE IF NOT EXISTS object_refs (
        audit_id TEXT PRIMARY KEY NOT NULL, resource TEXT NOT NULL, subresource TEXT NOT NULL, namespace TEXT NOT NULL,
        name TEXT NOT NULL, uid TEXT NOT NULL, objset_id TEXT NOT NULL, request_received TEXT NOT NULL) WITHOUT ROWID;
      CREATE INDEX IF NOT EXISTS object_refs_by_uid ON object_refs (uid);
      CREATE INDEX IF NOT EXISTS object_refs_by_name ON object_refs (resource, namespace, name);
      -- v3: the OTLP exporter's durable queue and what it has exported (each span id once).
      -- v4: an entry is due at not_before (ms); first_queued bounds how long updates may delay it.
      CREATE TABLE IF NOT EXISTS export_queue (
        kind TEXT NOT NULL, key TEXT NOT NULL, seq INTEGER NOT NULL,
        not_before INTEGER NOT NULL DEFAULT 0, first_queued INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (kind, key)) WITHOUT ROWID;
      CREATE INDEX IF NOT EXISTS export_queue_by_seq ON export_queue (seq);
      CREATE TABLE IF NOT EXISTS exported_spans (
        trace_id TEXT NOT NULL, span_id TEXT NOT NULL,
        PRIMARY KEY (trace_id, span_id)) WITHOUT ROWID;
      -- v4: the API operation of each audit request (from the OpenAPI spec, when one is configured).
      CREATE TABLE IF NOT EXISTS audit_operations (
        audit_id TEXT PRIMARY KEY NOT NULL, operation_id TEXT NOT NULL, stability TEXT NOT NULL) WITHOUT ROWID;
      -- v4: span links, by the span they name, so a caller's trace shows the requests that link to it.
      CREATE TABLE IF NOT EXISTS span_links (
        target_trace_id TEXT NOT NULL, target_span_id TEXT NOT NULL, trace_id TEXT NOT NULL, span_id TEXT NOT NULL,
        PRIMARY KEY (target_trace_id, target_span_id, trace_id, span_id)) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS exported_stages (
        audit_id TEXT NOT NULL, stage TEXT NOT NULL,
        PRIMARY KEY (audit_id, stage)) WITHOUT ROWID;
      -- v4: what receivers acknowledged and the correlator has not stored yet (see inbox.ts):
      -- a row goes once everything it holds is stored, in the same transaction.
      CREATE TABLE IF NOT EXISTS inbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, kind INTEGER NOT NULL, received_ms INTEGER NOT NULL, data BLOB NOT NULL);
      -- v4: running totals (payload_bytes: bytes of stored span and audit event data, for retention by size).
      CREATE TABLE IF NOT EXISTS store_stats (name TEXT PRIMARY KEY NOT NULL, value INTEGER NOT NULL) WITHOUT ROWID;
      -- v4: items that could not be stored (a bug, or data no decoder caught), set aside for inspection.
      CREATE TABLE IF NOT EXISTS quarantine (
        id INTEGER PRIMARY KEY AUTOINCREMENT, at_ms INTEGER NOT NULL, what TEXT NOT NULL, reason TEXT NOT NULL,
        summary TEXT NOT NULL, data BLOB);
      -- v5: object sets in time windows: an object's requests by time, and the store's settings
      -- (the window length the exporter uses, for readers of the store).
      CREATE INDEX IF NOT EXISTS object_refs_by_uid_time ON object_refs (uid, request_received);
      CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL) WITHOUT ROWID;
    `);
    const addColumns = (table: string, columns: string[]) => {
      const have = new Set((this.db.prepare(`PRAGMA table_info(${table})`).all() as Array<{ name: string }>).map((c) => c.name));
      for (const c of columns) if (!have.has(c.split(' ')[0]!)) this.db.exec(`ALTER TABLE ${table} ADD COLUMN ${c}`);
    };
    addColumns('objects', ["owner_kind TEXT NOT NULL DEFAULT ''", "owner_name TEXT NOT NULL DEFAULT ''", "owner_api_version TEXT NOT NULL DEFAULT ''"]);
    addColumns('export_queue', ['not_before INTEGER NOT NULL DEFAULT 0', 'first_queued INTEGER NOT NULL DEFAULT 0']);
    // v4: when an audit event was stored (ms), for retention by age (0: stored by an older build).
    addColumns('audit_events', ['stored_ms INTEGER NOT NULL DEFAULT 0']);
    this.db.exec('CREATE INDEX IF NOT EXISTS audit_events_by_stored ON audit_events (stored_ms)');
    if (version !== 0 && version < 4) {
      // Index the links of the spans an older store holds (only rows whose JSON has a link).
      const linked = this.db.prepare(`SELECT data FROM spans WHERE data LIKE '%"links":[{%'`).all() as Array<{ data: string }>;
      const insertLink = this.db.prepare('INSERT OR IGNORE INTO span_links (target_trace_id, target_span_id, trace_id, span_id) VALUES (?, ?, ?, ?)');
      this.db.transaction(() => {
        for (const r of linked) {
          const sp = JSON.parse(r.data) as Span;
          for (const l of sp.links ?? []) insertLink.run(l.traceId, l.spanId, sp.traceId, sp.spanId);
        }
      })();
      // Index the audit events an older store holds again: objects before v2 were not indexed,
      // before v4 without their owner's kind and name, and with the kind of metadata-only reads
      // (PartialObjectMetadata) where the object's own kind belongs.
      this.db.exec("UPDATE objects SET kind = '' WHERE kind IN ('PartialObjectMetadata', 'PartialObjectMetadataList', 'Table')");
      // (One read, then the writes: a statement cannot write while another iterates.)
      const rows = this.db.prepare('SELECT data FROM audit_events').all() as Array<{ data: string }>;
      this.prepareObjectStatements();
      this.db.transaction(() => {
        for (const r of rows) this.indexObjects(JSON.parse(r.data) as AuditEvent);
      })();
    }
    if (!this.db.prepare("SELECT 1 FROM store_stats WHERE name = 'payload_bytes'").get()) {
      const sum = (this.db.prepare('SELECT (SELECT coalesce(sum(length(data)), 0) FROM spans) + (SELECT coalesce(sum(length(data)), 0) FROM audit_events) AS n').get() as { n: number }).n;
      this.db.prepare("INSERT INTO store_stats (name, value) VALUES ('payload_bytes', ?)").run(sum);
    }
    this.db.pragma(`user_version = ${SCHEMA_VERSION}`);
  }

  /** The window length: given (and recorded by a writable store), else recorded, else 1 hour. */
  /** v6: a store's spans table of before (WITHOUT ROWID) is rebuilt as a rowid table, in one transaction. */
  private rowidSpans(): void {
    const old = this.db.prepare("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'spans'").get() as { sql: string } | undefined;
    if (!old || !/WITHOUT\s+ROWID/i.test(old.sql)) return;
    this.db.transaction(() => {
      this.db.exec(`
        ALTER TABLE spans RENAME TO spans_v5;
        CREATE TABLE spans (
          trace_id TEXT NOT NULL, span_id TEXT NOT NULL, parent_span_id TEXT NOT NULL,
          start_ns TEXT NOT NULL, data TEXT NOT NULL);
        INSERT INTO spans (trace_id, span_id, parent_span_id, start_ns, data)
          SELECT trace_id, span_id, parent_span_id, start_ns, data FROM spans_v5;
        DROP TABLE spans_v5;
        CREATE UNIQUE INDEX spans_by_id ON spans (trace_id, span_id);
      `);
    })();
  }

  private resolveWindow(opts: TraceStoreOptions): number {
    const hasSettings = this.db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'settings'").get() !== undefined;
    if (opts.objectSetWindowMs !== undefined) {
      if (!(opts.objectSetWindowMs >= 1000)) throw new Error(`object set window ${opts.objectSetWindowMs} ms: want at least 1 s`);
      if (!opts.readonly && hasSettings) this.db.prepare("INSERT INTO settings (key, value) VALUES ('objset_window_ms', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value").run(String(opts.objectSetWindowMs));
      return opts.objectSetWindowMs;
    }
    const row = hasSettings ? (this.db.prepare("SELECT value FROM settings WHERE key = 'objset_window_ms'").get() as { value: string } | undefined) : undefined;
    const ms = row ? Number(row.value) : NaN;
    return Number.isFinite(ms) && ms >= 1000 ? ms : DEFAULT_OBJSET_WINDOW_MS;
  }

  /** Length of an object set's time windows (one trace per set per window), ms. */
  get objectSetWindowMs(): number {
    return this.windowMs;
  }

  /** Stores one correlator output in one transaction. Idempotent: redelivered rows are ignored. */
  async write(output: CorrelatorOutput): Promise<void> {
    this.writeSync(output);
  }

  /**
   * Appends acknowledged input to the inbox, all rows in one transaction; returns their sequence
   * numbers (increasing). The caller answers its senders after this returned (see inbox.ts).
   */
  appendInbox(rows: ReadonlyArray<{ kind: InboxKind; data: Uint8Array }>, nowMs = this.now()): number[] {
    const q = this.inboxStatements();
    const seqs: number[] = [];
    this.db.transaction(() => {
      for (const r of rows) seqs.push(Number(q.insert.run(r.kind, nowMs, r.data).lastInsertRowid));
    })();
    return seqs;
  }

  /** Inbox rows from `fromSeq` on, in order (a restart replays them). */
  inboxRows(fromSeq: number, limit: number): Array<{ seq: number; kind: InboxKind; data: Buffer }> {
    return this.inboxStatements().from.all(fromSeq, limit) as Array<{ seq: number; kind: InboxKind; data: Buffer }>;
  }

  inboxStats(): { rows: number; bytes: number; firstSeq: number } {
    const r = this.inboxStatements().stats.get() as { rows: number; bytes: number | null; first: number | null };
    return { rows: r.rows, bytes: r.bytes ?? 0, firstSeq: r.first ?? 0 };
  }

  /**
   * Sets items aside that cannot be stored (the write path failed on them and not on the rest):
   * counted, kept for inspection (`summary` says what it was, `data` holds what was received).
   */
  quarantine(what: string, reason: string, summary: string, data?: Uint8Array): void {
    this.inboxStatements().quarantine.run(this.now(), what, reason.slice(0, 2000), summary.slice(0, 10_000), data ?? null);
    this.metrics.storeQuarantined.inc({ what });
  }

  quarantined(limit = 100): Array<{ id: number; at_ms: number; what: string; reason: string; summary: string }> {
    return this.db.prepare('SELECT id, at_ms, what, reason, summary FROM quarantine ORDER BY id DESC LIMIT ?').all(limit) as Array<{ id: number; at_ms: number; what: string; reason: string; summary: string }>;
  }

  private inboxStmts: ReturnType<TraceStore['prepareInboxStatements']> | undefined;

  private inboxStatements() {
    return (this.inboxStmts ??= this.prepareInboxStatements());
  }

  private prepareInboxStatements() {
    return {
      insert: this.db.prepare('INSERT INTO inbox (kind, received_ms, data) VALUES (?, ?, ?)'),
      from: this.db.prepare('SELECT seq, kind, data FROM inbox WHERE seq >= ? ORDER BY seq LIMIT ?'),
      deleteBefore: this.db.prepare('DELETE FROM inbox WHERE seq < ?'),
      stats: this.db.prepare('SELECT count(*) AS rows, sum(length(data)) AS bytes, min(seq) AS first FROM inbox'),
      rowsIn: this.db.prepare('SELECT data FROM inbox WHERE seq = ?'),
      quarantine: this.db.prepare('INSERT INTO quarantine (at_ms, what, reason, summary, data) VALUES (?, ?, ?, ?, ?)'),
    };
  }

  /**
   * Runs `fn` in one transaction: the writes it makes (writeSync, markExported, ...) are committed
   * together, or none of them when it throws. Their own transactions nest inside as savepoints.
   */
  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn)();
  }

  /** The received bytes of an inbox row (for quarantine), or undefined. */
  inboxData(seq: number): Buffer | undefined {
    return (this.inboxStatements().rowsIn.get(seq) as { data: Buffer } | undefined)?.data;
  }

  /**
   * Stores one correlator output in one transaction (all of it or none); with `inboxBefore`, the
   * inbox rows before that sequence number go in the same transaction: what they held is stored.
   */
  writeSync(output: CorrelatorOutput, opts: { inboxBefore?: number } = {}): void {
    const end = this.metrics.storeWriteSeconds.startTimer();
    const counts = { spanNew: 0, spanDup: 0, auditNew: 0, auditDup: 0, bytes: 0 };
    const now = new Date(this.now()).toISOString();
    const queue = this.opts.exportQueue ? this.exportStatements() : undefined;
    const nowMs = this.now();
    const debounce = this.opts.objectSetDebounce ?? { settleAfterMs: 0, maxDelayMs: 0 };
    let queued = 0;
    const enqueue = (kind: ExportQueueEntry['kind'], key: string) => {
      if (!queue || !key) return;
      // An object's entry waits until its set has been quiet (settle_after), at most max_delay.
      queued += kind === 'object'
        ? queue.enqueueDebounced.run({ kind, key, seq: ++this.exportSeq, notBefore: nowMs + debounce.settleAfterMs, now: nowMs, maxDelay: debounce.maxDelayMs }).changes
        : queue.enqueue.run(kind, key, ++this.exportSeq, 0, nowMs).changes;
    };
    const tx = this.db.transaction(() => {
      for (const t of output.traces) {
        const before = counts.spanNew + counts.auditNew;
        for (const s of t.spans) {
          const data = JSON.stringify(s);
          const r = this.stmt.insertSpan.run(s.traceId, s.spanId, s.parentSpanId, s.startTimeUnixNano, data);
          if (r.changes) {
            counts.spanNew++;
            counts.bytes += Buffer.byteLength(data);
            for (const l of s.links) this.stmt.insertLink.run(l.traceId, l.spanId, s.traceId, s.spanId);
          } else counts.spanDup++;
        }
        for (const id of t.auditIds) this.stmt.insertPair.run(id, t.traceId);
        for (const e of t.auditEvents) if (this.insertAudit(e, counts)) enqueue('object', this.objectEntryOf(e));
        this.stmt.touchTrace.run(t.traceId, now);
        if (counts.spanNew + counts.auditNew > before) enqueue('trace', t.traceId);
      }
      for (const [id, op] of output.apiOperations ?? []) this.stmt.insertOperation.run(id, op.operationId, op.stability);
      for (const e of output.unjoinedAuditEvents) {
        if (!this.insertAudit(e, counts)) continue;
        enqueue('unjoined', auditIDForSpans(e.auditID));
        enqueue('object', this.objectEntryOf(e));
      }
      if (opts.inboxBefore !== undefined) this.inboxStatements().deleteBefore.run(opts.inboxBefore);
      if (counts.bytes) this.stmt.addPayload.run(counts.bytes);
    });
    tx();
    if (queued) this.opts.onExportQueued?.();
    this.metrics.storeRows.inc({ table: 'spans', outcome: 'inserted' }, counts.spanNew);
    this.metrics.storeRows.inc({ table: 'spans', outcome: 'duplicate' }, counts.spanDup);
    this.metrics.storeRows.inc({ table: 'audit_events', outcome: 'inserted' }, counts.auditNew);
    this.metrics.storeRows.inc({ table: 'audit_events', outcome: 'duplicate' }, counts.auditDup);
    end();
  }

  /** The `object` queue entry of an audit event: the object it is about, in its request's window ('' when it names none). */
  private objectEntryOf(e: AuditEvent): string {
    // A request that names no uid (a get before the object existed, a subresource) is on the object
    // its resource, namespace and name name, as the tree has it (refsOf).
    const ref = e.objectRef;
    const uid = objectUidOfRef(this.index, { uid: objectUidOf(e), resource: ref?.resource ?? '', namespace: ref?.namespace ?? '', name: ref?.name ?? '' });
    if (!uid) return '';
    const ns = parseAuditTimestamp(e.requestReceivedTimestamp || e.stageTimestamp);
    return ns === undefined ? uid : objectEntryKey.of(uid, objectSetWindowStart(Number(ns / 1_000_000n), this.windowMs));
  }

  /**
   * Objects known from elsewhere than audit events: the object spans of object-set traces read back
   * from Jaeger (jaeger-source.ts), whose owners may have no request in the window read. Audit
   * events written after them fill in what they carry (upsert, as for audit events).
   */
  putObjects(rows: readonly ObjectRow[]): void {
    this.db.transaction(() => {
      for (const o of rows) {
        this.obj.upsertObject.run({
          uid: o.uid, kind: o.kind, apiVersion: o.api_version, resource: o.resource, namespace: o.namespace, name: o.name,
          ownerUid: o.owner_uid, objsetId: o.objset_id, firstSeen: o.first_seen, deleted: o.deleted,
          ownerKind: o.owner_kind, ownerName: o.owner_name, ownerApiVersion: o.owner_api_version,
        });
      }
    })();
  }

  /**
   * An object as this store knows it (every audit event and object fact merged), for the shared
   * objects table of Kafka mode (objset-partition.ts): `objset_id` is the object's annotation, else
   * an object-set id from the audit annotations of a request that touched it (what objectSetOf reads
   * at this object). Undefined for an object no audit event or fact showed.
   */
  objectFact(uid: string): ObjectRow | undefined {
    const o = this.index.object(uid);
    if (!o || o.objset_id) return o;
    const own = this.objectSets.ownSetOf(o);
    return own ? { ...o, objset_id: own } : o;
  }

  /**
   * Queues an `object` export entry (debounced like a write's) for an object in a window, or in its
   * set's newest window: a Kafka-mode set owner re-plans a set whose data it had before it owned it.
   */
  queueObjectExport(uid: string, windowStartMs?: number): void {
    if (!this.opts.exportQueue) return;
    const debounce = this.opts.objectSetDebounce ?? { settleAfterMs: 0, maxDelayMs: 0 };
    const nowMs = this.now();
    const key = windowStartMs === undefined ? uid : objectEntryKey.of(uid, windowStartMs);
    const n = this.exportStatements().enqueueDebounced.run({ kind: 'object', key, seq: ++this.exportSeq, notBefore: nowMs + debounce.settleAfterMs, now: nowMs, maxDelay: debounce.maxDelayMs }).changes;
    if (n) this.opts.onExportQueued?.();
  }

  /** True when the event was new. */
  private insertAudit(e: AuditEvent, counts: { auditNew: number; auditDup: number; bytes: number }): boolean {
    // Keyed by the form spans carry (first 64 bytes), so a long client-chosen Audit-ID still joins.
    const data = JSON.stringify(e);
    const r = this.stmt.insertAudit.run(auditIDForSpans(e.auditID), e.stage, data, this.now());
    if (r.changes) {
      counts.auditNew++;
      counts.bytes += Buffer.byteLength(data);
      this.indexObjects(e);
      return true;
    }
    counts.auditDup++;
    // The stored copy stays (it may have been exported); a copy that differs is counted (outcome conflict).
    const stored = this.stmt.auditStage.get(auditIDForSpans(e.auditID), e.stage) as { data: string } | undefined;
    if (stored && stored.data !== data && auditEventsConflict(JSON.parse(stored.data), e)) {
      this.metrics.storeRows.inc({ table: 'audit_events', outcome: 'conflict' });
    }
    return false;
  }

  private exportStmts: ReturnType<TraceStore['prepareExportStatements']> | undefined;
  private exportSeq = 0;

  private exportStatements() {
    if (!this.exportStmts) {
      this.exportStmts = this.prepareExportStatements();
      this.exportSeq = (this.db.prepare('SELECT coalesce(max(seq), 0) AS m FROM export_queue').get() as { m: number }).m;
    }
    return this.exportStmts;
  }

  private prepareExportStatements() {
    return {
      enqueue: this.db.prepare('INSERT OR IGNORE INTO export_queue (kind, key, seq, not_before, first_queued) VALUES (?, ?, ?, ?, ?)'),
      enqueueDebounced: this.db.prepare(`INSERT INTO export_queue (kind, key, seq, not_before, first_queued) VALUES (@kind, @key, @seq, @notBefore, @now)
        ON CONFLICT(kind, key) DO UPDATE SET not_before = max(not_before, min(first_queued + @maxDelay, excluded.not_before))`),
      next: this.db.prepare('SELECT kind, key FROM export_queue WHERE not_before <= ? ORDER BY seq LIMIT ?'),
      nextDue: this.db.prepare('SELECT min(not_before) AS t FROM export_queue'),
      all: this.db.prepare('SELECT kind, key FROM export_queue ORDER BY seq'),
      remove: this.db.prepare('DELETE FROM export_queue WHERE kind = ? AND key = ?'),
      size: this.db.prepare('SELECT count(*) AS n FROM export_queue'),
      trim: this.db.prepare('DELETE FROM export_queue WHERE seq IN (SELECT seq FROM export_queue ORDER BY seq LIMIT ?)'),
      isExported: this.db.prepare('SELECT 1 FROM exported_spans WHERE trace_id = ? AND span_id = ?'),
      markSpan: this.db.prepare('INSERT OR IGNORE INTO exported_spans (trace_id, span_id) VALUES (?, ?)'),
      stagesOf: this.db.prepare('SELECT stage FROM exported_stages WHERE audit_id = ?'),
      markStage: this.db.prepare('INSERT OR IGNORE INTO exported_stages (audit_id, stage) VALUES (?, ?)'),
      refOf: this.db.prepare('SELECT * FROM object_refs WHERE audit_id = ?'),
      releasesFrom: this.db.prepare("SELECT key FROM export_queue WHERE kind = 'release' AND key >= ? AND key < ?"),
    };
  }

  /** The oldest export queue entries that are due (they stay queued until removeExports). */
  nextExports(limit: number): ExportQueueEntry[] {
    return this.exportStatements().next.all(this.now(), limit) as ExportQueueEntry[];
  }

  /** Every queued entry, due or not, oldest first (tests, diagnostics). */
  allExports(): ExportQueueEntry[] {
    return this.exportStatements().all.all() as ExportQueueEntry[];
  }

  /** Milliseconds until the next queued entry is due (0: one is due now); undefined when the queue is empty. */
  msUntilNextExport(): number | undefined {
    const t = (this.exportStatements().nextDue.get() as { t: number | null }).t;
    return t === null ? undefined : Math.max(0, t - this.now());
  }

  /**
   * Queues the release of held spans at `atMs` (`key` from export-plan.ts's releaseKey). An earlier
   * release already queued for the same key stays.
   */
  scheduleRelease(key: string, atMs: number): void {
    this.exportStatements().enqueue.run('release', key, ++this.exportSeq, atMs, this.now());
  }

  /** Drops a queued release of what holds nothing any more. */
  cancelRelease(key: string): void {
    this.exportStatements().remove.run('release', key);
  }

  exportQueueSize(): number {
    return (this.exportStatements().size.get() as { n: number }).n;
  }

  /** Drops the oldest entries beyond `max`; returns how many were dropped. */
  trimExportQueue(max: number): number {
    const over = this.exportQueueSize() - max;
    return over > 0 ? this.exportStatements().trim.run(over).changes : 0;
  }

  /** Records spans (and audit stages) as exported and removes queue entries, in one transaction. */
  markExported(spans: ReadonlyArray<{ traceId: string; spanId: string }>, stages: ReadonlyArray<{ auditId: string; stage: string }>, done: readonly ExportQueueEntry[] = []): void {
    const q = this.exportStatements();
    this.db.transaction(() => {
      for (const s of spans) q.markSpan.run(s.traceId, s.spanId);
      for (const s of stages) q.markStage.run(s.auditId, s.stage);
      for (const e of done) q.remove.run(e.kind, e.key);
    })();
  }

  removeExports(done: readonly ExportQueueEntry[]): void {
    this.markExported([], [], done);
  }

  isExported(traceId: string, spanId: string): boolean {
    return this.exportStatements().isExported.get(traceId, spanId) !== undefined;
  }

  exportedStages(auditId: string): Set<string> {
    return new Set((this.exportStatements().stagesOf.all(auditIDForSpans(auditId)) as Array<{ stage: string }>).map((r) => r.stage));
  }

  /** The object set of what an audit request touched, or undefined when it names no object uid. */
  objectSetOfAudit(auditId: string): string | undefined {
    const uid = (this.exportStatements().refOf.get(auditIDForSpans(auditId)) as { uid: string } | undefined)?.uid;
    return uid ? this.objectSetOf(uid) : undefined;
  }

  /**
   * The object set of what an audit request touched and the trace in Jaeger that holds (or will
   * hold) the request's span: its window's trace, or the further part of that window its span went
   * to, or, not sent yet, the window's newest part (where new requests go).
   */
  objectSetTraceOfAudit(auditId: string): { setId: string; traceId: string } | undefined {
    const ref = this.exportStatements().refOf.get(auditIDForSpans(auditId)) as RefRow | undefined;
    const uid = ref ? objectUidOfRef(this.index, ref) : undefined;
    if (!ref || !uid) return undefined;
    const setId = this.objectSetOf(uid);
    const ms = refMs(ref);
    if (ms === undefined) return undefined;
    const parts = this.objectSetParts(setId, objectSetWindowStart(ms, this.windowMs));
    const spanId = objectRequestSpanId(setId, uid, ref.audit_id);
    const sent = parts.find((p) => this.isExported(p.traceId, spanId));
    return { setId, traceId: (sent ?? parts[parts.length - 1]!).traceId };
  }

  /** Keys of the queued `release` entries that start with `prefix` (an object set's windows: `objset/<id>/`). */
  queuedReleases(prefix: string): string[] {
    return (this.exportStatements().releasesFrom.all(prefix, `${prefix}\uffff`) as Array<{ key: string }>).map((r) => r.key);
  }

  /** A trace's stored spans and the audit events of the auditIDs paired with it. */
  traceData(traceId: string): { spans: Span[]; auditEvents: AuditEvent[] } {
    const spans = (this.stmt.spansOf.all(traceId) as Array<{ data: string }>).map((r) => JSON.parse(r.data) as Span);
    const auditIds = (this.stmt.auditIdsOf.all(traceId) as Array<{ audit_id: string }>).map((r) => r.audit_id);
    return { spans, auditEvents: auditIds.flatMap((id) => this.auditEvents(id)) };
  }

  /** Trace ids paired with an auditID. */
  tracesOfAudit(auditId: string): string[] {
    return (this.stmt.tracesOfAudit.all(auditIDForSpans(auditId)) as Array<{ trace_id: string }>).map((r) => r.trace_id);
  }

  private objectStatements() {
    return {
      upsertObject: this.db.prepare(`INSERT INTO objects (uid, kind, api_version, resource, namespace, name, owner_uid, objset_id, first_seen, deleted, owner_kind, owner_name, owner_api_version)
        VALUES (@uid, @kind, @apiVersion, @resource, @namespace, @name, @ownerUid, @objsetId, @firstSeen, @deleted, @ownerKind, @ownerName, @ownerApiVersion)
        ON CONFLICT(uid) DO UPDATE SET
          kind = CASE WHEN excluded.kind != '' THEN excluded.kind ELSE kind END,
          api_version = CASE WHEN excluded.api_version != '' THEN excluded.api_version ELSE api_version END,
          resource = CASE WHEN excluded.resource != '' THEN excluded.resource ELSE resource END,
          owner_kind = CASE WHEN excluded.owner_uid != '' THEN excluded.owner_kind ELSE owner_kind END,
          owner_name = CASE WHEN excluded.owner_uid != '' THEN excluded.owner_name ELSE owner_name END,
          owner_api_version = CASE WHEN excluded.owner_uid != '' THEN excluded.owner_api_version ELSE owner_api_version END,
          owner_uid = CASE WHEN excluded.owner_uid != '' THEN excluded.owner_uid ELSE owner_uid END,
          objset_id = CASE WHEN excluded.objset_id != '' THEN excluded.objset_id ELSE objset_id END,
          first_seen = min(first_seen, excluded.first_seen),
          deleted = max(deleted, excluded.deleted)`),
      upsertRef: this.db.prepare(`INSERT INTO object_refs (audit_id, resource, subresource, namespace, name, uid, objset_id, request_received)
        VALUES (@auditId, @resource, @subresource, @namespace, @name, @uid, @objsetId, @requestReceived)
        ON CONFLICT(audit_id) DO UPDATE SET
          name = CASE WHEN excluded.name != '' THEN excluded.name ELSE name END,
          uid = CASE WHEN excluded.uid != '' THEN excluded.uid ELSE uid END,
          objset_id = CASE WHEN excluded.objset_id != '' THEN excluded.objset_id ELSE objset_id END`),
      markDeleted: this.db.prepare('UPDATE objects SET deleted = 1 WHERE uid = ?'),
      object: this.db.prepare('SELECT * FROM objects WHERE uid = ?'),
      children: this.db.prepare('SELECT * FROM objects WHERE owner_uid = ?'),
      withObjset: this.db.prepare('SELECT * FROM objects WHERE objset_id = ?'),
      anyWithObjset: this.db.prepare('SELECT 1 FROM objects WHERE objset_id = ? LIMIT 1'),
      anyRefWithObjset: this.db.prepare('SELECT 1 FROM object_refs WHERE objset_id = ? LIMIT 1'),
      refsWithObjset: this.db.prepare('SELECT * FROM object_refs WHERE objset_id = ?'),
      refsOf: this.db.prepare(`SELECT * FROM object_refs WHERE uid = @uid
        OR (uid = '' AND resource = @resource AND namespace = @namespace AND name = @name) ORDER BY request_received, audit_id`),
      refsOfBetween: this.db.prepare(`SELECT * FROM object_refs WHERE (uid = @uid
        OR (uid = '' AND resource = @resource AND namespace = @namespace AND name = @name)) AND request_received >= @from AND request_received < @to
        ORDER BY request_received, audit_id`),
      refsBefore: this.db.prepare(`SELECT * FROM object_refs WHERE (uid = @uid
        OR (uid = '' AND resource = @resource AND namespace = @namespace AND name = @name)) AND request_received < @to
        ORDER BY request_received DESC, audit_id`),
      refsFrom: this.db.prepare(`SELECT * FROM object_refs WHERE (uid = @uid
        OR (uid = '' AND resource = @resource AND namespace = @namespace AND name = @name)) AND request_received >= @from
        ORDER BY request_received, audit_id`),
      exportedCount: this.db.prepare('SELECT count(*) AS n FROM exported_spans WHERE trace_id = ?'),
      objsetOfRefs: this.db.prepare(`SELECT objset_id FROM object_refs WHERE objset_id != '' AND (uid = @uid
        OR (uid = '' AND resource = @resource AND namespace = @namespace AND name = @name)) LIMIT 1`),
      byName: this.db.prepare('SELECT * FROM objects WHERE namespace = ? AND name = ? ORDER BY first_seen DESC'),
      byRefName: this.db.prepare("SELECT * FROM objects WHERE resource = ? AND namespace = ? AND name = ? ORDER BY first_seen DESC LIMIT 1"),
    };
  }

  private prepareObjectStatements(): void {
    this.obj ??= this.objectStatements();
    this.index ??= this.sqlObjectIndex();
  }

  /** Records the object an audit event carries and what its request touched. */
  private indexObjects(e: AuditEvent): void {
    const { object, ref } = objectsOfAudit(e);
    if (object) this.obj.upsertObject.run({ ...object, deleted: object.deleted ? 1 : 0 });
    this.obj.upsertRef.run(ref);
    const code = e.responseStatus?.code ?? 0;
    if (e.verb === 'delete' && code >= 200 && code < 300 && !ref.subresource) {
      const uid = objectUidOfRef(this.index, ref);
      if (uid) this.obj.markDeleted.run(uid);
    }
  }

  /**
   * The object tables as the correlator's object-set resolution reads them (ObjectIndex): each
   * lookup one prepared, indexed query. Requests in a time range are compared as text (RFC 3339 UTC,
   * as kube-apiserver writes them), widened by a day either side; the resolution filters exactly.
   */
  private sqlObjectIndex(): ObjectIndex {
    const obj = this.obj;
    return {
      object: (uid) => obj.object.get(uid) as ObjectRow | undefined,
      children: (ownerUid) => obj.children.all(ownerUid) as ObjectRow[],
      withObjset: (setId) => obj.withObjset.all(setId) as ObjectRow[],
      refsWithObjset: (setId) => obj.refsWithObjset.all(setId) as RefRow[],
      namesObjset: (setId) => obj.anyWithObjset.get(setId) !== undefined || obj.anyRefWithObjset.get(setId) !== undefined,
      auditObjsetOf: (o) => (obj.objsetOfRefs.get(o) as { objset_id: string } | undefined)?.objset_id,
      byRefName: (resource, namespace, name) => obj.byRefName.get(resource, namespace, name) as ObjectRow | undefined,
      refsOf: (o, range) =>
        (range
          ? obj.refsOfBetween.all({ ...o, from: new Date(range.fromMs - DAY_MS).toISOString(), to: new Date(range.toMs + DAY_MS).toISOString() })
          : obj.refsOf.all(o)) as RefRow[],
      refsNewestFirst: (o, beforeMs) => obj.refsBefore.iterate({ ...o, to: new Date(beforeMs + DAY_MS).toISOString() }) as IterableIterator<RefRow>,
      refsOldestFirst: (o, fromMs) => obj.refsFrom.iterate({ ...o, from: new Date(fromMs - DAY_MS).toISOString() }) as IterableIterator<RefRow>,
    };
  }

  /** What an object-set tree shows beyond the object tables: audit events, request traces, each window's traces. */
  private readonly treeData: ObjectSetTreeData = {
    auditEvents: (id) => this.auditEvents(id),
    tracesOf: (id) =>
      (this.stmt.tracesOfAudit.all(id) as Array<{ trace_id: string }>).map((r) => ({
        traceId: r.trace_id,
        spans: (this.stmt.spansOf.all(r.trace_id) as Array<{ data: string }>).map((x) => JSON.parse(x.data) as Span),
      })),
    windowTraceIds: (setId, windowStartMs) => this.objectSetParts(setId, windowStartMs).map((p) => p.traceId),
  };

  /** The object set an object belongs to (the rules: @kube-correlate/correlator, object-sets.ts; resolved by ObjectSets). */
  objectSetOf(uid: string): string {
    return this.objectSets.setOf(uid);
  }

  /** Whether a set's id can no longer change (ObjectSets.isFinal). */
  objectSetIsFinal(setId: string): boolean {
    return this.objectSets.isFinal(setId);
  }

  /** The set id of a set id, or of the uid of any object of a set; undefined when no stored object belongs to it. */
  resolveObjectSet(id: string): string | undefined {
    return this.objectSets.resolve(id);
  }

  /**
   * The tree of one window of a set (the requests received in it, the objects they touched and
   * their owners up to the root): what goes to that window's trace. Undefined when no stored object
   * belongs to the set.
   */
  objectSetWindowTree(setId: string, windowStartMs: number): ObjectSetTree | undefined {
    return this.objectSets.windowTree(setId, windowStartMs, this.treeData);
  }

  /**
   * The traces of one window of a set: its own (objectSetTraceId), then each further part the
   * exporter opened when the window outgrew object_sets.max_spans_per_trace (known from the span
   * ids it recorded as sent), with how many spans went to each.
   */
  objectSetParts(setId: string, windowStartMs: number): Array<{ part: number; traceId: string; spans: number }> {
    const out: Array<{ part: number; traceId: string; spans: number }> = [];
    for (let part = 0; ; part++) {
      const traceId = objectSetTraceId(setId, windowStartMs, part);
      const spans = (this.obj.exportedCount.get(traceId) as { n: number }).n;
      if (part > 0 && spans === 0) return out;
      out.push({ part, traceId, spans });
    }
  }

  /** The chain of a set's traces: each window with requests, oldest first. */
  objectSetChain(setId: string): ObjectSetChainEntry[] {
    return this.objectSets.chain(setId, (start) => this.treeData.windowTraceIds(setId, start));
  }

  /** When the last request of a set received before `beforeMs` was received (ms), or undefined (ObjectSets.lastRequestBefore). */
  lastObjectSetRequestBefore(setId: string, beforeMs: number): number | undefined {
    return this.objectSets.lastRequestBefore(setId, beforeMs);
  }

  /** When the first request of a set received at or after `fromMs` was received (ms), or undefined. */
  firstObjectSetRequestFrom(setId: string, fromMs: number): number | undefined {
    return this.objectSets.firstRequestFrom(setId, fromMs);
  }

  /**
   * The object-set tree of a set id, or of an object uid; undefined when no stored object belongs
   * to it. By default its newest window with requests, or the window holding `window` (ms), or
   * every window (`'all'`); with the set's chain of windows (ObjectSets.get).
   */
  getObjectSet(id: string, opts: { window?: number | 'all' } = {}): ObjectSetTree | undefined {
    return this.objectSets.get(id, this.treeData, opts);
  }

  /** Objects by kind (Deployment, deployment, deployments) or resource, namespace and name; newest first. */
  findObjects(kind: string, namespace: string, name: string): ObjectRow[] {
    const k = kind.toLowerCase();
    return (this.obj.byName.all(namespace, name) as ObjectRow[]).filter((o) => [o.kind.toLowerCase(), o.resource.toLowerCase(), o.resource.toLowerCase().replace(/s$/, '')].includes(k));
  }

  /** The object-set tree of the newest object with this kind, namespace and name (windows as getObjectSet). */
  getObjectSetOf(kind: string, namespace: string, name: string, opts: { window?: number | 'all' } = {}): ObjectSetTree | undefined {
    const o = this.findObjects(kind, namespace, name)[0];
    return o ? this.getObjectSet(this.objectSetOf(o.uid), opts) : undefined;
  }

  /** The request tree of a trace, or undefined when no span of it is stored. */
  getTrace(traceId: string): RequestTree | undefined {
    if (!this.stmt.hasTrace.get(traceId)) return undefined;
    const { spans, auditEvents: events } = this.traceData(traceId);
    if (spans.length === 0) return undefined;
    return buildRequestTree(traceId, spans, events, {
      resolveLink: (t, s) => {
        const row = this.stmt.span.get(t, s) as { data: string } | undefined;
        return row ? (JSON.parse(row.data) as Span) : undefined;
      },
      linkedFrom: (t, s) => (this.stmt.linkedFrom.all(t, s) as Array<{ data: string }>).map((r) => JSON.parse(r.data) as Span),
      apiOperation: (id) => this.apiOperation(id),
    });
  }

  /**
   * The tree of the request with this auditID: its trace's tree when spans were seen, otherwise
   * (an unsampled request, or spans still to come) a one-node tree of the audit alone.
   */
  getByAuditId(fullOrTruncated: string): RequestTree | undefined {
    const auditID = auditIDForSpans(fullOrTruncated);
    const traces = (this.stmt.tracesOfAudit.all(auditID) as Array<{ trace_id: string }>).map((r) => r.trace_id);
    for (const t of traces) {
      const tree = this.getTrace(t);
      if (tree) return tree;
    }
    const events = this.auditEvents(auditID);
    if (events.length === 0) return undefined;
    const a = summarizeAudit(events);
    const start = parseAuditTimestamp(a.requestReceivedTimestamp) ?? 0n;
    const last = Object.values(a.stages).reduce((m, ts) => {
      const t = ts ? parseAuditTimestamp(ts) : undefined;
      return t !== undefined && t > m ? t : m;
    }, start);
    const root: TreeNode = {
      spanId: '',
      parentSpanId: '',
      name: `${a.verb} ${a.requestURI}`,
      service: 'kube-apiserver (audit only, no spans)',
      kind: 'UNSPECIFIED',
      startTimeUnixNano: start.toString(),
      durationNanos: Number(last - start),
      status: { code: 'UNSET' },
      attributes: {},
      audit: toTreeAudit(a),
      synthetic: true,
      children: [],
    };
    return { traceId: '', root, spanCount: 0, auditIds: [auditID] };
  }

  /** The API operation of an audit request, when the correlator named it (an OpenAPI spec is configured). */
  apiOperation(auditID: string): ApiOperation | undefined {
    const r = this.stmt.operationOf.get(auditIDForSpans(auditID)) as { operation_id: string; stability: string } | undefined;
    return r ? { operationId: r.operation_id, stability: r.stability } : undefined;
  }

  /** The API operations of the audit requests of a trace, by auditID. */
  apiOperationsOf(auditIds: Iterable<string>): Map<string, ApiOperation> {
    const out = new Map<string, ApiOperation>();
    for (const id of auditIds) {
      const op = this.apiOperation(id);
      if (op) out.set(auditIDForSpans(id), op);
    }
    return out;
  }

  auditEvents(auditID: string): AuditEvent[] {
    return (this.stmt.auditOf.all(auditIDForSpans(auditID)) as Array<{ data: string }>).map((r) => JSON.parse(r.data) as AuditEvent);
  }

  /**
   * Every stored audit event, each stage of a request as its own row, ordered by audit ID (the
   * stages of one request come together). Read lazily: stores hold millions of events.
   */
  *allAuditEvents(): Generator<AuditEvent> {
    const rows = this.db.prepare('SELECT data FROM audit_events ORDER BY audit_id, stage').iterate() as IterableIterator<{ data: string }>;
    for (const r of rows) yield JSON.parse(r.data) as AuditEvent;
  }

  /** Most recently updated traces first. */
  recentTraces(limit = 20): TraceSummary[] {
    const rows = this.stmt.recent.all(limit) as Array<{ trace_id: string; updated_at: string }>;
    const out: TraceSummary[] = [];
    for (const r of rows) {
      const tree = this.getTrace(r.trace_id);
      // kube-apiserver's lone authentication span names no request (the correlator drops them; a
      // store written before it did may hold some).
      if (!tree || (tree.spanCount === 1 && tree.root.name === AUTHENTICATION_SPAN && Object.keys(tree.root.attributes).length === 0)) continue;
      out.push({
        traceId: r.trace_id,
        rootName: tree.root.name,
        service: tree.root.service,
        startTimeUnixNano: tree.root.startTimeUnixNano,
        spanCount: tree.spanCount,
        auditIds: tree.auditIds,
        updatedAt: r.updated_at,
      });
    }
    return out;
  }

  counts(): { traces: number; spans: number; auditEvents: number } {
    return this.stmt.counts.get() as { traces: number; spans: number; auditEvents: number };
  }

  /** Caps the database at about `bytes` (rounded down to whole pages; never below what it holds). */
  setMaxSize(bytes: number): void {
    const pageSize = this.db.pragma('page_size', { simple: true }) as number;
    this.db.pragma(`max_page_count = ${Math.max(1, Math.floor(bytes / pageSize))}`);
  }

  /** Bytes of stored span and audit event data (a running total). */
  payloadBytes(): number {
    return (this.stmt.payload.get() as { value: number } | undefined)?.value ?? 0;
  }

  /** Bytes the database uses (its pages less the free ones) and its file's pages in all. */
  size(): { usedBytes: number; fileBytes: number } {
    const pageSize = this.db.pragma('page_size', { simple: true }) as number;
    const pages = this.db.pragma('page_count', { simple: true }) as number;
    const free = this.db.pragma('freelist_count', { simple: true }) as number;
    return { usedBytes: (pages - free) * pageSize, fileBytes: pages * pageSize };
  }

  /**
   * Deletes old data, oldest first, in bounded transactions: traces last updated before `maxAgeMs`
   * ago and audit requests stored before then (with what was derived from them: pairs, object
   * references, API operations, export marks, links), objects no request refers to any more; then,
   * while the database uses more than `targetBytes`, the oldest traces and audit requests whatever
   * their age. Returns what it deleted. The inbox (acknowledged, not yet stored) and the export queue
   * of what remains are never touched.
   */
  applyRetention(opts: { maxAgeMs?: number; targetBytes?: number; chunk?: number }): { traces: number; auditRequests: number; objects: number; byAge: boolean; bySize: boolean; freedBytes: number } {
    const chunk = opts.chunk ?? 2000;
    const r = this.retentionStatements();
    let traces = 0;
    let auditRequests = 0;
    let byAge = false;
    let bySize = false;
    const done = { bytes: 0 };
    const deleteTraces = (ids: string[]) => {
      this.db.transaction(() => {
        let freed = 0;
        const audit = { bytes: 0 };
        for (const id of ids) {
          for (const row of r.auditIdsOfTrace.all(id) as Array<{ audit_id: string }>) auditRequests += this.deleteAuditRequest(row.audit_id, r, audit);
          for (const x of r.spansOfTrace.all(id) as Array<{ n: number }>) freed += x.n;
          r.linksOfTrace.run(id);
          r.exportedOfTrace.run(id);
          r.pairsOfTrace.run(id);
          r.queueOfTrace.run(id);
          r.trace.run(id);
        }
        this.stmt.addPayload.run(-(freed + audit.bytes));
        done.bytes += freed + audit.bytes;
      })();
      traces += ids.length;
    };
    const deleteAudits = (ids: string[]) => {
      this.db.transaction(() => {
        const audit = { bytes: 0 };
        for (const id of ids) auditRequests += this.deleteAuditRequest(id, r, audit);
        this.stmt.addPayload.run(-audit.bytes);
        done.bytes += audit.bytes;
      })();
    };
    if (opts.maxAgeMs !== undefined && opts.maxAgeMs > 0) {
      const cutoffMs = this.now() - opts.maxAgeMs;
      const cutoffIso = new Date(cutoffMs).toISOString();
      for (;;) {
        const ids = (r.tracesBefore.all(cutoffIso, chunk) as Array<{ trace_id: string }>).map((x) => x.trace_id);
        if (ids.length === 0) break;
        deleteTraces(ids);
        byAge = true;
      }
      for (;;) {
        const ids = (r.auditsBefore.all(cutoffMs, chunk) as Array<{ audit_id: string }>).map((x) => x.audit_id);
        if (ids.length === 0) break;
        deleteAudits(ids);
        byAge = true;
      }
    }
    if (opts.targetBytes !== undefined && this.size().usedBytes > opts.targetBytes) {
      // Deleting rows frees whole pages only when they empty (rows of old traces are spread over
      // the b-trees), so the database's pages do not shrink as rows go. What is measured is the
      // data itself: its share of the pages now says how much data fits the target.
      const payload = this.payloadBytes();
      const ratio = payload > 0 ? Math.max(1, this.size().usedBytes / payload) : 1;
      const targetPayload = opts.targetBytes / ratio;
      while (this.payloadBytes() > targetPayload) {
        const step = Math.max(1, Math.min(chunk, 50));
        const oldestTrace = r.oldestTraces.all(step) as Array<{ trace_id: string }>;
        const oldestAudit = r.oldestAudits.all(step) as Array<{ audit_id: string }>;
        if (oldestTrace.length === 0 && oldestAudit.length === 0) break;
        if (oldestTrace.length) deleteTraces(oldestTrace.map((x) => x.trace_id));
        if (oldestAudit.length) deleteAudits(oldestAudit.map((x) => x.audit_id));
        bySize = true;
      }
    }
    let objects = 0;
    // Owners go once their children went: a pass per level of ownership.
    for (let n = -1; (byAge || bySize) && n !== 0;) {
      n = r.orphanObjects.run().changes;
      objects += n;
    }
    if (traces) this.metrics.storeRetained.inc({ what: 'traces' }, traces);
    if (auditRequests) this.metrics.storeRetained.inc({ what: 'audit_requests' }, auditRequests);
    if (objects) this.metrics.storeRetained.inc({ what: 'objects' }, objects);
    return { traces, auditRequests, objects, byAge, bySize, freedBytes: done.bytes };
  }

  private retentionStmts: ReturnType<TraceStore['prepareRetentionStatements']> | undefined;

  private retentionStatements() {
    return (this.retentionStmts ??= this.prepareRetentionStatements());
  }

  private prepareRetentionStatements() {
    return {
      tracesBefore: this.db.prepare('SELECT trace_id FROM traces WHERE updated_at < ? ORDER BY updated_at LIMIT ?'),
      oldestTraces: this.db.prepare('SELECT trace_id FROM traces ORDER BY updated_at LIMIT ?'),
      auditsBefore: this.db.prepare('SELECT DISTINCT audit_id FROM audit_events WHERE stored_ms < ? ORDER BY stored_ms LIMIT ?'),
      oldestAudits: this.db.prepare('SELECT DISTINCT audit_id FROM audit_events ORDER BY stored_ms LIMIT ?'),
      auditIdsOfTrace: this.db.prepare('SELECT audit_id FROM audit_traces WHERE trace_id = ?'),
      spansOfTrace: this.db.prepare('DELETE FROM spans WHERE trace_id = ? RETURNING length(data) AS n'),
      linksOfTrace: this.db.prepare('DELETE FROM span_links WHERE trace_id = ?'),
      exportedOfTrace: this.db.prepare('DELETE FROM exported_spans WHERE trace_id = ?'),
      pairsOfTrace: this.db.prepare('DELETE FROM audit_traces WHERE trace_id = ?'),
      queueOfTrace: this.db.prepare("DELETE FROM export_queue WHERE kind = 'trace' AND key = ?"),
      trace: this.db.prepare('DELETE FROM traces WHERE trace_id = ?'),
      auditEvents: this.db.prepare('DELETE FROM audit_events WHERE audit_id = ? RETURNING length(data) AS n'),
      auditPairs: this.db.prepare('DELETE FROM audit_traces WHERE audit_id = ?'),
      auditRef: this.db.prepare('DELETE FROM object_refs WHERE audit_id = ?'),
      auditOperation: this.db.prepare('DELETE FROM audit_operations WHERE audit_id = ?'),
      auditStages: this.db.prepare('DELETE FROM exported_stages WHERE audit_id = ?'),
      auditQueue: this.db.prepare("DELETE FROM export_queue WHERE kind = 'unjoined' AND key = ?"),
      orphanObjects: this.db.prepare(`DELETE FROM objects WHERE NOT EXISTS (SELECT 1 FROM object_refs r WHERE r.uid = objects.uid)
        AND NOT EXISTS (SELECT 1 FROM object_refs r WHERE r.uid = '' AND r.resource = objects.resource AND r.namespace = objects.namespace AND r.name = objects.name)
        AND NOT EXISTS (SELECT 1 FROM objects c WHERE c.owner_uid = objects.uid)`),
    };
  }

  /** 1 when the audit request had events, else 0; the bytes freed go to `freed`. */
  private deleteAuditRequest(id: string, r: ReturnType<TraceStore['prepareRetentionStatements']>, freed: { bytes: number }): number {
    const rows = r.auditEvents.all(id) as Array<{ n: number }>;
    for (const x of rows) freed.bytes += x.n;
    const n = rows.length;
    r.auditPairs.run(id);
    r.auditRef.run(id);
    r.auditOperation.run(id);
    r.auditStages.run(id);
    r.auditQueue.run(id);
    return n ? 1 : 0;
  }

  /** The background checkpointer (checkpointInBackground), for tests. */
  get walCheckpointer(): WalCheckpointer | undefined {
    return this.checkpointer;
  }

  /**
   * Closes the store now. With a background checkpointer its thread closes its own connection a
   * moment later (use `shutdown()` to wait for it). Safe twice.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    void this.checkpointer?.stop();
    this.db.close();
  }

  /**
   * Closes the store once the checkpoint thread closed its connection, this one last: when it
   * resolves, nothing has the files open and they are as they stay (the WAL checkpointed into the
   * database and removed). What a graceful stop uses. Safe twice.
   */
  async shutdown(): Promise<void> {
    if (this.closed) return;
    await this.checkpointer?.stop();
    this.close();
  }
}
