/**
 * The SQLite store's usage roll-ups (SPEC §10): one row per namespace, day, model and
 * conversation, and one per namespace and period (`d:YYYY-MM-DD`, `m:YYYY-MM`) for budgets, both
 * added to inside the write that completes a generation, so a task's usage is counted exactly
 * when its reply is stored. Reads sum rows of the roll-ups, never tasks.
 */
import type { SqliteDatabase } from '../backends/sqlite/sqlite-database.js';
import { toNanoUsd } from '../shared/llm-settings.js';
import {
  type BudgetTotals,
  dayOf,
  type Usage,
  type UsagePeriod,
  type UsageQuery,
  type UsageRow,
  type UsageTotals,
  ZERO_USAGE,
} from './store.js';

export const USAGE_MIGRATION = `
  ALTER TABLE tasks ADD COLUMN options TEXT;
  ALTER TABLE tasks ADD COLUMN client TEXT;

  CREATE TABLE usage_rollups (
    namespace TEXT NOT NULL,
    day TEXT NOT NULL,
    model TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    requests INTEGER NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    total_tokens INTEGER NOT NULL,
    cost_nano_usd INTEGER NOT NULL,
    PRIMARY KEY (namespace, day, model, conversation_id)
  ) WITHOUT ROWID;

  CREATE TABLE usage_totals (
    client TEXT NOT NULL,
    period TEXT NOT NULL,
    requests INTEGER NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    total_tokens INTEGER NOT NULL,
    cost_nano_usd INTEGER NOT NULL,
    PRIMARY KEY (client, period)
  ) WITHOUT ROWID;
`;

interface TotalsRow {
  requests: number;
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  cost_nano_usd: number;
}

const COLUMN_OF = { day: 'day', model: 'model', conversation: 'conversation_id' } as const;

function totals(row: TotalsRow | undefined): UsageTotals {
  if (row === undefined) return { ...ZERO_USAGE };
  return {
    requests: row.requests,
    promptTokens: row.prompt_tokens,
    completionTokens: row.completion_tokens,
    totalTokens: row.total_tokens,
    costNanoUsd: row.cost_nano_usd,
  };
}

export interface SqliteUsage {
  /** Adds one completed generation; call inside the `db.write` that stores it. */
  add(
    namespace: string,
    client: string,
    conversationId: string,
    model: string,
    usage: Usage | null,
    completedAt: string,
  ): void;
  query(namespace: string, query: UsageQuery): Promise<UsageRow[]>;
  total(client: string, period: UsagePeriod): Promise<BudgetTotals>;
}

export function createSqliteUsage(db: SqliteDatabase): SqliteUsage {
  const upsertRollup = db.prepare(
    `INSERT INTO usage_rollups (namespace, day, model, conversation_id, requests, prompt_tokens,
       completion_tokens, total_tokens, cost_nano_usd) VALUES (?, ?, ?, ?, 1, ?, ?, ?, ?)
     ON CONFLICT (namespace, day, model, conversation_id) DO UPDATE SET
       requests = requests + 1, prompt_tokens = prompt_tokens + excluded.prompt_tokens,
       completion_tokens = completion_tokens + excluded.completion_tokens,
       total_tokens = total_tokens + excluded.total_tokens,
       cost_nano_usd = cost_nano_usd + excluded.cost_nano_usd`,
  );
  const upsertTotal = db.prepare(
    `INSERT INTO usage_totals (client, period, requests, prompt_tokens, completion_tokens,
       total_tokens, cost_nano_usd) VALUES (?, ?, 1, ?, ?, ?, ?)
     ON CONFLICT (client, period) DO UPDATE SET
       requests = requests + 1, prompt_tokens = prompt_tokens + excluded.prompt_tokens,
       completion_tokens = completion_tokens + excluded.completion_tokens,
       total_tokens = total_tokens + excluded.total_tokens,
       cost_nano_usd = cost_nano_usd + excluded.cost_nano_usd`,
  );
  const selectTotal = db.prepare<TotalsRow>(
    `SELECT requests, prompt_tokens, completion_tokens, total_tokens, cost_nano_usd
     FROM usage_totals WHERE client = ? AND period = ?`,
  );
  const selectGrouped = Object.fromEntries(
    Object.entries(COLUMN_OF).map(([group, column]) => [
      group,
      db.prepare<TotalsRow & { key: string }>(
        `SELECT ${column} AS key, SUM(requests) AS requests, SUM(prompt_tokens) AS prompt_tokens,
           SUM(completion_tokens) AS completion_tokens, SUM(total_tokens) AS total_tokens,
           SUM(cost_nano_usd) AS cost_nano_usd
         FROM usage_rollups WHERE namespace = ? AND day >= ? AND day <= ?
         GROUP BY ${column} ORDER BY ${column}`,
      ),
    ]),
  ) as Record<UsageQuery['groupBy'], ReturnType<typeof db.prepare<TotalsRow & { key: string }>>>;

  return {
    add(namespace, client, conversationId, model, usage, completedAt) {
      const day = dayOf(completedAt);
      const prompt = usage?.prompt_tokens ?? 0;
      const completion = usage?.completion_tokens ?? 0;
      const total = usage?.total_tokens ?? 0;
      const cost = usage?.cost === undefined ? 0 : toNanoUsd(usage.cost);
      upsertRollup.run(namespace, day, model, conversationId, prompt, completion, total, cost);
      upsertTotal.run(client, `d:${day}`, prompt, completion, total, cost);
      upsertTotal.run(client, `m:${day.slice(0, 7)}`, prompt, completion, total, cost);
    },
    query(namespace, query) {
      return db.read(() =>
        selectGrouped[query.groupBy]
          .all(namespace, query.sinceDay, query.untilDay)
          .map((row) => ({ key: row.key, ...totals(row) })),
      );
    },
    total(client, period) {
      const key = period.unit === 'day' ? `d:${period.day}` : `m:${period.month}`;
      return db.read((): BudgetTotals => {
        const { totalTokens, costNanoUsd } = totals(selectTotal.get(client, key));
        return { totalTokens, costNanoUsd };
      });
    },
  };
}
