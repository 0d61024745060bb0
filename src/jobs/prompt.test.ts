import { describe, expect, it } from 'vitest';
import type { HistoryMessage } from '../store/store.js';
import { buildPrompt, exchangesOf, halveHistory } from './prompt.js';

const at = '2026-01-01T00:00:00.000Z';
const exchange = (n: number, size = 10): HistoryMessage[] => [
  { role: 'user', content: `question ${n} ${'q'.repeat(size)}`, at },
  { role: 'assistant', content: `answer ${n} ${'a'.repeat(size)}`, at },
];
const history = (count: number, size?: number): HistoryMessage[] =>
  Array.from({ length: count }, (_, n) => exchange(n, size)).flat();

describe('buildPrompt', () => {
  it('keeps everything, counting nothing, when the prompt is far inside the budget', async () => {
    const prompt = await buildPrompt({
      systemPrompt: 'Be brief.',
      history: history(3),
      message: 'new',
      model: 'openai/gpt-4o',
      budgetTokens: 12_000,
    });
    expect(prompt.messages).toHaveLength(1 + 6 + 1);
    expect(prompt.messages[0]).toEqual({ role: 'system', content: 'Be brief.' });
    expect(prompt.dropped).toBe(0);
  });

  it('drops the oldest whole exchanges to fit, reserving max_tokens, always keeping system and new message', async () => {
    const input = {
      systemPrompt: 'S',
      history: history(10, 400),
      message: 'new',
      model: 'some/model',
      budgetTokens: 800,
    };
    const prompt = await buildPrompt(input);
    expect(prompt.tokens).toBeLessThanOrEqual(800);
    expect(prompt.dropped % 2).toBe(0);
    expect(prompt.dropped).toBeGreaterThan(0);
    expect(prompt.kept).toEqual(input.history.slice(prompt.dropped));
    expect(prompt.messages.at(-1)).toEqual({ role: 'user', content: 'new' });
    const reserved = await buildPrompt({ ...input, maxTokens: 400 });
    expect(reserved.kept.length).toBeLessThan(prompt.kept.length);
    const none = await buildPrompt({ ...input, budgetTokens: 5 });
    expect(none.messages).toEqual([
      { role: 'system', content: 'S' },
      { role: 'user', content: 'new' },
    ]);
  });

  it('counts an OpenAI model with its tokenizer, another with the estimate', async () => {
    const text = 'hello world '.repeat(300);
    const input = { systemPrompt: '', history: [], message: text, budgetTokens: 10 };
    const counted = await buildPrompt({ ...input, model: 'openai/gpt-4o' });
    const estimated = await buildPrompt({ ...input, model: 'anthropic/claude' });
    expect(counted.tokens).toBeLessThan(estimated.tokens);
    expect(estimated.tokens).toBe(Math.ceil(text.length / 3) + 4 + 3);
  });
});

describe('exchangesOf and halveHistory', () => {
  it('pairs a user message with the reply after it, and keeps the newest half of the exchanges', () => {
    const lone: HistoryMessage = { role: 'assistant', content: 'orphan', at };
    expect(exchangesOf([lone, ...history(2)]).map((unit) => unit.length)).toEqual([1, 2, 2]);
    expect(halveHistory(history(6))).toEqual(history(6).slice(6));
    expect(halveHistory(history(1))).toEqual([]);
  });
});
