/**
 * The forms of the LLM-side settings of SPEC §10, parsed from their text (config.ts reads the
 * variables): `LLM_PRICES` and `CLIENT_BUDGET`. Pure; the types are shared by the routes, the
 * jobs and the store.
 */

/** USD per million tokens, for the prompt (input) and for the reply (output). */
export interface ModelPrice {
  inputPerMillion: number;
  outputPerMillion: number;
}

export type Prices = ReadonlyMap<string, ModelPrice>;

export type BudgetUnit = 'tokens' | 'usd';
export type BudgetPeriod = 'day' | 'month';

/** A client's allowance per calendar period (UTC). */
export interface Budget {
  amount: number;
  unit: BudgetUnit;
  period: BudgetPeriod;
  /** As written, for the 429's `detail`: `1000 tokens/day`. */
  label: string;
}

const NUMBER = '(\\d+(?:\\.\\d+)?)';

/**
 * `model=input/output,...` (USD per million prompt and reply tokens), such as
 * `openai/gpt-4o=2.5/10,openai/gpt-4o-mini=0.15/0.6`; an empty text is no prices. `null` when
 * malformed. A model name may hold `/` and `:`; the price is what follows the last `=`.
 */
export function parsePrices(text: string): Map<string, ModelPrice> | null {
  const prices = new Map<string, ModelPrice>();
  const pattern = new RegExp(`^(.+)=${NUMBER}/${NUMBER}$`);
  for (const part of text.split(',')) {
    const entry = part.trim();
    if (entry === '') continue;
    const match = pattern.exec(entry);
    if (match === null || match[1]!.trim() === '') return null;
    prices.set(match[1]!.trim(), {
      inputPerMillion: Number(match[2]),
      outputPerMillion: Number(match[3]),
    });
  }
  return prices;
}

/** `N tokens/day`, `N tokens/month`, `N usd/day`, `N usd/month`; empty or `off` is none (`null`); `undefined` when malformed. */
export function parseBudget(text: string): Budget | null | undefined {
  const trimmed = text.trim().toLowerCase();
  if (trimmed === '' || trimmed === 'off') return null;
  const match = new RegExp(`^${NUMBER}\\s*(tokens?|usd|\\$)\\s*/\\s*(day|month)$`).exec(trimmed);
  if (match === null) return undefined;
  const amount = Number(match[1]);
  if (!(amount > 0)) return undefined;
  const unit: BudgetUnit = match[2]!.startsWith('token') ? 'tokens' : 'usd';
  const period = match[3] as BudgetPeriod;
  return { amount, unit, period, label: `${match[1]} ${unit}/${period}` };
}

/** Nano-USD: costs are kept as integers of 10⁻⁹ USD, so sums are exact. */
export const NANO_USD_PER_USD = 1_000_000_000;

export function toNanoUsd(usd: number): number {
  return Math.round(usd * NANO_USD_PER_USD);
}

export function fromNanoUsd(nano: number): number {
  return nano / NANO_USD_PER_USD;
}
