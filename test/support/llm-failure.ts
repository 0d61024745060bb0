import { expect } from 'vitest';
import { LlmError } from '../../src/llm/llm-errors.js';

/** The `LlmError` that `promise` rejects with; fails the test when it resolves or rejects with anything else. */
export async function llmFailure(promise: Promise<unknown>): Promise<LlmError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(LlmError);
    return error as LlmError;
  }
  throw new Error('expected the call to fail');
}
