import { describe, expect, it } from 'vitest';
import { fromNanoUsd, parseBudget, parsePrices, toNanoUsd } from './llm-settings.js';

describe('parsePrices', () => {
  it('reads model=input/output entries, model names with / and :', () => {
    expect(parsePrices('')).toEqual(new Map());
    expect(parsePrices('openai/gpt-4o=2.5/10, meta/llama:free=0/0')).toEqual(
      new Map([
        ['openai/gpt-4o', { inputPerMillion: 2.5, outputPerMillion: 10 }],
        ['meta/llama:free', { inputPerMillion: 0, outputPerMillion: 0 }],
      ]),
    );
    for (const bad of ['gpt', 'gpt=1', '=1/2', 'gpt=1/x']) expect(parsePrices(bad), bad).toBeNull();
  });
});

describe('parseBudget', () => {
  it('reads N tokens|usd per day|month, none when empty', () => {
    expect(parseBudget('')).toBeNull();
    expect(parseBudget('200000 tokens/day')).toEqual({
      amount: 200_000,
      unit: 'tokens',
      period: 'day',
      label: '200000 tokens/day',
    });
    expect(parseBudget('5 USD/month')).toMatchObject({ amount: 5, unit: 'usd', period: 'month' });
    for (const bad of ['5', '0 tokens/day', '5 tokens/week', 'lots usd/day'])
      expect(parseBudget(bad), bad).toBeUndefined();
  });
});

describe('nano-USD', () => {
  it('rounds to 10⁻⁹ USD and back', () => {
    expect(toNanoUsd(0.000_015)).toBe(15_000);
    expect(fromNanoUsd(toNanoUsd(0.1 + 0.2))).toBe(0.3);
  });
});
