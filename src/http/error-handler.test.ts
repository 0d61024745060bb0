import { describe, expect, it } from 'vitest';
import { BackendUnavailableError } from '../shared/errors.js';
import { createBackendBudget, issuesFromAjv, withBackendDeadline } from './error-handler.js';

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

describe('issuesFromAjv', () => {
  it('keeps one issue per field, the one pydantic would report, in field order', () => {
    const data = { message: '', callback_url: 'x'.repeat(3000) };
    const issues = issuesFromAjv(
      [
        { keyword: 'maxLength', instancePath: '/callback_url', params: { limit: 2048 } },
        { keyword: 'format', instancePath: '/callback_url', params: { format: 'uri' } },
        { keyword: 'pattern', instancePath: '/message', params: { pattern: '\\S' } },
        { keyword: 'minLength', instancePath: '/message', params: { limit: 1 } },
      ],
      'body',
      data,
      ['message', 'callback_url'],
    );
    expect(issues.map((issue) => [issue.type, issue.loc])).toEqual([
      ['string_too_short', ['body', 'message']],
      ['string_too_long', ['body', 'callback_url']],
    ]);
  });

  it('locates path parameters and nested fields', () => {
    const issues = issuesFromAjv(
      [{ keyword: 'type', instancePath: '/a~1b/0', params: { type: 'string' } }],
      'params',
      { 'a/b': [3] },
    );
    expect(issues).toEqual([
      { type: 'string_type', loc: ['path', 'a/b', 0], msg: 'Input should be a valid string', input: 3 },
    ]);
  });
});
