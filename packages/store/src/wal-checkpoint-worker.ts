/**
 * The worker thread of wal-checkpointer.ts: its own connection to the store's database, checkpointing
 * the WAL (PASSIVE: it never blocks the writer nor waits for it) every `intervalMs` and when asked.
 */
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';

export interface CheckpointWorkerData { path: string; intervalMs: number; synchronous: 'NORMAL' | 'FULL' }
/** What a checkpoint did: `log` frames in the WAL, `checkpointed` of them copied into the database. */
export interface CheckpointResult { busy: number; log: number; checkpointed: number }
export type CheckpointReply = { id: number; result: CheckpointResult } | { id: number; error: string; code?: string };

const { path, intervalMs, synchronous } = workerData as CheckpointWorkerData;
const db = new Database(path, { fileMustExist: true });
// The same durability as the writer's commits: FULL and NORMAL both sync the WAL before copying it and the database after.
db.pragma(`synchronous = ${synchronous}`);

function checkpoint(): CheckpointResult {
  const [row] = db.pragma('wal_checkpoint(PASSIVE)') as Array<{ busy: number; log: number; checkpointed: number }>;
  return row ?? { busy: 0, log: 0, checkpointed: 0 };
}

/** Reports a failure once per kind until a checkpoint succeeds again (a full disk would repeat it every interval). */
let failing = '';
const timer = setInterval(() => {
  try {
    checkpoint();
    failing = '';
  } catch (err) {
    const code = (err as { code?: string }).code ?? 'error';
    if (failing !== code) parentPort!.postMessage({ id: 0, error: (err as Error).message, code } satisfies CheckpointReply);
    failing = code;
  }
}, intervalMs);

parentPort!.on('message', (m: { id: number; op: 'checkpoint' | 'stop' }) => {
  if (m.op === 'stop') {
    clearInterval(timer);
    db.close();
    parentPort!.close();
    return;
  }
  try {
    parentPort!.postMessage({ id: m.id, result: checkpoint() } satisfies CheckpointReply);
  } catch (err) {
    parentPort!.postMessage({ id: m.id, error: (err as Error).message, code: (err as { code?: string }).code ?? 'error' } satisfies CheckpointReply);
  }
});
