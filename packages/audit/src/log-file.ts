/**
 * Audit log files (`--audit-log-path`, `--audit-log-format=json`): one Event per line. Read once with
 * readAuditLogFile, or followed like `tail -F` with AuditLogFollower through kube-apiserver's
 * lumberjack rotation (close, rename to a backup name, create a new file at the path).
 */
import { open, stat } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import type { BigIntStats } from 'node:fs';
import { isAuditEventError, parseAuditLine } from './event-list.js';
import type { AuditEvent, AuditEventError } from './model.js';

/** A bad line of a file: `index` is its 1-based line number in the file generation it came from. */
export type AuditLogError = AuditEventError & { path: string };

export interface AuditLogHandlers {
  /** Awaited before the next line is read: a slow consumer slows the reader down. */
  onEvent(e: AuditEvent): void | Promise<void>;
  onError(err: AuditLogError): void;
}

const CHUNK_BYTES = 64 * 1024;
/** Longer lines are reported as errors and skipped rather than held in memory. */
export const DEFAULT_MAX_LINE_BYTES = 64 * 1024 * 1024;

type SplitLine = { text: string } | { tooLong: number };

/** Splits bytes on '\n' (safe in UTF-8: 0x0A never occurs inside a multi-byte sequence). */
class LineSplitter {
  private parts: Buffer[] = [];
  private size = 0;
  /** Bytes of a line already past the limit: they are dropped, only counted. */
  private overflow = 0;

  constructor(private readonly maxLineBytes: number) {}

  push(chunk: Buffer, out: SplitLine[]): void {
    let start = 0;
    for (let nl = chunk.indexOf(0x0a); nl !== -1; nl = chunk.indexOf(0x0a, start)) {
      out.push(this.take(chunk.subarray(start, nl)));
      start = nl + 1;
    }
    if (start < chunk.length) this.keep(chunk.subarray(start));
  }

  /** Bytes of the incomplete last line. */
  get pendingBytes(): number {
    return this.size + this.overflow;
  }

  /** The incomplete last line as a line, for a file that will not grow any more. */
  flush(): SplitLine | undefined {
    return this.pendingBytes === 0 ? undefined : this.take(Buffer.alloc(0));
  }

  reset(): void {
    this.parts = [];
    this.size = 0;
    this.overflow = 0;
  }

  private keep(tail: Buffer): void {
    if (this.overflow > 0 || this.size + tail.length > this.maxLineBytes) {
      this.overflow += this.size + tail.length;
      this.parts = [];
      this.size = 0;
      return;
    }
    // Copied: callers reuse their read buffer.
    this.parts.push(Buffer.from(tail));
    this.size += tail.length;
  }

  private take(last: Buffer): SplitLine {
    const total = this.overflow + this.size + last.length;
    if (this.overflow > 0 || total > this.maxLineBytes) {
      this.reset();
      return { tooLong: total };
    }
    const bytes = this.parts.length === 0 ? last : Buffer.concat([...this.parts, last]);
    this.reset();
    const text = bytes.toString('utf8');
    return { text: text.endsWith('\r') ? text.slice(0, -1) : text };
  }
}

/** undefined for a blank line. */
function lineResult(item: SplitLine, lineNumber: number, maxLineBytes: number): AuditEvent | AuditEventError | undefined {
  if ('tooLong' in item) return { index: lineNumber, reason: `line of ${item.tooLong} bytes is longer than the limit of ${maxLineBytes} bytes` };
  // A BOM (files saved by some editors) would make JSON.parse fail on the first line.
  const text = lineNumber === 1 && item.text.charCodeAt(0) === 0xfeff ? item.text.slice(1) : item.text;
  if (text.trim() === '') return undefined;
  return parseAuditLine(text, lineNumber);
}

/**
 * Reads a whole audit log file line by line, in chunks (files can be GBs). Blank lines are skipped,
 * bad lines go to onError with their 1-based line number, onEvent is awaited. Rejects when the file
 * cannot be read, when onEvent rejects (nothing after that line is read) or when the signal aborts.
 */
