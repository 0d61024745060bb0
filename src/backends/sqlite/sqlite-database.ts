/**
 * The embedded mode's one SQLite file, and (with its checkpoint thread, sqlite-checkpointer.ts)
 * the only importer of `better-sqlite3`. It owns the connection, its pragmas, the file's layout
 * (one schema version per seam) and group commit; the store and the job queue drivers build on
 * the handle it returns, each migrating its own tables.
 *
 * Group commit: every `write` requested in one turn of the event loop runs in ONE transaction on
 * `setImmediate`, and every promise settles only after COMMIT: a resolved write survives a
 * SIGKILL, and a burst of requests costs one commit, not one per request. The
 * writes run plainly, with no statement of their own around each; when one throws, the batch is
 * rolled back and run again with a SAVEPOINT per write, so the failing write fails alone (the
 * batch runner: sqlite-group-commit.ts).
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Worker } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { BackendUnavailableError } from '../../shared/errors.js';
import { startThread } from '../../shared/threads.js';
import type { CheckpointerData, CheckpointerMessage } from './sqlite-checkpointer.js';
import { createGroupCommit, type PendingWrite, unavailable } from './sqlite-group-commit.js';

export type SqlValue = string | number | bigint | Buffer | null;

export interface SqliteRunResult {
  changes: number;
  lastInsertRowid: number | bigint;
}

/** A statement prepared once; positional `?` parameters. */
export interface SqliteStatement<Row = unknown> {
  run(...params: SqlValue[]): SqliteRunResult;
  get(...params: SqlValue[]): Row | undefined;
  all(...params: SqlValue[]): Row[];
}

/** What a `write` callback may use: statements run inside the batch transaction. */
export interface SqliteTransaction {
  prepare<Row = unknown>(sql: string): SqliteStatement<Row>;
}

export interface SqliteDatabase {
  readonly path: string;
  /**
   * Prepares `sql` once (cached by its text). Statements that modify data belong inside `write`;
   * reads may run anywhere, and see only committed data.
   */
  prepare<Row = unknown>(sql: string): SqliteStatement<Row>;
  /**
   * Brings one seam's tables (`seam`: `store`, `queue`) to the last of its `migrations`, each
   * applied once, in order, in a transaction of its own. Append only: a released migration is
   * never edited. Called by the seam's driver when it is created, before it prepares a statement.
   */
  migrate(seam: string, migrations: readonly string[]): void;
  /**
   * Runs `fn` in the next group-commit batch; resolves with its result once the batch has
   * committed. A throw from `fn` undoes only `fn`'s changes and rejects only this promise. `fn`
   * must be synchronous (the batch transaction cannot span an `await`) and touch nothing but the
   * database: it runs a second time when another write of its batch throws.
   */
  write<T>(fn: (tx: SqliteTransaction) => T): Promise<T>;
  /** Runs a synchronous read; rejects with `BackendUnavailableError` when the database is closed or broken. */
  read<T>(fn: () => T): Promise<T>;
  /** Resolves when the database answers a query; rejects with `BackendUnavailableError` otherwise. */
  ping(): Promise<void>;
  /** Commits writes still waiting for their batch, then closes the file. Idempotent. */
  close(): void;
  readonly closed: boolean;
}

export interface OpenSqliteDatabaseOptions {
  /** A file path (its directory is created), or `:memory:`. */
  path: string;
  /** How long a statement waits for a lock held by another connection (default 5000). */
  busyTimeoutMs?: number;
  /**
   * `true`: fsync at every commit (`synchronous = FULL`), so a resolved write survives a power
   * loss too, at a cost of about a millisecond of blocked event loop per batch. Default `false`:
   * a resolved write survives the process's death, not the machine's.
   */
  syncEveryCommit?: boolean;
  /** Checkpoint from a background thread once the database is busy (default `true`; files only). */
  backgroundCheckpoints?: boolean;
}

/** Batches committed before checkpoints move to the background thread. */
const BACKGROUND_CHECKPOINT_AFTER_COMMITS = 64;
/** How often the background thread checkpoints. */
const CHECKPOINT_INTERVAL_MS = 100;
/** SQLite's own default: the committing connection checkpoints past this many log pages. */
const DEFAULT_AUTOCHECKPOINT_PAGES = 1000;

/**
 * The layout of the file, in `PRAGMA user_version`: 1 had one schema for every table; 2 keeps a
 * version per seam in `schema_versions`, and each seam's driver migrates its own tables
 * (`migrate`). A file of layout 1 holds version 1 of both seams, which are exactly its tables.
 */
const LAYOUT_VERSION = 2;
const LEGACY_SEAMS = ['store', 'queue'] as const;

function prepareLayout(raw: Database.Database): void {
  const version = raw.pragma('user_version', { simple: true }) as number;
  if (version > LAYOUT_VERSION) {
    throw new Error(
      `The database layout (version ${version}) is newer than this build knows (${LAYOUT_VERSION})`,
    );
  }
  if (version === LAYOUT_VERSION) return;
  raw.transaction(() => {
    raw.exec('CREATE TABLE schema_versions (seam TEXT PRIMARY KEY, version INTEGER NOT NULL)');
    if (version === 1) {
      const record = raw.prepare('INSERT INTO schema_versions (seam, version) VALUES (?, 1)');
      for (const seam of LEGACY_SEAMS) record.run(seam);
    }
    raw.pragma(`user_version = ${LAYOUT_VERSION}`);
  })();
}

