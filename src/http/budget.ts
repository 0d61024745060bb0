/**
 * `CLIENT_BUDGET` at `POST /webhook` (SPEC §10): a client whose usage in the current UTC day or
 * month, plus an estimate of the new request, would pass its budget is answered `429` with
 * `Retry-After` until the period ends. Usage is read from the store's totals (written with each
 * completed task), so every API process, and a restarted one, sees the same figure.
 *
 * The estimate counts the new message (one token per three characters, shared/token-estimate.ts)
 * and the reply's `max_tokens`, so one huge request cannot slip under a token budget it would
 * blow. Tasks accepted but not yet completed are not counted yet: a burst sent at once can pass a
 * budget by what is in flight. A USD budget refuses once the spend has reached it.
 */
import type { Budget } from '../shared/llm-settings.js';
import { fromNanoUsd } from '../shared/llm-settings.js';
import { estimateTokens } from '../shared/token-estimate.js';
import type { Store, UsagePeriod } from '../store/store.js';

/** The current period of `budget` at `nowMs`, and when it ends (epoch ms). */
export function budgetPeriod(budget: Budget, nowMs: number): { period: UsagePeriod; endsAtMs: number } {
  const now = new Date(nowMs);
  const day = now.toISOString().slice(0, 10);
  if (budget.period === 'day') {
    return {
      period: { unit: 'day', day },
      endsAtMs: Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() + 1),
    };
  }
  return {
    period: { unit: 'month', month: day.slice(0, 7) },
    endsAtMs: Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1),
  };
}

/** Whom a request's usage counts against: its token's namespace, or its address without tokens. */
export function budgetClient(namespace: string, ip: string): string {
  return namespace === '' ? `ip:${ip}` : namespace;
}

/** Seconds until the period ends when `client` is over `budget` with this request; `null` when within it. */
export async function overBudget(
  store: Store,
  budget: Budget,
  client: string,
  request: { message: string; maxTokens?: number | undefined },
  nowMs = Date.now(),
): Promise<number | null> {
  const { period, endsAtMs } = budgetPeriod(budget, nowMs);
  const used = await store.getUsageTotal(client, period);
  const over =
    budget.unit === 'tokens'
      ? used.totalTokens + estimateTokens(request.message) + (request.maxTokens ?? 0) > budget.amount
      : fromNanoUsd(used.costNanoUsd) >= budget.amount;
  return over ? Math.max(1, Math.ceil((endsAtMs - nowMs) / 1000)) : null;
}
