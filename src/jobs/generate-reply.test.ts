import { describe, expect, it } from 'vitest';
import { planAttempt } from './generate-reply.js';

describe('planAttempt', () => {
  const models = ['primary', 'fallback-a', 'fallback-b'];
  const schedule = [1000, 5000];

  it('walks each model through the retry schedule, then the next model at once', () => {
    const plans = [1, 2, 3, 4, 5, 6, 7, 8, 9].map((attempt) => planAttempt(attempt, models, schedule));
    expect(plans).toEqual([
      { model: 'primary', retryDelayMs: 1000 },
      { model: 'primary', retryDelayMs: 5000 },
      { model: 'primary', retryDelayMs: 0 },
      { model: 'fallback-a', retryDelayMs: 1000 },
      { model: 'fallback-a', retryDelayMs: 5000 },
      { model: 'fallback-a', retryDelayMs: 0 },
      { model: 'fallback-b', retryDelayMs: 1000 },
      { model: 'fallback-b', retryDelayMs: 5000 },
      { model: 'fallback-b', retryDelayMs: null },
    ]);
    expect(planAttempt(10, models, schedule)).toBeNull();
  });

  it('with no schedule and no fallback, allows one attempt', () => {
    expect(planAttempt(1, ['only'], [])).toEqual({ model: 'only', retryDelayMs: null });
    expect(planAttempt(2, ['only'], [])).toBeNull();
  });
});
