import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { openSqliteDatabase } from '../backends/sqlite/sqlite-database.js';
import { waitFor } from '../dev/harness.js';
import { createSqliteStore, STORE_MIGRATIONS } from '../store/sqlite-store.js';
import { defineJobQueueContractTests } from './job-queue.contract.js';
import type { Job } from './job-queue.js';
import { createSqliteJobQueue, QUEUE_MIGRATIONS } from './sqlite-job-queue.js';

const dir = mkdtempSync(join(tmpdir(), 'sqlite-job-queue-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

defineJobQueueContractTests('sqlite', async () => {
  const path = join(dir, `${randomUUID()}.sqlite`);
  let db = openSqliteDatabase({ path });
  let queue = createSqliteJobQueue(db);
  return {
    queue,
    reopen: async () => {
      await queue.close({ timeoutMs: 0 });
      db.close();
      db = openSqliteDatabase({ path });
      queue = createSqliteJobQueue(db);
      return queue;
    },
    cleanup: async () => {
      await queue.close({ timeoutMs: 0 });
      db.close();
    },
  };
});

/** The whole schema of the first layout (`user_version` 1): the first version of each seam's tables. */
const FIRST_LAYOUT = `${STORE_MIGRATIONS[0]}\n${QUEUE_MIGRATIONS[0]}`;

describe('createSqliteJobQueue', () => {
  it('opens a file of the first layout: its tables are kept, its jobs run, deliveries first', async () => {
    const path = join(dir, `${randomUUID()}.sqlite`);
    const legacy = new Database(path);
    legacy.exec(FIRST_LAYOUT);
    const insert = legacy.prepare(
      'INSERT INTO jobs (id, name, task_id, grp, attempt, run_at_ms) VALUES (?, ?, ?, ?, 1, 0)',
    );
    insert.run('t1', 'generate', 't1', 'conversation');
    insert.run('deliver:t0', 'deliver', 't0', null);
    legacy.pragma('user_version = 1');
    legacy.close();

    const db = openSqliteDatabase({ path });
    const store = createSqliteStore(db, {
      historyMaxMessages: 20,
      historyTtlSeconds: 60,
      taskRetentionSeconds: 60,
    });
    const queue = createSqliteJobQueue(db);
    const versions = db
      .prepare<{ seam: string; version: number }>('SELECT * FROM schema_versions ORDER BY seam')
      .all();
    expect(versions).toEqual([
      { seam: 'queue', version: QUEUE_MIGRATIONS.length },
      { seam: 'store', version: STORE_MIGRATIONS.length },
    ]);
    const order: string[] = [];
    queue.consume(
      async (job) => {
        order.push(job.id);
        return { type: 'done' };
      },
      { concurrency: 1 },
    );
    await waitFor(() => order.length === 2, 'both jobs');
    expect(order).toEqual(['deliver:t0', 't1']);
    expect(await store.getTaskById('t0')).toBeNull();
    await queue.close({ timeoutMs: 0 });
    await store.close();
    db.close();
  });

  it('upgrades a file of the third queue schema: no index on job ids, jobs kept, an id still queued not added twice', async () => {
    const path = join(dir, `${randomUUID()}.sqlite`);
    const old = openSqliteDatabase({ path });
    old.migrate('queue', QUEUE_MIGRATIONS.slice(0, 3));
    await old.write(() => {
      const insert = old.prepare(
        `INSERT INTO jobs (id, name, task_id, grp, priority, attempt, run_at_ms, active) VALUES (?, 'generate', ?, 'g', 'normal', ?, 0, ?)`,
      );
      insert.run('a', 'ta', 2, 1);
      insert.run('b', 'tb', 1, 0);
    });
    const indexesOf = (db: { prepare: typeof old.prepare }): string[] =>
      db
        .prepare<{ name: string }>(`SELECT name FROM pragma_index_list('jobs')`)
        .all()
        .map((row) => row.name);
    expect(indexesOf(old)).toHaveLength(1);
    old.close();

    const db = openSqliteDatabase({ path });
    const queue = createSqliteJobQueue(db);
    expect(indexesOf(db)).toEqual([]);
    expect(await queue.enqueue({ id: 'b', name: 'generate', taskId: 'tb', group: 'g' })).toBe(false);
    const release = { open: (): void => {} };
    const held = new Promise<void>((resolve) => {
      release.open = resolve;
    });
    const runs: Job[] = [];
    queue.consume(
      async (job) => {
        runs.push(job);
        if (job.id === 'b' && runs.length === 2) await held;
        return { type: 'done' };
      },
      { concurrency: 1 },
    );
    // The row marked active in the old file runs again first, with attempt + 1; then the next.
    await waitFor(() => runs.length === 2, 'both jobs');
    expect(runs.map((job) => [job.id, job.attempt])).toEqual([
      ['a', 3],
      ['b', 1],
    ]);
    // While it runs its id is taken; once it has ended, the id can be used again.
    expect(await queue.enqueue({ id: 'b', name: 'generate', taskId: 'tb', group: 'g' })).toBe(false);
    release.open();
    await waitFor(
      () => db.prepare<{ n: number }>(`SELECT count(*) AS n FROM jobs`).get()!.n === 0,
      'the rows deleted',
    );
    expect(await queue.enqueue({ id: 'b', name: 'generate', taskId: 'tb', group: 'g' })).toBe(true);
    await waitFor(() => runs.length === 3, 'the job added again');
    await queue.close({ timeoutMs: 1000 });
    db.close();
  });

  it('runs again, with attempt + 1, a job whose process died mid-run, and keeps retry state', async () => {
    const path = join(dir, `${randomUUID()}.sqlite`);
    const db = openSqliteDatabase({ path });
    const queue = createSqliteJobQueue(db);
    const started: Job[] = [];
    queue.consume(
      async (job) => {
        started.push(job);
        if (job.id === 'retrying') return { type: 'retry', delayMs: 60_000 };
        return new Promise(() => {});
      },
      { concurrency: 2 },
    );
    await queue.enqueue({ id: 'retrying', name: 'deliver', taskId: 't1' });
    await queue.enqueue({ id: 'hung', name: 'generate', taskId: 't2', group: 'g' });
    await waitFor(() => started.length === 2, 'both jobs to start');
    await waitFor(
      () => db.prepare<{ n: number }>('SELECT count(*) AS n FROM jobs WHERE active = 1').get()!.n === 1,
      'the running job to be marked active and the retry recorded',
    );
    // As a SIGKILL would: the file is left as it is, the queue never closed.
    db.close();

    const reopened = openSqliteDatabase({ path });
    const again = createSqliteJobQueue(reopened);
    expect(await again.counts()).toEqual({ waiting: 1, active: 0, delayed: 1 });
    const runs: Job[] = [];
    again.consume(
      async (job) => {
        runs.push(job);
        return { type: 'done' };
      },
      { concurrency: 2 },
    );
    await waitFor(() => runs.length === 1, 'the interrupted job');
    expect(runs[0]).toEqual({
      id: 'hung',
      name: 'generate',
      taskId: 't2',
      group: 'g',
      attempt: 2,
      trace: null,
      yieldSlot: expect.any(Function),
    });
    expect(await again.counts()).toEqual({ waiting: 0, active: 0, delayed: 1 });
    await again.close({ timeoutMs: 1000 });
    const rows = reopened.prepare<{ id: string; attempt: number }>('SELECT id, attempt FROM jobs').all();
    expect(rows).toEqual([{ id: 'retrying', attempt: 2 }]);
    reopened.close();
  });

  it('marks a job active only when it outlives its batch, and deletes every finished job', async () => {
    const db = openSqliteDatabase({ path: join(dir, `${randomUUID()}.sqlite`) });
    const queue = createSqliteJobQueue(db);
    // Records every statement that sets a job's active mark, as the queue's writes reach the table.
    db.prepare('CREATE TEMP TABLE marks (id TEXT)').run();
    db.prepare(
      `CREATE TEMP TRIGGER record_marks AFTER UPDATE OF active ON main.jobs WHEN NEW.active = 1
       BEGIN INSERT INTO marks (id) VALUES (NEW.id); END`,
    ).run();
    let release: () => void = () => {};
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    const finished: string[] = [];
    queue.consume(
      async (job) => {
        if (job.id === 'slow') await released;
        finished.push(job.id);
        return { type: 'done' };
      },
      { concurrency: 10 },
    );
    await Promise.all([
      queue.enqueue({ id: 'quick-1', name: 'generate', taskId: 't1' }),
      queue.enqueue({ id: 'quick-2', name: 'deliver', taskId: 't2' }),
      queue.enqueue({ id: 'slow', name: 'generate', taskId: 't3' }),
    ]);
    const marked = (): string[] =>
      db
        .prepare<{ id: string }>('SELECT id FROM marks ORDER BY id')
        .all()
        .map((row) => row.id);
    await waitFor(() => marked().length > 0, 'the slow job to be marked active');
    expect(finished.sort()).toEqual(['quick-1', 'quick-2']);
    expect(marked()).toEqual(['slow']);
    release();
    await waitFor(() => finished.length === 3, 'the slow job to finish');
    await queue.close({ timeoutMs: 1000 });
    expect(db.prepare<{ n: number }>('SELECT count(*) AS n FROM jobs').get()!.n).toBe(0);
    expect(marked()).toEqual(['slow']);
    db.close();
  });

  it('rejects enqueue once its database is closed', async () => {
    const db = openSqliteDatabase({ path: ':memory:' });
    const queue = createSqliteJobQueue(db);
    await queue.close();
    db.close();
    await expect(queue.enqueue({ id: 'x', name: 'generate', taskId: 't' })).rejects.toThrow(/closed/);
    await expect(queue.ping()).rejects.toThrow(/closed/);
  });
});
