/**
 * The embedded queue's side of the SQLite file: the `jobs` table (`QUEUE_MIGRATIONS`), its
 * prepared statements, and the scheduling writes (active mark, delete, retry). Those are not
 * awaited by dispatch: they are gathered into one `write` per batch, and `settled()` waits for
 * them (sqlite-job-queue.ts says why that is safe).
 */
import type { SqliteDatabase } from '../backends/sqlite/sqlite-database.js';
import type { Logger } from '../shared/logger.js';
import type { JobCounts, JobPriority } from './job-queue.js';

export interface JobRow {
  seq: number;
  id: string;
  name: string;
  task_id: string;
  grp: string | null;
  priority: JobPriority;
  attempt: number;
  run_at_ms: number;
  active: number;
  /** The job's trace carrier as JSON, or null. */
  trace: string | null;
}

/** What the scheduling writes need of a job; the driver's entries carry more. */
export interface TableJob {
  /** Its row (the rowid): the scheduling writes find it by that. */
  readonly seq: number;
  readonly id: string;
  readonly taskId: string;
  attempt: number;
  runAtMs: number;
  /** This run's active mark while it still waits for its batch. */
  pendingMark: Housekeeping | null;
}

/** A scheduling write waiting for the next batch; `skip` drops an active mark made moot by a delete. */
export interface Housekeeping {
  kind: 'mark' | 'delete' | 'reschedule';
  entry: TableJob;
  attempt: number;
  runAtMs: number;
  skip: boolean;
}

/** The `jobs` table as the driver sees it. */
export interface JobTable {
  /** Inserts a job at attempt 1 and resolves after COMMIT with its `seq`, or null if the id exists. */
  insert(
    id: string,
    name: string,
    taskId: string,
    group: string | null,
    priority: JobPriority,
    runAtMs: number,
    trace: string | null,
  ): Promise<number | null>;
  /** Every row, in `seq` order. */
  all(): JobRow[];
  /** Records (not awaited) that the rows marked active run again with `attempt + 1`. */
  recoverInterrupted(): void;
  /** Counts from the table alone, for a queue that is not consuming. */
  counts(): Promise<JobCounts>;
  /** Queues a scheduling write of `entry` for the next batch. */
  record(kind: Housekeeping['kind'], entry: TableJob): Housekeeping;
  /** Resolves once every scheduling write made so far has committed or failed. */
  settled(): Promise<void>;
}

/**
 * The queue's table, by version (`SqliteDatabase.migrate`). Append only: a released migration
 * is never edited. Version 2 stores each job's lane; rows written before it was stored were
 * deliveries (first) or generations (normal), told apart by their name. Version 3 stores each
 * job's trace carrier (JSON), null for rows written before.
 */
export function queueMigrations(table: string): readonly string[] {
  return [
    `
  CREATE TABLE ${table} (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    task_id TEXT NOT NULL,
    grp TEXT,
    attempt INTEGER NOT NULL,
    run_at_ms INTEGER NOT NULL,
    active INTEGER NOT NULL DEFAULT 0
  );
  `,
    `
  ALTER TABLE ${table} ADD COLUMN priority TEXT NOT NULL DEFAULT 'normal';
  UPDATE ${table} SET priority = 'first' WHERE name = 'deliver';
  `,
    `
  ALTER TABLE ${table} ADD COLUMN trace TEXT;
  `,
    // Without the unique index on id: its entries are random UUIDs, so each insert and each delete
    // wrote a page of it of its own. Ids are unique by the table's in-memory set of them (one
    // process uses the file), and rows are found by seq.
    `
  CREATE TABLE ${table}_next (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    task_id TEXT NOT NULL,
    grp TEXT,
    attempt INTEGER NOT NULL,
    run_at_ms INTEGER NOT NULL,
    active INTEGER NOT NULL DEFAULT 0,
    priority TEXT NOT NULL DEFAULT 'normal',
    trace TEXT
  );
  INSERT INTO ${table}_next (seq, id, name, task_id, grp, attempt, run_at_ms, active, priority, trace)
    SELECT seq, id, name, task_id, grp, attempt, run_at_ms, active, priority, trace FROM ${table};
  DROP TABLE ${table};
  ALTER TABLE ${table}_next RENAME TO ${table};
  `,
  ];
}

/** The migrations of the default table, `jobs`. */
export const QUEUE_MIGRATIONS: readonly string[] = queueMigrations('jobs');

export function describeError(error: unknown): { message: string; name?: string } {
  return error instanceof Error ? { name: error.name, message: error.message } : { message: String(error) };
}

/**
 * Migrates a queue's table (`jobs` by default; each queue of the file has its own, migrated as a
 * seam of its own) and prepares its statements.
 */