export async function readAuditLogFile(
  path: string,
  handlers: AuditLogHandlers,
  opts: { signal?: AbortSignal; maxLineBytes?: number } = {},
): Promise<{ lines: number; events: number; errors: number }> {
  const { signal } = opts;
  const maxLineBytes = opts.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
  signal?.throwIfAborted();
  const counts = { lines: 0, events: 0, errors: 0 };
  const splitter = new LineSplitter(maxLineBytes);
  const handle = async (item: SplitLine) => {
    signal?.throwIfAborted();
    const r = lineResult(item, ++counts.lines, maxLineBytes);
    if (r === undefined) return;
    if (isAuditEventError(r)) {
      counts.errors++;
      handlers.onError({ ...r, path });
    } else {
      await handlers.onEvent(r);
      counts.events++;
    }
  };
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.allocUnsafe(CHUNK_BYTES);
    const out: SplitLine[] = [];
    for (let pos = 0; ; ) {
      signal?.throwIfAborted();
      const { bytesRead } = await fh.read(buf, 0, CHUNK_BYTES, pos);
      if (bytesRead === 0) break;
      pos += bytesRead;
      out.length = 0;
      splitter.push(buf.subarray(0, bytesRead), out);
      for (const item of out) await handle(item);
    }
    // The file is complete: a last line without newline is still a line.
    const last = splitter.flush();
    if (last) await handle(last);
  } finally {
    await fh.close();
  }
  return counts;
}

export interface AuditLogFollowerOptions extends AuditLogHandlers {
  path: string;
  /** Where to start in the file that exists at start(); files appearing later are always read whole. */
  startAt: 'beginning' | 'end';
  /** Default 250. */
  pollIntervalMs?: number;
  maxLineBytes?: number;
  /**
   * I/O failures and onEvent rejections; the follower keeps going (a rejected event is offered
   * again at the next poll, so none is skipped). Without it they go to onError with index 0.
   */
  onFailure?(err: Error): void;
}

/** One file at the path: a new one begins at every rotation or truncation, with line numbers from 1. */
interface Generation {
  fh: FileHandle;
  dev: bigint;
  ino: bigint;
  /** Bytes consumed, including an incomplete last line held in the splitter. */
  offset: number;
  /** Lines split so far. */
  line: number;
  splitter: LineSplitter;
}

interface PendingLine {
  line: number;
  item: SplitLine;
  /** The incomplete last line of a rotated file. */
  final: boolean;
}

