import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { AppError, ConfigError, TASK_ERROR_TYPES } from './errors.js';

describe('TASK_ERROR_TYPES', () => {
  it('are the types the README lists for a failed task, exactly', () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    const start = readme.indexOf('`error.type` is one of:');
    const sentence = readme.slice(start, readme.indexOf('\n\n', start));
    const listed = [...sentence.matchAll(/`([a-z_]+)`/g)].map((match) => match[1]!);
    expect(listed.sort()).toEqual(Object.values(TASK_ERROR_TYPES).sort());
  });
});

describe('ConfigError', () => {
  it('is an AppError with a stable code and one line per problem', () => {
    const error = new ConfigError(['A=1 is invalid', 'B=2 is invalid']);
    expect(error).toBeInstanceOf(AppError);
    expect(error.code).toBe('CONFIG_INVALID');
    expect(error.name).toBe('ConfigError');
    expect(error.message).toBe('A=1 is invalid\nB=2 is invalid');
  });
});
