/**
 * The cost of a completion (SPEC §10): the provider's own `usage.cost` when it sent one, else
 * `LLM_PRICES` for the model that answered (or the one asked for), else none. Kept to 10⁻⁹ USD,
 * the unit the usage roll-ups sum in, so the roll-ups equal the sum of what callbacks show.
 */
import { fromNanoUsd, type Prices, toNanoUsd } from '../shared/llm-settings.js';
import type { Usage } from '../store/store.js';

export function withCost(usage: Usage | null, models: readonly string[], prices: Prices): Usage | null {
  if (usage === null) return null;
  if (usage.cost !== undefined) return { ...usage, cost: fromNanoUsd(toNanoUsd(usage.cost)) };
  for (const model of models) {
    const price = prices.get(model);
    if (price === undefined) continue;
    const usd =
      (usage.prompt_tokens * price.inputPerMillion + usage.completion_tokens * price.outputPerMillion) /
      1_000_000;
    return { ...usage, cost: fromNanoUsd(toNanoUsd(usd)) };
  }
  return usage;
}
