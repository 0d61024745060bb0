import { describe, expect, it } from 'vitest';
import { budgetClient, budgetPeriod } from './budget.js';

describe('budgetPeriod', () => {
  it('is the UTC day or month, ending at the next one', () => {
    const now = Date.UTC(2026, 11, 31, 22, 30);
    expect(budgetPeriod({ amount: 1, unit: 'tokens', period: 'day', label: '' }, now)).toEqual({
      period: { unit: 'day', day: '2026-12-31' },
      endsAtMs: Date.UTC(2027, 0, 1),
    });
    expect(budgetPeriod({ amount: 1, unit: 'usd', period: 'month', label: '' }, now)).toEqual({
      period: { unit: 'month', month: '2026-12' },
      endsAtMs: Date.UTC(2027, 0, 1),
    });
  });

  it('charges a token namespace, or the address without tokens', () => {
    expect(budgetClient('ns1', '1.2.3.4')).toBe('ns1');
    expect(budgetClient('', '1.2.3.4')).toBe('ip:1.2.3.4');
  });
});
