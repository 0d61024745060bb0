/**
 * The embedded database's checkpoints, on a thread of their own. A checkpoint copies the
 * write-ahead log into the database file and flushes both to the disk; run by the connection
 * that commits (SQLite's default), it would block the event loop that answers webhooks for
 * milliseconds every thousand pages. This thread's own connection runs a PASSIVE checkpoint at
 * an interval instead: it never blocks the writer, and the writer starts the log afresh once a
 * checkpoint has caught up.
 */
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';

export interface CheckpointerData {
  path: string;
  intervalMs: number;
  synchronous: 'NORMAL' | 'FULL';
}

export type CheckpointerMessage = 'ready' | 'close';

const port = parentPort;
if (port === null) throw new Error('sqlite-checkpointer.ts runs as a worker thread only');

const { path, intervalMs, synchronous } = workerData as CheckpointerData;
const db = new Database(path, { fileMustExist: true });
db.pragma(`synchronous = ${synchronous}`);
// This connection only checkpoints; it never writes a page.
db.pragma('wal_autocheckpoint = 0');

const timer = setInterval(() => {
  try {
    db.pragma('wal_checkpoint(PASSIVE)');
  } catch {
    // Busy or interrupted: the next interval tries again; the log only grows meanwhile.
  }
}, intervalMs);

port.on('message', (message: CheckpointerMessage) => {
  if (message !== 'close') return;
  clearInterval(timer);
  db.close();
  port.close();
});
port.postMessage('ready' satisfies CheckpointerMessage);
