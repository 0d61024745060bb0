/**
 * Counting a prompt's tokens, the one importer of `gpt-tokenizer`. OpenAI models (with or without
 * a router's `openai/` prefix) are counted with their own encoding, `o200k_base` for the GPT-4o,
 * GPT-4.1, GPT-5 and o-series families and `cl100k_base` for GPT-4 and GPT-3.5; any other model
 * with the estimate of shared/token-estimate.ts. The encodings are loaded on first use, so a
 * process that never counts (or counts only estimates) does not pay their memory.
 */
import { estimateTokens, TOKENS_PER_MESSAGE, TOKENS_PER_PROMPT } from '../shared/token-estimate.js';

export interface TokenCounter {
  /** Tokens of `text`. */
  count(text: string): number;
  /** `true` when counted with the model's tokenizer, `false` for the estimate. */
  readonly exact: boolean;
}

type EncodingName = 'o200k_base' | 'cl100k_base';

/** The encoding of an OpenAI model, or `null` for a model whose tokenizer is not known here. */
export function encodingForModel(model: string): EncodingName | null {
  const name = model.toLowerCase().replace(/^openai\//, '');
  if (/^(gpt-4o|gpt-4\.1|gpt-4\.5|gpt-5|chatgpt-4o|o1|o3|o4|gpt-oss)/.test(name)) return 'o200k_base';
  if (/^(gpt-4|gpt-3\.5|gpt-35)/.test(name)) return 'cl100k_base';
  return null;
}

const ESTIMATE: TokenCounter = { count: estimateTokens, exact: false };
// Special-token text (`<|endoftext|>`) in a message is counted as ordinary text, never refused.
const AS_TEXT = { disallowedSpecial: new Set<string>() };
const loaded = new Map<EncodingName, Promise<TokenCounter>>();

async function load(encoding: EncodingName): Promise<TokenCounter> {
  const module =
    encoding === 'o200k_base'
      ? await import('gpt-tokenizer/encoding/o200k_base')
      : await import('gpt-tokenizer/encoding/cl100k_base');
  return {
    exact: true,
    count: (text) => {
      try {
        return module.countTokens(text, AS_TEXT);
      } catch {
        return estimateTokens(text);
      }
    },
  };
}

/** The counter for `model`: its tokenizer when known (loaded once), else the estimate. */
export function tokenCounterFor(model: string): Promise<TokenCounter> {
  const encoding = encodingForModel(model);
  if (encoding === null) return Promise.resolve(ESTIMATE);
  let counter = loaded.get(encoding);
  if (counter === undefined) {
    counter = load(encoding);
    loaded.set(encoding, counter);
  }
  return counter;
}

/** Tokens of a whole prompt: every message's content and its overhead, plus the reply's priming. */
export function promptTokens(counter: TokenCounter, messages: readonly { content: string }[]): number {
  let total = TOKENS_PER_PROMPT;
  for (const message of messages) total += counter.count(message.content) + TOKENS_PER_MESSAGE;
  return total;
}