function errCode(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

async function statIfExists(path: string): Promise<BigIntStats | undefined> {
  try {
    return await stat(path, { bigint: true });
  } catch (err) {
    if (errCode(err) === 'ENOENT' || errCode(err) === 'ENOTDIR') return undefined;
    throw err;
  }
}

/**
 * Follows an audit log file like `tail -F`, by polling: appends, lumberjack rotation (rename +
 * create; what remains of the old file is read before switching), copytruncate (the file shrinks:
 * read again from 0), and a path that does not exist yet.
 */
export class AuditLogFollower {
  private readonly path: string;
  private readonly pollIntervalMs: number;
  private readonly maxLineBytes: number;
  private readonly buf = Buffer.allocUnsafe(CHUNK_BYTES);
  private gen: Generation | undefined;
  /** Lines read but not yet delivered (onEvent is awaited one line at a time). */
  private readonly backlog: PendingLine[] = [];
  private timer: NodeJS.Timeout | undefined;
  private tickPromise: Promise<void> | undefined;
  private startPromise: Promise<void> | undefined;
  private stopPromise: Promise<void> | undefined;
  private stopping = false;

  constructor(private readonly opts: AuditLogFollowerOptions) {
    this.path = opts.path;
    this.pollIntervalMs = opts.pollIntervalMs ?? 250;
    this.maxLineBytes = opts.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
  }

  /** Opens the file (or notes it is missing) and positions; resolves before the first lines are delivered. */
  start(): Promise<void> {
    if (this.stopping) return Promise.reject(new Error('AuditLogFollower: start() after stop()'));
    this.startPromise ??= this.doStart();
    return this.startPromise;
  }

  /** Stops polling; resolves once lines already read are delivered and the file is closed. */
  stop(): Promise<void> {
    this.stopPromise ??= this.doStop();
    return this.stopPromise;
  }

  private async doStart(): Promise<void> {
    try {
      await this.openGeneration(this.opts.startAt === 'end');
    } catch (err) {
      this.fail(err);
    }
    if (!this.stopping) this.schedule(0);
  }

  private async doStop(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.startPromise?.catch(() => undefined);
    await this.tickPromise;
    await this.closeGeneration();
  }

  private schedule(delayMs: number): void {
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.tickPromise = this.runTick();
    }, delayMs);
  }

  private async runTick(): Promise<void> {
    try {
      await this.tick();
    } catch (err) {
      this.fail(err);
    }
    if (!this.stopping) this.schedule(this.pollIntervalMs);
  }

  private async tick(): Promise<void> {
    if (!(await this.deliverBacklog()) || this.stopping) return;
    if (!this.gen) await this.openGeneration(false);
    const gen = this.gen;
    if (!gen) return;
    // Stat the path before draining: lumberjack closes the old file before renaming it, so once a
    // new file is at the path, draining the old descriptor afterwards gets all of the old file.
    const atPath = await statIfExists(this.path);
    const own = await gen.fh.stat({ bigint: true });
    if (Number(own.size) < gen.offset) this.restartTruncated(gen);
    if (!(await this.drain(gen)) || this.stopping) return;
    if (atPath === undefined || (atPath.ino === gen.ino && atPath.dev === gen.dev)) return;

    // Rotated: the old file is complete, so an unterminated last line will never be finished.
    const rest = gen.splitter.flush();
    if (rest) this.backlog.push({ line: ++gen.line, item: rest, final: true });
    await this.closeGeneration();
    if (!(await this.deliverBacklog()) || this.stopping) return;
    await this.openGeneration(false);
    if (this.gen) await this.drain(this.gen);
  }

  /** copytruncate: the same file shrank below what was read; it holds new lines from 0. */
  private restartTruncated(gen: Generation): void {
    const pending = gen.splitter.pendingBytes;
    if (pending > 0) {
      this.report({ index: gen.line + 1, reason: `incomplete line (${pending} bytes) discarded: the file was truncated before the line was completed` });
    }
    gen.splitter.reset();
    gen.offset = 0;
    gen.line = 0;
  }

  /** Reads to end of file, delivering as it goes. false when onEvent failed (retried next poll). */
  private async drain(gen: Generation): Promise<boolean> {
    const out: SplitLine[] = [];
    for (;;) {
      if (!(await this.deliverBacklog())) return false;
      if (this.stopping) return true;
      const { bytesRead } = await gen.fh.read(this.buf, 0, CHUNK_BYTES, gen.offset);
      if (bytesRead === 0) return true;
      gen.offset += bytesRead;
      out.length = 0;
      gen.splitter.push(this.buf.subarray(0, bytesRead), out);
      for (const item of out) this.backlog.push({ line: ++gen.line, item, final: false });
    }
  }

  private async deliverBacklog(): Promise<boolean> {
    while (this.backlog.length > 0) {
      const p = this.backlog[0]!;
      const r = lineResult(p.item, p.line, this.maxLineBytes);
      if (r !== undefined && isAuditEventError(r)) {
        this.report(p.final ? { index: r.index, reason: `incomplete last line of a rotated file: ${r.reason}` } : r);
      } else if (r !== undefined) {
        try {
          await this.opts.onEvent(r);
        } catch (err) {
          this.fail(new Error(`onEvent failed for ${this.path}:${p.line} (offered again at the next poll): ${(err as Error)?.message ?? String(err)}`, { cause: err }));
          return false;
        }
      }
      this.backlog.shift();
    }
    return true;
  }

  private async openGeneration(atEnd: boolean): Promise<void> {
    let fh: FileHandle;
    try {
      fh = await open(this.path, 'r');
    } catch (err) {
      // Not there yet, or between rename and create: wait for it.
      if (errCode(err) === 'ENOENT') return;
      throw err;
    }
    try {
      const st = await fh.stat({ bigint: true });
      if (!st.isFile()) throw new Error(`${this.path} is not a regular file`);
      const gen: Generation = { fh, dev: st.dev, ino: st.ino, offset: 0, line: 0, splitter: new LineSplitter(this.maxLineBytes) };
      if (atEnd) await this.skipToEnd(gen, Number(st.size));
      this.gen = gen;
    } catch (err) {
      await fh.close().catch(() => undefined);
      throw err;
    }
  }

  /**
   * Starts after the last complete line: an unterminated last line is being written now and is
   * delivered once finished. Lines are counted on the way so errors keep true line numbers.
   */
  private async skipToEnd(gen: Generation, size: number): Promise<void> {
    let lastNewline = -1;
    let lines = 0;
    for (let pos = 0; pos < size; ) {
      const { bytesRead } = await gen.fh.read(this.buf, 0, Math.min(CHUNK_BYTES, size - pos), pos);
      if (bytesRead === 0) break;
      const chunk = this.buf.subarray(0, bytesRead);
      for (let i = chunk.indexOf(0x0a); i !== -1; i = chunk.indexOf(0x0a, i + 1)) {
        lines++;
        lastNewline = pos + i;
      }
      pos += bytesRead;
    }
    gen.offset = lastNewline + 1;
    gen.line = lines;
  }

  private async closeGeneration(): Promise<void> {
    const gen = this.gen;
    this.gen = undefined;
    await gen?.fh.close().catch(() => undefined);
  }

  private report(err: AuditEventError): void {
    try {
      this.opts.onError({ index: err.index, reason: err.reason, path: this.path });
    } catch {
      // A throwing handler must not stop the follower.
    }
  }

  private fail(err: unknown): void {
    const e = err instanceof Error ? err : new Error(String(err));
    try {
      if (this.opts.onFailure) this.opts.onFailure(e);
      else this.opts.onError({ index: 0, reason: e.message, path: this.path });
    } catch {
      // As above.
    }
  }
}
