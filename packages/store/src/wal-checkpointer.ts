import { Worker } from 'node:worker_threads';
import type { CheckpointReply, CheckpointResult, CheckpointWorkerData } from './wal-checkpoint-worker.js';

export type { CheckpointResult } from './wal-checkpoint-worker.js';

/**
 * Checkpoints a WAL database from a worker thread. SQLite's automatic checkpoint runs inside the
 * commit that crosses `wal_autocheckpoint` pages: it copies the WAL into the database and syncs
 * both, and in embedded mode that stalled the event loop (receivers, the query API) for the length
 * of the I/O (test/bench, embedded mode). With this, the writer's commits only append to the WAL
 * (and now and then wait for the end of a RESTART checkpoint, which keeps the WAL from growing under
 * a steady load: see the worker); the writer's automatic checkpoint stays as a backstop at
 * `BACKSTOP_PAGES`, should this fall behind.
 *
 * Durability is unchanged: a commit is in the WAL as before, and a checkpoint syncs as the writer's
 * `synchronous` says. A checkpoint that fails (a full disk) is reported through `onError`, once
 * until one succeeds again; the WAL keeps the data and the next interval tries again.
 */
export class WalCheckpointer {
  /** `wal_autocheckpoint` of the writer while a checkpointer runs (pages; SQLite's default is 1000). */
  static readonly BACKSTOP_PAGES = 16384;
  private readonly worker: Worker;
  private readonly waiting = new Map<number, { resolve: (r: CheckpointResult) => void; reject: (e: Error) => void }>();
  private nextId = 1;
  private stopped = false;
  /** Resolves once the thread ended (its connection closed). */
  private readonly exited: Promise<void>;
  private ended = false;

  /** Frames in the WAL from which a checkpoint is a RESTART (wal-checkpoint-worker.ts): 16 MiB of 4 KiB pages. */
  static readonly RESTART_FRAMES = 4096;

  constructor(path: string, opts: { intervalMs?: number; restartFrames?: number; synchronous?: 'normal' | 'full'; onError?: (message: string, code: string) => void } = {}) {
    const data: CheckpointWorkerData = {
      path, intervalMs: opts.intervalMs ?? 200, restartFrames: opts.restartFrames ?? WalCheckpointer.RESTART_FRAMES, synchronous: opts.synchronous === 'full' ? 'FULL' : 'NORMAL',
    };
    this.worker = new Worker(new URL('./wal-checkpoint-worker.js', import.meta.url), { workerData: data });
    this.worker.unref();
    this.exited = new Promise((resolve) => this.worker.once('exit', () => {
      this.ended = true;
      resolve();
    }));
    this.worker.on('message', (m: CheckpointReply) => {
      const w = this.waiting.get(m.id);
      this.waiting.delete(m.id);
      if ('result' in m) w?.resolve(m.result);
      else if (w) w.reject(Object.assign(new Error(m.error), { code: m.code }));
      else opts.onError?.(m.error, m.code ?? 'error');
    });
    this.worker.on('error', (err) => {
      opts.onError?.(err.message, 'worker');
      for (const w of this.waiting.values()) w.reject(err);
      this.waiting.clear();
    });
  }

  /** Whether the thread still runs (false once it ended: its connection is closed). */
  get running(): boolean {
    return !this.ended;
  }

  /** One checkpoint now (tests, and whoever wants the WAL small now). */
  checkpoint(): Promise<CheckpointResult> {
    if (this.stopped) return Promise.reject(new Error('the checkpointer is stopped'));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      this.worker.postMessage({ id, op: 'checkpoint' });
    });
  }

  /**
   * Stops the thread; resolves once it ended, so its connection is closed (a checkpoint in progress
   * finishes first; after `timeoutMs` the thread is terminated). Safe twice.
   */
  stop(timeoutMs = 5000): Promise<void> {
    if (!this.stopped) {
      this.stopped = true;
      // Referenced again, so a process that waits for this is not ended early by an empty event loop.
      this.worker.ref();
      this.worker.postMessage({ id: 0, op: 'stop' });
      for (const w of this.waiting.values()) w.reject(new Error('the checkpointer is stopped'));
      this.waiting.clear();
    }
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<void>((resolve) => {
      timer = setTimeout(() => void this.worker.terminate().then(() => resolve(), () => resolve()), timeoutMs);
      timer.unref();
    });
    return Promise.race([this.exited, late]).finally(() => clearTimeout(timer));
  }
}
