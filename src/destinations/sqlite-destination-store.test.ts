import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openSqliteDatabase } from '../backends/sqlite/sqlite-database.js';
import { defineDestinationStoreContractTests } from './destination-store.contract.js';
import { createSqliteDestinationStore } from './sqlite-destination-store.js';

defineDestinationStoreContractTests('sqlite', () =>
  createSqliteDestinationStore(openSqliteDatabase({ path: ':memory:' })),
);

describe('sqlite destinations', () => {
  const dir = mkdtempSync(join(tmpdir(), 'destinations-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('keep the breaker, the last error and the held deliveries across a reopen of the file', async () => {
    const path = join(dir, 'llm-webhook.db');
    const ref = { namespace: '', destination: 'https://receiver.example:443' };
    const now = Date.now();
    const db = openSqliteDatabase({ path });
    const store = createSqliteDestinationStore(db);
    const { record } = await store.recordOutcome(ref, false, 'HTTP 503', now, 60_000);
    const open = {
      state: 'open',
      untilMs: now + 30_000,
      cooldownMs: 30_000,
      version: record.version + 1,
      changedAtMs: now,
    } as const;
    expect(await store.transition(ref, record.version, open)).toBe(true);
    await store.hold(ref, 'deliver:t1', now);
    db.close();

    const reopened = createSqliteDestinationStore(openSqliteDatabase({ path }));
    expect(await reopened.get(ref)).toEqual(open);
    const [view] = await reopened.list('', now, 60_000);
    expect(view).toMatchObject({ destination: ref.destination, held: 1, lastError: 'HTTP 503' });
  });
});
