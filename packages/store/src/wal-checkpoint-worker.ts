/**
 * The worker thread of wal-checkpointer.ts: its own connection to the store's database, checkpointing
 * the WAL every `intervalMs` and when asked. PASSIVE: it never blocks the writer nor waits for it.
 * But under a steady stream of commits a PASSIVE checkpoint never catches up with the last frame,
 * and SQLite starts the WAL over only when it did: the WAL would grow without end. So once it holds
 * `restartFrames` frames, the checkpoint is a RESTART: it holds new commits back (their busy
 * handler waits) while it copies what the last PASSIVE one left, so the next commit starts the WAL
 * over.
 */
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';

export interface CheckpointWorkerData { path: string; intervalMs: number; restartFrames: number; synchronous: 'NORMAL' | 'FULL' }
/** What a checkpoint did: `log` frames in the WAL, `checkpointed` of them copied into the database; `mode` RESTART when the WAL was long. */
export interface CheckpointResult { busy: number; log: number; checkpointed: number; mode: 'PASSIVE' | 'RESTART' }
export type CheckpointReply = { id: number; result: CheckpointResult } | { id: number; error: string; code?: string };

const { path, intervalMs, restartFrames, synchronous } = workerData as CheckpointWorkerData;
const db = new Database(path, { fileMustExist: true });
// How long a RESTART waits for a commit in progress to end.
db.pragma('busy_timeout = 1000');
// The same durability as the writer's commits: FULL and NORMAL both sync the WAL before copying it and the database after.
db.pragma(`synchronous = ${synchronous}`);

function run(mode: CheckpointResult['mode']): CheckpointResult {
  const [row] = db.pragma(`wal_checkpoint(${mode})`) as Array<{ busy: number; log: number; checkpointed: number }>;
  return { ...(row ?? { busy: 0, log: 0, checkpointed: 0 }), mode };
}

function checkpoint(): CheckpointResult {
  const passive = run('PASSIVE');
  return passive.log >= restartFrames ? run('RESTART') : passive;
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
