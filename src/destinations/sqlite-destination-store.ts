/**
 * The embedded mode's destinations, in the SQLite file: the breaker record, the last error and
 * the held deliveries are rows, so they survive a restart. The window of recent outcomes is kept
 * in memory only: one process owns the file, a healthy delivery costs no write, and after a
 * restart the window starts empty (the breaker's state does not).
 *
 * Bounded: windows with nothing left in them are dropped every `SWEEP_EVERY` outcomes, and a
 * closed destination that held nothing and did not change for `idleMs` is forgotten (its row is
 * written again by its next outcome).
 */
import type { SqliteDatabase } from '../backends/sqlite/sqlite-database.js';
import { type BreakerRecord, bucketOf, CLOSED, type OutcomeWindow, oldestBucket } from './breaker.js';
import type { DestinationRef, DestinationStore, DestinationView } from './destination-store.js';

export const DESTINATION_MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE destinations (
    namespace TEXT NOT NULL,
    destination TEXT NOT NULL,
    state TEXT NOT NULL,
    until_ms INTEGER NOT NULL,
    cooldown_ms INTEGER NOT NULL,
    version INTEGER NOT NULL,
    changed_at_ms INTEGER NOT NULL,
    last_error TEXT,
    PRIMARY KEY (namespace, destination)
  );
  CREATE TABLE held_deliveries (
    namespace TEXT NOT NULL,
    destination TEXT NOT NULL,
    job_id TEXT NOT NULL,
    since_ms INTEGER NOT NULL,
    PRIMARY KEY (namespace, destination, job_id)
  );
  `,
];

interface DestinationRow {
  namespace: string;
  destination: string;
  state: BreakerRecord['state'];
  until_ms: number;
  cooldown_ms: number;
  version: number;
  changed_at_ms: number;
  last_error: string | null;
}

const toRecord = (row: DestinationRow): BreakerRecord => ({
  state: row.state,
  untilMs: row.until_ms,
  cooldownMs: row.cooldown_ms,
  version: row.version,
  changedAtMs: row.changed_at_ms,
});

/** Bucket → counts, per destination. */
type Buckets = Map<number, OutcomeWindow>;

/** Outcomes between two sweeps of the in-memory windows. */
const SWEEP_EVERY = 10_000;

export interface SqliteDestinationStoreOptions {
  /** A closed destination unchanged this long is forgotten (default 7 days). */
  idleMs?: number;
}

export function createSqliteDestinationStore(
  db: SqliteDatabase,
  options: SqliteDestinationStoreOptions = {},
): DestinationStore {
  db.migrate('destinations', DESTINATION_MIGRATIONS);
  const idleMs = options.idleMs ?? 7 * 86_400_000;
  const forgetIdle = db.prepare(
    `DELETE FROM destinations WHERE state = 'closed' AND changed_at_ms < ? AND NOT EXISTS
     (SELECT 1 FROM held_deliveries h WHERE h.namespace = destinations.namespace AND h.destination = destinations.destination)`,
  );
  const selectOne = db.prepare<DestinationRow>(
    'SELECT * FROM destinations WHERE namespace = ? AND destination = ?',
  );
  const selectAll = db.prepare<DestinationRow>(
    'SELECT * FROM destinations WHERE namespace = ? ORDER BY destination',
  );
  const insertNew = db.prepare(
    `INSERT OR IGNORE INTO destinations (namespace, destination, state, until_ms, cooldown_ms, version, changed_at_ms)
     VALUES (?, ?, 'closed', 0, 0, 0, ?)`,
  );
  const closeBreaker = db.prepare(
    `UPDATE destinations SET state = 'closed', until_ms = 0, cooldown_ms = 0, version = version + 1,
     changed_at_ms = ? WHERE namespace = ? AND destination = ?`,
  );
  const updateError = db.prepare(
    'UPDATE destinations SET last_error = ? WHERE namespace = ? AND destination = ?',
  );
  const compareAndSet = db.prepare(
    `UPDATE destinations SET state = ?, until_ms = ?, cooldown_ms = ?, version = ?, changed_at_ms = ?
     WHERE namespace = ? AND destination = ? AND version = ?`,
  );
  const insertHeld = db.prepare(
    'INSERT OR IGNORE INTO held_deliveries (namespace, destination, job_id, since_ms) VALUES (?, ?, ?, ?)',
  );
  const olderHeld = db.prepare<{ older: number }>(
    `SELECT count(*) AS older FROM held_deliveries WHERE namespace = ? AND destination = ?
     AND since_ms < (SELECT since_ms FROM held_deliveries WHERE namespace = ? AND destination = ? AND job_id = ?)`,
  );
  const deleteHeld = db.prepare(
    'DELETE FROM held_deliveries WHERE namespace = ? AND destination = ? AND job_id = ?',
  );
  const deleteAllHeld = db.prepare('DELETE FROM held_deliveries WHERE namespace = ? AND destination = ?');
  const countHeld = db.prepare<{ destination: string; held: number }>(
    'SELECT destination, count(*) AS held FROM held_deliveries WHERE namespace = ? GROUP BY destination',
  );

  const windows = new Map<string, Buckets>();
  let outcomesSinceSweep = 0;
  const keyOf = (ref: DestinationRef): string => `${ref.namespace}\u0000${ref.destination}`;

  const windowOf = (key: string, nowMs: number, windowMs: number): OutcomeWindow => {
    const buckets = windows.get(key);
    const total = { ok: 0, failed: 0 };
    if (buckets === undefined) return total;
    const oldest = oldestBucket(nowMs, windowMs);
    for (const [bucket, counts] of buckets) {
      if (bucket < oldest) {
        buckets.delete(bucket);
        continue;
      }
      total.ok += counts.ok;
      total.failed += counts.failed;
    }
    if (buckets.size === 0) windows.delete(key);
    return total;
  };

  const get = (ref: DestinationRef): BreakerRecord => {
    const row = selectOne.get(ref.namespace, ref.destination);
    return row === undefined ? CLOSED : toRecord(row);
  };

  return {
    get: (ref) => db.read(() => get(ref)),

    async recordOutcome(ref, ok, error, nowMs, windowMs, extraOk = 0) {
      outcomesSinceSweep += 1;
      if (outcomesSinceSweep >= SWEEP_EVERY) {
        outcomesSinceSweep = 0;
        for (const key of [...windows.keys()]) windowOf(key, nowMs, windowMs);
        await db.write(() => forgetIdle.run(nowMs - idleMs));
      }
      const key = keyOf(ref);
      const bucket = bucketOf(nowMs, windowMs);
      const buckets = windows.get(key) ?? new Map<number, OutcomeWindow>();
      windows.set(key, buckets);
      const counts = buckets.get(bucket) ?? { ok: 0, failed: 0 };
      if (ok) counts.ok++;
      else counts.failed++;
      counts.ok += Math.max(0, Math.floor(extraOk));
      buckets.set(bucket, counts);
      const window = windowOf(key, nowMs, windowMs);
      // A success writes nothing once the destination is known; a failure keeps its error.
      const known = selectOne.get(ref.namespace, ref.destination);
      if (known === undefined || !ok) {
        await db.write(() => {
          insertNew.run(ref.namespace, ref.destination, nowMs);
          if (!ok) updateError.run(error, ref.namespace, ref.destination);
        });
      }
      return { record: await db.read(() => get(ref)), window };
    },

    transition: (ref, expectedVersion, next) =>
      db.write(() => {
        insertNew.run(ref.namespace, ref.destination, next.changedAtMs);
        const result = compareAndSet.run(
          next.state,
          next.untilMs,
          next.cooldownMs,
          next.version,
          next.changedAtMs,
          ref.namespace,
          ref.destination,
          expectedVersion,
        );
        return result.changes === 1;
      }),

    hold: (ref, jobId, sinceMs) =>
      db.write(() => {
        insertHeld.run(ref.namespace, ref.destination, jobId, sinceMs);
        return (
          olderHeld.get(ref.namespace, ref.destination, ref.namespace, ref.destination, jobId)?.older ?? 0
        );
      }),

    unhold: (ref, jobId) =>
      db.write(() => {
        deleteHeld.run(ref.namespace, ref.destination, jobId);
      }),

    releaseHeld: (ref) =>
      db.write(() => {
        deleteAllHeld.run(ref.namespace, ref.destination);
      }),

    list: (namespace, nowMs, windowMs) =>
      db.read(() => {
        const held = new Map(countHeld.all(namespace).map((row) => [row.destination, row.held]));
        return selectAll.all(namespace).map(
          (row): DestinationView => ({
            namespace,
            destination: row.destination,
            record: toRecord(row),
            window: windowOf(keyOf({ namespace, destination: row.destination }), nowMs, windowMs),
            held: held.get(row.destination) ?? 0,
            lastError: row.last_error,
          }),
        );
      }),

    async reset(ref, nowMs) {
      const changed = await db.write(() => {
        deleteAllHeld.run(ref.namespace, ref.destination);
        return closeBreaker.run(nowMs, ref.namespace, ref.destination).changes;
      });
      if (changed === 0) return false;
      windows.delete(keyOf(ref));
      return true;
    },
  };
}
