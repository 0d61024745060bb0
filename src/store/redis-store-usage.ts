/**
 * The redis store's usage roll-ups (key layout in redis-store.ts): the keys and arguments the
 * completion script adds a generation's usage with, and the reads of `GET /usage` and of budgets,
 * which read one hash per day asked for (or one total), never the tasks.
 */
import type { Redis } from 'ioredis';
import { toNanoUsd } from '../shared/llm-settings.js';
import {
  type BudgetTotals,
  dayOf,
  type Generation,
  USAGE_RETENTION_DAYS,
  type UsagePeriod,
  type UsageQuery,
  type UsageRow,
  ZERO_USAGE,
} from './store.js';

/** Most days one `GET /usage` reads (a little over a year). */
export const USAGE_MAX_DAYS = 366;

const METRICS = {
  r: 'requests',
  p: 'promptTokens',
  c: 'completionTokens',
  t: 'totalTokens',
  n: 'costNanoUsd',
} as const;
type Metric = keyof typeof METRICS;

function isMetric(letter: string): letter is Metric {
  return letter in METRICS;
}

/** The days from `since` to `until` (`YYYY-MM-DD`, both included), at most `USAGE_MAX_DAYS`. */
export function daysBetween(since: string, until: string): string[] {
  const days: string[] = [];
  const end = Date.parse(`${until}T00:00:00Z`);
  for (
    let ms = Date.parse(`${since}T00:00:00Z`);
    ms <= end && days.length < USAGE_MAX_DAYS;
    ms += 86_400_000
  ) {
    days.push(new Date(ms).toISOString().slice(0, 10));
  }
  return days;
}

export interface RedisUsage {
  /** The three roll-up keys and the arguments `llmwStoreComplete` takes after its own. */
  rollupOf(
    namespace: string,
    client: string,
    conversationId: string,
    generation: Generation,
  ): { keys: string[]; args: Array<string | number> };
  query(namespace: string, query: UsageQuery): Promise<UsageRow[]>;
  total(client: string, period: UsagePeriod): Promise<BudgetTotals>;
}

export function createRedisUsage(client: Redis, prefix: string): RedisUsage {
  const dayKey = (namespace: string, day: string): string => `${prefix}usage:${namespace}:${day}`;
  const totalKey = (charged: string, period: string): string => `${prefix}usage-total:${charged}:${period}`;

  return {
    rollupOf(namespace, charged, conversationId, generation) {
      const day = dayOf(generation.completedAt);
      const usage = generation.usage;
      return {
        keys: [
          dayKey(namespace, day),
          totalKey(charged, `d:${day}`),
          totalKey(charged, `m:${day.slice(0, 7)}`),
        ],
        args: [
          JSON.stringify([generation.model, conversationId]),
          usage?.prompt_tokens ?? 0,
          usage?.completion_tokens ?? 0,
          usage?.total_tokens ?? 0,
          usage?.cost === undefined ? 0 : toNanoUsd(usage.cost),
          USAGE_RETENTION_DAYS * 86_400,
        ],
      };
    },

    async query(namespace, query) {
      const days = daysBetween(query.sinceDay, query.untilDay);
      const pipeline = client.pipeline();
      for (const day of days) pipeline.hgetall(dayKey(namespace, day));
      const replies = (await pipeline.exec()) ?? [];
      const rows = new Map<string, UsageRow>();
      replies.forEach(([error, value], index) => {
        if (error) throw error;
        for (const [field, amount] of Object.entries(value as Record<string, string>)) {
          const letter = field[0] ?? '';
          if (!isMetric(letter)) continue;
          const [model, conversation] = JSON.parse(field.slice(1)) as [string, string];
          const key =
            query.groupBy === 'day' ? days[index]! : query.groupBy === 'model' ? model : conversation;
          let row = rows.get(key);
          if (row === undefined) {
            row = { key, ...ZERO_USAGE };
            rows.set(key, row);
          }
          row[METRICS[letter]] += Number(amount);
        }
      });
      return [...rows.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    },

    async total(charged, period) {
      const key = totalKey(charged, period.unit === 'day' ? `d:${period.day}` : `m:${period.month}`);
      const [tokens, cost] = await client.hmget(key, 't', 'n');
      return { totalTokens: Number(tokens ?? 0), costNanoUsd: Number(cost ?? 0) };
    },
  };
}