export function openSqliteJobTable(db: SqliteDatabase, logger: Logger, table = 'jobs'): JobTable {
  if (!/^[a-z_]+$/.test(table)) throw new Error(`invalid queue table name: ${table}`);
  db.migrate(table === 'jobs' ? 'queue' : `queue:${table}`, queueMigrations(table));

  const insertJob = db.prepare(
    `INSERT INTO ${table} (id, name, task_id, grp, priority, attempt, run_at_ms, trace) VALUES (?, ?, ?, ?, ?, 1, ?, ?)`,
  );
  const markActive = db.prepare(`UPDATE ${table} SET active = 1 WHERE seq = ?`);
  const deleteJob = db.prepare(`DELETE FROM ${table} WHERE seq = ?`);
  const rescheduleJob = db.prepare(
    `UPDATE ${table} SET attempt = ?, run_at_ms = ?, active = 0 WHERE seq = ?`,
  );
  const selectJobs = db.prepare<JobRow>(`SELECT * FROM ${table} ORDER BY seq`);
  const recoverActive = db.prepare(`UPDATE ${table} SET attempt = attempt + 1, active = 0 WHERE active = 1`);
  const countJobs = db.prepare<{ total: number; delayed: number | null }>(
    `SELECT count(*) AS total, sum(run_at_ms > ?) AS delayed FROM ${table}`,
  );

  /**
   * The ids of the table's jobs, and of those being inserted: a job id is taken from an insert
   * until its delete is recorded (the delete is written before any later insert, in order).
   */
  const ids = new Set(
    db
      .prepare<{ id: string }>(`SELECT id FROM ${table}`)
      .all()
      .map((row) => row.id),
  );

  const pendingWrites = new Set<Promise<unknown>>();

  /** Runs a table write without holding up dispatch; settled() waits for it. */
  const track = (write: Promise<unknown>, onError: (error: unknown) => void): void => {
    const tracked = write.then(() => undefined, onError);
    pendingWrites.add(tracked);
    void tracked.finally(() => pendingWrites.delete(tracked));
  };

  let housekeeping: Housekeeping[] = [];

  const runHousekeeping = (ops: readonly Housekeeping[]): void => {
    for (const op of ops) {
      if (op.skip) continue;
      if (op.kind === 'mark') markActive.run(op.entry.seq);
      else if (op.kind === 'delete') deleteJob.run(op.entry.seq);
      else rescheduleJob.run(op.attempt, op.runAtMs, op.entry.seq);
    }
  };

  /** Queues a scheduling write; the first one of a batch requests the `write` that runs them all. */
  const record = (kind: Housekeeping['kind'], entry: TableJob): Housekeeping => {
    const op: Housekeeping = { kind, entry, attempt: entry.attempt, runAtMs: entry.runAtMs, skip: false };
    if (kind === 'delete') ids.delete(entry.id);
    housekeeping.push(op);
    if (housekeeping.length > 1) return op;
    let ops: Housekeeping[] | null = null;
    track(
      db.write(() => {
        // Taken at the batch, not now, so every op recorded until then shares this write. The
        // batch may run this function twice (after another write threw): it keeps the same ops.
        if (ops === null) {
          ops = housekeeping;
          housekeeping = [];
          for (const taken of ops) if (taken.kind === 'mark') taken.entry.pendingMark = null;
        }
        runHousekeeping(ops);
      }),
      (error: unknown) => {
        if (ops === null) {
          // The batch failed before running this function: these ops are lost, as its writes are.
          ops = housekeeping;
          housekeeping = [];
        }
        const jobs = ops.map((op) => ({ job_id: op.entry.id, task_id: op.entry.taskId, op: op.kind }));
        logger.error({ jobs, err: describeError(error) }, 'job queue: recording job state failed');
      },
    );
    return op;
  };

  return {
    async insert(id, name, taskId, group, priority, runAtMs, trace) {
      if (ids.has(id)) return null;
      ids.add(id);
      try {
        return await db.write(() =>
          Number(insertJob.run(id, name, taskId, group, priority, runAtMs, trace).lastInsertRowid),
        );
      } catch (error) {
        ids.delete(id);
        throw error;
      }
    },

    all: () => selectJobs.all(),

    recoverInterrupted() {
      track(
        db.write(() => recoverActive.run()),
        (error: unknown) => {
          logger.error({ err: describeError(error) }, 'job queue: recording interrupted jobs failed');
        },
      );
    },

    counts() {
      return db.read(() => {
        const row = countJobs.get(Date.now());
        const total = row?.total ?? 0;
        const later = row?.delayed ?? 0;
        return { waiting: total - later, active: 0, delayed: later };
      });
    },

    record,

    async settled() {
      await Promise.all(pendingWrites);
    },
  };
}
