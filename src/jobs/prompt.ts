/**
 * The prompt of a task (SPEC §4 and §10): `[system]` + history + the new message, the history cut
 * to `HISTORY_MAX_TOKENS`: the oldest whole exchanges are dropped until system prompt, history,
 * new message and the reply's `max_tokens` fit; the system prompt and the new message are always
 * kept. A view taken at prompt time: the stored history is not changed.
 */
import type { ChatMessage } from '../llm/llm-client.js';
import { promptTokens, type TokenCounter, tokenCounterFor } from '../llm/token-count.js';
import { estimateTokens, TOKENS_PER_MESSAGE, TOKENS_PER_PROMPT } from '../shared/token-estimate.js';
import type { HistoryMessage } from '../store/store.js';

export interface PromptInput {
  systemPrompt: string;
  history: readonly HistoryMessage[];
  message: string;
  model: string;
  /** The reply's `max_tokens`, reserved in the budget. */
  maxTokens?: number | undefined;
  /** `HISTORY_MAX_TOKENS`; 0: no token bound. */
  budgetTokens: number;
}

export interface Prompt {
  messages: ChatMessage[];
  /** The history messages in the prompt, oldest first. */
  kept: HistoryMessage[];
  /** History messages left out to fit the budget. */
  dropped: number;
  /** The prompt's tokens (counted, or estimated when no count was needed). */
  tokens: number;
}

/** The history as units that are dropped whole: a user message with the reply after it, or a lone message. */
export function exchangesOf(history: readonly HistoryMessage[]): HistoryMessage[][] {
  const units: HistoryMessage[][] = [];
  for (let i = 0; i < history.length; i += 1) {
    const message = history[i]!;
    const next = history[i + 1];
    if (message.role === 'user' && next?.role === 'assistant') {
      units.push([message, next]);
      i += 1;
    } else units.push([message]);
  }
  return units;
}

/** The newest half of the history's exchanges (rounded down): what a context-length retry keeps. */
export function halveHistory(history: readonly HistoryMessage[]): HistoryMessage[] {
  const units = exchangesOf(history);
  return units.slice(units.length - Math.floor(units.length / 2)).flat();
}

function assemble(systemPrompt: string, history: readonly HistoryMessage[], message: string): ChatMessage[] {
  const messages: ChatMessage[] = [];
  if (systemPrompt !== '') messages.push({ role: 'system', content: systemPrompt });
  for (const entry of history) messages.push({ role: entry.role, content: entry.content });
  messages.push({ role: 'user', content: message });
  return messages;
}

/** An upper bound of any BPE count (a token is at least one byte), cheap to take. */
function byteBound(messages: readonly ChatMessage[]): number {
  let total = TOKENS_PER_PROMPT;
  for (const message of messages) total += Buffer.byteLength(message.content) + TOKENS_PER_MESSAGE;
  return total;
}

export async function buildPrompt(input: PromptInput): Promise<Prompt> {
  const { systemPrompt, history, message, budgetTokens } = input;
  const reserve = input.maxTokens ?? 0;
  const all = assemble(systemPrompt, history, message);
  const estimate = (): number =>
    all.reduce((sum, m) => sum + estimateTokens(m.content) + TOKENS_PER_MESSAGE, TOKENS_PER_PROMPT);
  // Most prompts are far inside the budget: then no tokenizer is loaded and nothing is counted.
  if (budgetTokens <= 0 || byteBound(all) + reserve <= budgetTokens) {
    return { messages: all, kept: [...history], dropped: 0, tokens: estimate() };
  }
  const counter: TokenCounter = await tokenCounterFor(input.model);
  const fixed = promptTokens(counter, assemble(systemPrompt, [], message));
  let room = budgetTokens - reserve - fixed;
  const kept: HistoryMessage[][] = [];
  const units = exchangesOf(history);
  for (let i = units.length - 1; i >= 0; i -= 1) {
    const unit = units[i]!;
    const cost = unit.reduce((sum, m) => sum + counter.count(m.content) + TOKENS_PER_MESSAGE, 0);
    if (cost > room) break;
    room -= cost;
    kept.unshift(unit);
  }
  const keptMessages = kept.flat();
  const messages = assemble(systemPrompt, keptMessages, message);
  return {
    messages,
    kept: keptMessages,
    dropped: history.length - keptMessages.length,
    tokens: promptTokens(counter, messages),
  };
}
