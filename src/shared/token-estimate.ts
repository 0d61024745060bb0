/**
 * The token estimate for text whose model has no known tokenizer (and for the budget check at
 * `POST /webhook`, which does not load one): one token per three characters, rounded up. BPE
 * tokenizers average about four characters of English a token and fewer for code and most other
 * languages, so this errs towards counting too many, which keeps a trimmed prompt inside the
 * window rather than just past it.
 */
export const CHARS_PER_TOKEN_ESTIMATE = 3;

/** Tokens one chat message costs beyond its content (role and separators), as OpenAI counts them. */
export const TOKENS_PER_MESSAGE = 4;

/** Tokens that prime the reply, counted once per prompt. */
export const TOKENS_PER_PROMPT = 3;

export function estimateTokens(text: string): number {
  return Math.ceil(text.length / CHARS_PER_TOKEN_ESTIMATE);
}
