import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BackendUnavailableError } from '../../shared/errors.js';
import {
  type OpenSqliteDatabaseOptions,
  openSqliteDatabase,
  type SqliteDatabase,
} from './sqlite-database.js';

const dir = mkdtempSync(join(tmpdir(), 'sqlite-database-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A table for the writes of these tests to go to, migrated as a seam's driver would. */
const KEYS_TABLE = `CREATE TABLE idempotency_keys (
  key TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, task_id TEXT NOT NULL, expires_at_ms INTEGER NOT NULL
)`;

function openWithKeysTable(options: OpenSqliteDatabaseOptions): SqliteDatabase {
  const db = openSqliteDatabase(options);
  db.migrate('test', [KEYS_TABLE]);
  return db;
}

describe('openSqliteDatabase', () => {
  it('creates the parent directory, runs in WAL mode and migrates once', () => {
    const path = join(dir, 'nested', 'a', 'db.sqlite');
    const db = openSqliteDatabase({ path });
    const mode = db.prepare<{ journal_mode: string }>('PRAGMA journal_mode').get();
    const version = db.prepare<{ user_version: number }>('PRAGMA user_version').get();
    expect(mode?.journal_mode).toBe('wal');
    expect(version?.user_version).toBeGreaterThan(0);
    db.close();
    const again = openSqliteDatabase({ path });
    expect(again.prepare<{ user_version: number }>('PRAGMA user_version').get()).toEqual(version);
    again.close();
  });

  it('syncs at checkpoints by default (survives the process) and at every commit when asked', () => {
    const level = (syncEveryCommit?: boolean): number | undefined => {
      const db = openSqliteDatabase({
        path: join(dir, `sync-${String(syncEveryCommit)}.sqlite`),
        ...(syncEveryCommit === undefined ? {} : { syncEveryCommit }),
      });
      const value = db.prepare<{ synchronous: number }>('PRAGMA synchronous').get()?.synchronous;
      db.close();
      return value;
    };
    // SQLite's codes: 1 NORMAL, 2 FULL.
    expect(level()).toBe(1);
    expect(level(false)).toBe(1);
    expect(level(true)).toBe(2);
  });

  it('fails only the write that threw among the writes of one tick', async () => {
    const db = openWithKeysTable({ path: ':memory:' });
    const insert = db.prepare(
      'INSERT INTO idempotency_keys (key, fingerprint, task_id, expires_at_ms) VALUES (?, ?, ?, 0)',
    );
    const results = await Promise.allSettled([
      db.write(() => insert.run('a', 'f', 't1').changes),
      db.write(() => {
        insert.run('b', 'f', 't2');
        throw new Error('boom');
      }),
      db.write(() => insert.run('c', 'f', 't3').changes),
      // A constraint violation fails this write only.
      db.write(() => insert.run('a', 'f', 't4')),
    ]);
    expect(results.map((result) => result.status)).toEqual([
      'fulfilled',
      'rejected',
      'fulfilled',
      'rejected',
    ]);
    expect((results[1] as PromiseRejectedResult).reason).toBeInstanceOf(Error);
    const keys = db.prepare<{ key: string }>('SELECT key FROM idempotency_keys ORDER BY key').all();
    expect(keys.map((row) => row.key)).toEqual(['a', 'c']);
    db.close();
  });

  it('keeps committed writes across close and reopen, and commits pending writes on close', async () => {
    const path = join(dir, 'durable.sqlite');
    const db = openWithKeysTable({ path });
    const insert = db.prepare(
      'INSERT INTO idempotency_keys (key, fingerprint, task_id, expires_at_ms) VALUES (?, ?, ?, 0)',
    );
    await db.write(() => insert.run('committed', 'f', 't'));
    const late = db.write(() => insert.run('pending', 'f', 't'));
    db.close();
    await expect(late).resolves.toMatchObject({ changes: 1 });
    const reopened = openWithKeysTable({ path });
    const keys = reopened.prepare<{ key: string }>('SELECT key FROM idempotency_keys ORDER BY key').all();
    expect(keys.map((row) => row.key)).toEqual(['committed', 'pending']);
    reopened.close();
  });

  it('checkpoints from a background thread once busy, so the database file alone holds the commits', async () => {
    const rowsInFileAlone = async (backgroundCheckpoints: boolean) => {
      const path = join(dir, `checkpoint-${String(backgroundCheckpoints)}.sqlite`);
      const db = openWithKeysTable({ path, backgroundCheckpoints });
      const insert = db.prepare(
        `INSERT INTO idempotency_keys (key, fingerprint, task_id, expires_at_ms) VALUES (?, 'f', 't', 0)`,
      );
      // One commit per write: past the point where checkpoints move to the thread.
      for (let index = 0; index < 100; index++) await db.write(() => insert.run(`key-${index}`));
      const autocheckpoint = () =>
        db.prepare<{ wal_autocheckpoint: number }>('PRAGMA wal_autocheckpoint').get()?.wal_autocheckpoint;
      // Give the thread time to start and run a checkpoint or two.
      for (let waited = 0; waited < 5000 && backgroundCheckpoints && autocheckpoint() !== 0; waited += 50) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      await new Promise((resolve) => setTimeout(resolve, 400));
      const setting = autocheckpoint();
      // The database file without its write-ahead log: only what a checkpoint copied there.
      const copy = join(dir, `copy-${String(backgroundCheckpoints)}.sqlite`);
      copyFileSync(path, copy);
      const copied = openWithKeysTable({ path: copy, backgroundCheckpoints: false });
      const count = copied.prepare<{ n: number }>('SELECT count(*) AS n FROM idempotency_keys').get()?.n;
      copied.close();
      db.close();
      return { setting, count };
    };
    // SQLite alone checkpoints only past 1,000 pages of log: these rows are still in the log.
    expect(await rowsInFileAlone(false)).toEqual({ setting: 1000, count: 0 });
    // The thread took over (the writer no longer checkpoints) and copied every commit.
    expect(await rowsInFileAlone(true)).toEqual({ setting: 0, count: 100 });
  });

  it('rejects with BackendUnavailableError once closed', async () => {
    const db = openSqliteDatabase({ path: ':memory:' });
    await expect(db.ping()).resolves.toBeUndefined();
    db.close();
    db.close();
    await expect(db.ping()).rejects.toBeInstanceOf(BackendUnavailableError);
    await expect(db.write(() => 1)).rejects.toBeInstanceOf(BackendUnavailableError);
    await expect(db.read(() => 1)).rejects.toBeInstanceOf(BackendUnavailableError);
  });
});
