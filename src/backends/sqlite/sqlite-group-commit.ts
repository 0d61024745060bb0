/**
 * Group commit's batch runner for sqlite-database.ts: runs the writes of one batch in ONE
 * transaction with no statement of their own around each; when one throws, the batch is rolled
 * back and run again with a SAVEPOINT per write, so the failing write fails alone. Every write's
 * promise settles only after COMMIT (or with the error that undid it).
 */
import { BackendUnavailableError } from '../../shared/errors.js';

/** What the runner needs of the connection; better-sqlite3's `Database` is one. */
export interface GroupCommitConnection {
  readonly inTransaction: boolean;
  prepare(sql: string): { run(): unknown };
}

/** A write waiting for its batch; `Tx` is what its function is handed (a `SqliteTransaction`). */
export interface PendingWrite<Tx> {
  fn: (tx: Tx) => unknown;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown };

export function unavailable(message: string, cause: unknown): BackendUnavailableError {
  const detail = cause instanceof Error ? `: ${cause.message}` : '';
  return new BackendUnavailableError(`${message}${detail}`, { cause });
}

/** Returns the function that runs one batch of writes to its end, on `raw`'s connection. */
export function createGroupCommit<Tx>(
  raw: GroupCommitConnection,
  tx: Tx,
): (batch: PendingWrite<Tx>[]) => void {
  const begin = raw.prepare('BEGIN IMMEDIATE');
  const commit = raw.prepare('COMMIT');
  const rollback = raw.prepare('ROLLBACK');
  const savepoint = raw.prepare('SAVEPOINT w');
  const release = raw.prepare('RELEASE w');
  const rollbackToSavepoint = raw.prepare('ROLLBACK TO w');

  const settle = (batch: readonly PendingWrite<Tx>[], outcomes: readonly Outcome[]): void => {
    for (let index = 0; index < batch.length; index++) {
      const outcome = outcomes[index]!;
      if (outcome.ok) batch[index]!.resolve(outcome.value);
      else batch[index]!.reject(outcome.error);
    }
  };

  const failAll = (batch: readonly PendingWrite<Tx>[], error: unknown): void => {
    for (const write of batch) write.reject(error);
  };

  /** Commits the open transaction; on failure rolls back and fails every write of `batch`. */
  const commitOrFail = (batch: readonly PendingWrite<Tx>[]): boolean => {
    try {
      commit.run();
      return true;
    } catch (error) {
      if (raw.inTransaction) {
        try {
          rollback.run();
        } catch {
          // The connection is broken; every write of the batch fails below either way.
        }
      }
      failAll(batch, unavailable('The database could not commit', error));
      return false;
    }
  };

  /**
   * The common case: every write of `batch` in one transaction with no per-write savepoint.
   * Returns `false`, with nothing settled and the transaction rolled back, when a write threw:
   * the caller then runs the batch again write by write.
   */
  const runBatchPlain = (batch: readonly PendingWrite<Tx>[]): boolean => {
    try {
      begin.run();
    } catch (error) {
      failAll(batch, unavailable('The database cannot start a transaction', error));
      return true;
    }
    const values: unknown[] = new Array(batch.length);
    try {
      for (let index = 0; index < batch.length; index++) values[index] = batch[index]!.fn(tx);
    } catch {
      if (raw.inTransaction) {
        try {
          rollback.run();
        } catch {
          // The isolated run that follows starts with its own BEGIN and reports what is broken.
        }
      }
      return false;
    }
    if (!commitOrFail(batch)) return true;
    for (let index = 0; index < batch.length; index++) batch[index]!.resolve(values[index]);
    return true;
  };

  /**
   * Runs `batch` in one transaction, each write in its own SAVEPOINT so a throw undoes only that
   * write; returns writes that must go to a fresh transaction.
   */
  const runBatchIsolated = (batch: PendingWrite<Tx>[]): PendingWrite<Tx>[] => {
    try {
      begin.run();
    } catch (error) {
      failAll(batch, unavailable('The database cannot start a transaction', error));
      return [];
    }
    const outcomes: Outcome[] = [];
    for (let index = 0; index < batch.length; index++) {
      const write = batch[index]!;
      try {
        savepoint.run();
        const value = write.fn(tx);
        release.run();
        outcomes.push({ ok: true, value });
      } catch (error) {
        if (raw.inTransaction) {
          try {
            rollbackToSavepoint.run();
            release.run();
          } catch {
            // Handled below: a transaction SQLite already rolled back is detected by inTransaction.
          }
        }
        if (!raw.inTransaction) {
          // Some errors (disk full, I/O) make SQLite roll back the whole transaction: the writes
          // before this one are lost too, so they fail; the ones after get a transaction of their own.
          settle(
            batch.slice(0, index),
            outcomes.map((outcome) => (outcome.ok ? { ok: false, error } : outcome)),
          );
          write.reject(error);
          return batch.slice(index + 1);
        }
        outcomes.push({ ok: false, error });
      }
    }
    if (!commitOrFail(batch)) return [];
    settle(batch, outcomes);
    return [];
  };

  return (batch: PendingWrite<Tx>[]): void => {
    if (runBatchPlain(batch)) return;
    let rest = batch;
    while (rest.length > 0) rest = runBatchIsolated(rest);
  };
}
