import { describe, expect, it } from 'vitest';
import { BackendUnavailableError } from '../shared/errors.js';
import { createBackendBudget, withBackendDeadline } from './backend-deadline.js';

describe('withBackendDeadline', () => {
  it('settles like the promise when it is in time', async () => {
    await expect(withBackendDeadline(Promise.resolve(7), 1000)).resolves.toBe(7);
    const failure = new Error('boom');
    await expect(withBackendDeadline(Promise.reject(failure), 1000)).rejects.toBe(failure);
  });

  it('rejects with BackendUnavailableError when the promise does not settle in time', async () => {
    await expect(withBackendDeadline(new Promise(() => {}), 20)).rejects.toBeInstanceOf(
      BackendUnavailableError,
    );
  });
});

describe('createBackendBudget', () => {
  it('shares one deadline between calls: once spent, a call that would answer later is refused', async () => {
    const withinBudget = createBackendBudget(50);
    await expect(withinBudget(Promise.resolve('first'))).resolves.toBe('first');
    await new Promise((resolve) => setTimeout(resolve, 100));
    const late = new Promise((resolve) => setTimeout(() => resolve('late'), 200));
    await expect(withinBudget(late)).rejects.toBeInstanceOf(BackendUnavailableError);
  });
});