/** Opens (creating when needed) and migrates the database at `options.path`. */
export function openSqliteDatabase(options: OpenSqliteDatabaseOptions): SqliteDatabase {
  const inMemory = options.path === ':memory:';
  if (!inMemory) mkdirSync(dirname(options.path), { recursive: true });
  const raw = new Database(options.path);
  try {
    raw.pragma(`busy_timeout = ${Math.max(0, Math.trunc(options.busyTimeoutMs ?? 5000))}`);
    if (!inMemory) raw.pragma('journal_mode = WAL');
    // NORMAL (the default) in WAL mode: a COMMIT that returned is in the operating system's
    // hands, so it survives the process being killed (SIGKILL included), which is what a 200
    // promises (SPEC §2); only a power loss or kernel crash can take the last commits, as with
    // Redis's own default persistence. FULL adds an fsync to every commit, on the event loop:
    // a fifth of the process's time under load.
    raw.pragma(`synchronous = ${options.syncEveryCommit === true ? 'FULL' : 'NORMAL'}`);
    raw.pragma('temp_store = MEMORY');
    raw.pragma('journal_size_limit = 67108864');
    prepareLayout(raw);
  } catch (error) {
    raw.close();
    throw error;
  }

  const statements = new Map<string, Database.Statement>();
  const prepare = <Row>(sql: string): SqliteStatement<Row> => {
    let statement = statements.get(sql);
    if (statement === undefined) {
      statement = raw.prepare(sql);
      statements.set(sql, statement);
    }
    return statement as unknown as SqliteStatement<Row>;
  };
  const tx: SqliteTransaction = { prepare };
  const runBatch = createGroupCommit(raw, tx);
  const selectOne = raw.prepare('SELECT 1');

  let pending: PendingWrite<SqliteTransaction>[] = [];
  let flushHandle: NodeJS.Immediate | null = null;
  let closed = false;

  // Checkpoints move to a thread once the database has seen some traffic (a short-lived one,
  // such as a test's, never starts it); until the thread is up, and if it ever stops, the
  // committing connection checkpoints as SQLite does by default.
  let checkpointer: Worker | null = null;
  let commits = 0;
  const startCheckpointer = (): void => {
    const data: CheckpointerData = {
      path: options.path,
      intervalMs: CHECKPOINT_INTERVAL_MS,
      synchronous: options.syncEveryCommit === true ? 'FULL' : 'NORMAL',
    };
    const thread = startThread(import.meta.url, './sqlite-checkpointer', { workerData: data });
    thread.unref();
    thread.on('message', (message: CheckpointerMessage) => {
      if (message === 'ready' && !closed) raw.pragma('wal_autocheckpoint = 0');
    });
    // Its failure is not the writer's: the writer goes back to checkpointing by itself.
    thread.on('error', () => {});
    thread.on('exit', () => {
      if (checkpointer === thread) checkpointer = null;
      try {
        if (!closed) raw.pragma(`wal_autocheckpoint = ${DEFAULT_AUTOCHECKPOINT_PAGES}`);
      } catch {
        // A broken connection fails its next write and says so there.
      }
    });
    checkpointer = thread;
  };

  const flush = (): void => {
    flushHandle = null;
    const batch = pending;
    pending = [];
    if (
      ++commits === BACKGROUND_CHECKPOINT_AFTER_COMMITS &&
      !inMemory &&
      options.backgroundCheckpoints !== false
    ) {
      startCheckpointer();
    }
    runBatch(batch);
  };

  const closedError = (): BackendUnavailableError => new BackendUnavailableError('The database is closed');

  const versionOf = raw.prepare('SELECT version FROM schema_versions WHERE seam = ?').pluck();
  const setVersion = raw.prepare(
    'INSERT INTO schema_versions (seam, version) VALUES (?, ?) ON CONFLICT (seam) DO UPDATE SET version = excluded.version',
  );

  return {
    path: options.path,
    prepare,
    migrate(seam, migrations) {
      const version = (versionOf.get(seam) as number | undefined) ?? 0;
      if (version > migrations.length) {
        throw new Error(
          `The ${seam} tables (version ${version}) are newer than this build knows (${migrations.length})`,
        );
      }
      for (let index = version; index < migrations.length; index++) {
        raw.transaction(() => {
          raw.exec(migrations[index]!);
          setVersion.run(seam, index + 1);
        })();
      }
    },
    get closed() {
      return closed;
    },
    write<T>(fn: (tx: SqliteTransaction) => T): Promise<T> {
      if (closed) return Promise.reject(closedError());
      return new Promise<T>((resolve, reject) => {
        pending.push({ fn, resolve: resolve as (value: unknown) => void, reject });
        flushHandle ??= setImmediate(flush);
      });
    },
    read<T>(fn: () => T): Promise<T> {
      if (closed) return Promise.reject(closedError());
      try {
        return Promise.resolve(fn());
      } catch (error) {
        return Promise.reject(raw.open ? error : unavailable('The database is not open', error));
      }
    },
    ping(): Promise<void> {
      if (closed) return Promise.reject(closedError());
      try {
        selectOne.get();
        return Promise.resolve();
      } catch (error) {
        return Promise.reject(unavailable('The database does not answer', error));
      }
    },
    close(): void {
      if (closed) return;
      if (flushHandle !== null) {
        clearImmediate(flushHandle);
        flush();
      }
      closed = true;
      checkpointer?.postMessage('close' satisfies CheckpointerMessage);
      checkpointer = null;
      statements.clear();
      raw.close();
    },
  };
}
