/**
 * The LLM client: the one file that imports `openai`, speaking to any OpenAI-compatible Chat
 * Completions endpoint. One call is one attempt (the SDK's own retries are off: the job runs
 * SPEC §4's schedule), and every failure leaves here as an `LlmError`.
 *
 * The SDK sends through `undici.request` on a keep-alive agent of this client rather than the
 * built-in `fetch`: that one clones each request body into web streams and writes it in pieces,
 * which cost about a tenth of the worker's CPU at a few thousand calls a second. The answer is
 * read whole and handed to the SDK as a `Response`, so the SDK parses and classifies it as usual
 * (its own retries and streaming are not used here).
 */
import OpenAI from 'openai';
import { Agent, request } from 'undici';
import { LLM_ERROR_TYPES } from '../shared/errors.js';
import { retryAfterToMs } from '../shared/retry-after.js';
import { classifyLlmStatus, LlmError } from './llm-errors.js';

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

/** Token counts as the endpoint reports them, and its own cost figure when it sends one. */
export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  /** `usage.prompt_tokens_details.cached_tokens`. */
  cached_tokens?: number;
  /** `usage.completion_tokens_details.reasoning_tokens`. */
  reasoning_tokens?: number;
  /** USD, as the provider reports it (OpenRouter's `usage.cost`). */
  cost?: number;
}

/** One Chat Completions request: the model, the prompt and the per-request options. */
export interface LlmRequest {
  model: string;
  messages: ChatMessage[];
  temperature?: number;
  max_tokens?: number;
}

export interface LlmCompletion {
  reply: string;
  /** The model that answered, as the endpoint reports it (a router may pick another). */
  model: string;
  usage: Usage | null;
}

export interface LlmClient {
  /** One attempt at a reply; rejects with an `LlmError` only. */
  complete(request: LlmRequest, signal?: AbortSignal): Promise<LlmCompletion>;
  close?(): void;
}

export interface LlmClientOptions {
  /** Base URL of the API, such as `https://openrouter.ai/api/v1`. */
  baseUrl: string;
  /** `null`: every call fails with `config_missing_api_key`, not retried. */
  apiKey: string | null;
  timeoutMs: number;
}

/** How long the LLM asked us to wait, from `retry-after-ms` or `Retry-After`. */
function retryAfterFrom(headers: Headers | undefined): number | undefined {
  if (headers === undefined) return undefined;
  const ms = Number(headers.get('retry-after-ms') ?? Number.NaN);
  if (Number.isFinite(ms) && ms >= 0) return Math.round(ms);
  return retryAfterToMs(headers.get('retry-after')) ?? undefined;
}

/** What replaces a secret in an error message. */
const REDACTED = '[redacted]';
/** Shorter fragments of the key are too likely to be ordinary words. */
const MIN_KEY_FRAGMENT_CHARS = 8;

/**
 * Removes the API key from an error message the LLM wrote. Providers echo a rejected key
 * ("Incorrect API key provided: sk-...") whole, cut short or masked with `*`; the message goes
 * to the log, the task record and the client's callback, none of which may see the key.
 */
export function redactApiKey(message: string, apiKey: string): string {
  const withoutKey = message.split(apiKey).join(REDACTED);
  return withoutKey.replace(/[^\s"'`,;()<>[\]{}]+/g, (word) => {
    if (/\*{3,}/.test(word)) return REDACTED;
    const bare = word.replace(/[.:!?]+$/, '');
    return bare.length >= MIN_KEY_FRAGMENT_CHARS && apiKey.includes(bare)
      ? REDACTED + word.slice(bare.length)
      : word;
  });
}

/** Translates whatever the SDK threw into an `LlmError`. */
function translate(error: unknown, timeoutMs: number, apiKey: string): LlmError {
  if (error instanceof LlmError) return error;
  if (error instanceof OpenAI.APIUserAbortError) {
    return new LlmError({
      type: LLM_ERROR_TYPES.aborted,
      message: 'The LLM call was cancelled',
      retryable: true,
      cause: error,
    });
  }
  if (error instanceof OpenAI.APIConnectionTimeoutError) {
    return new LlmError({
      type: LLM_ERROR_TYPES.timeout,
      message: `The LLM did not answer within ${timeoutMs} ms`,
      retryable: true,
      cause: error,
    });
  }
  if (error instanceof OpenAI.APIConnectionError) {
    const cause = error.cause instanceof Error ? `: ${error.cause.message}` : '';
    return new LlmError({
      type: LLM_ERROR_TYPES.network,
      message: `Could not reach the LLM${cause}`,
      retryable: true,
      cause: error,
    });
  }
  if (error instanceof OpenAI.APIError && error.status !== undefined) {
    const { type, retryable } = isContextLengthError(error)
      ? { type: LLM_ERROR_TYPES.contextLength, retryable: false }
      : classifyLlmStatus(error.status);
    const retryAfterMs = retryAfterFrom(error.headers);
    const hint = type === LLM_ERROR_TYPES.auth ? ' (check API_KEY)' : '';
    // No `cause`: the SDK's error keeps the raw answer, which may echo the key, and an error
    // logged with its causes would carry it into the log.
    return new LlmError({
      type,
      // The SDK's message starts with the status and holds the API's own explanation.
      message: `The LLM refused the request: ${redactApiKey(error.message, apiKey)}${hint}`,
      retryable,
      status: error.status,
      ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
    });
  }
  const detail = redactApiKey(error instanceof Error ? error.message : String(error), apiKey);
  return new LlmError({
    type: LLM_ERROR_TYPES.badResponse,
    message: `The LLM's answer could not be read: ${detail}`,
    retryable: true,
    cause: error,
  });
}

/**
 * Whether the provider refused the prompt as longer than the model's context: OpenAI's
 * `context_length_exceeded` code, or the wording OpenAI-compatible servers use for it.
 */
function isContextLengthError(error: InstanceType<typeof OpenAI.APIError>): boolean {
  if (error.status !== 400 && error.status !== 413) return false;
  if (error.code === 'context_length_exceeded') return true;
  return /context length|context window|maximum context|too many tokens|prompt is too long/i.test(
    error.message,
  );
}

/** A non-negative count from a usage field, or `undefined`. */
function countOf(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 ? value : undefined;
}

/** The usage of a completion, with the details and cost the provider adds when it sends them. */
function usageOf(usage: OpenAI.Completions.CompletionUsage | undefined | null): Usage | null {
  if (usage === undefined || usage === null) return null;
  const cached = countOf(usage.prompt_tokens_details?.cached_tokens);
  const reasoning = countOf(usage.completion_tokens_details?.reasoning_tokens);
  const cost = countOf((usage as { cost?: unknown }).cost);
  return {
    prompt_tokens: usage.prompt_tokens,
    completion_tokens: usage.completion_tokens,
    total_tokens: usage.total_tokens,
    ...(cached === undefined ? {} : { cached_tokens: cached }),
    ...(reasoning === undefined ? {} : { reasoning_tokens: reasoning }),
    ...(cost === undefined ? {} : { cost }),
  };
}

function urlOf(input: string | URL | Request): string {
  if (typeof input === 'string') return input;
  return input instanceof URL ? input.href : input.url;
}

/**
 * The part of a `Response` the SDK reads of a non-streaming answer (status, headers, `text`,
 * `json`; `body` only to cancel or log it), over a body already read whole. A real `Response`
 * would wrap the text in a web stream only for the SDK to read it back, at a third of the
 * client's CPU per call.
 */
function bufferedResponse(url: string, status: number, headers: Headers, text: string): Response {
  const response = {
    ok: status >= 200 && status < 300,
    status,
    statusText: '',
    headers,
    url,
    redirected: false,
    type: 'basic',
    body: null,
    bodyUsed: false,
    text: () => Promise.resolve(text),
    json: () => Promise.resolve().then(() => JSON.parse(text) as unknown),
    arrayBuffer: () => Promise.resolve(new TextEncoder().encode(text).buffer),
    clone: () => bufferedResponse(url, status, headers, text),
  };
  return response as unknown as Response;
}

/**
 * A `fetch` for the SDK over `agent`. It handles what the SDK sends (a string body, a `Headers`
 * object, its abort signal); the SDK's own timer aborts a call that takes too long, so the
 * agent's timeouts are off.
 */
export function createUndiciFetch(agent: Agent): typeof fetch {
  return async (input, init = {}) => {
    const url = urlOf(input);
    const headers: Record<string, string> = {};
    const given = init.headers instanceof Headers ? init.headers : new Headers(init.headers);
    given.forEach((value, name) => {
      headers[name] = value;
    });
    const body = init.body;
    if (body !== undefined && body !== null && typeof body !== 'string') {
      throw new TypeError('The LLM client sends string bodies only');
    }
    const answer = await request(url, {
      method: (init.method ?? 'GET') as 'GET',
      headers,
      body: body ?? null,
      signal: init.signal ?? null,
      dispatcher: agent,
    });
    const text = await answer.body.text();
    const responseHeaders = new Headers();
    for (const [name, value] of Object.entries(answer.headers)) {
      if (Array.isArray(value)) for (const item of value) responseHeaders.append(name, item);
      else if (value !== undefined) responseHeaders.append(name, value);
    }
    return bufferedResponse(url, answer.statusCode, responseHeaders, text);
  };
}

export function createLlmClient(options: LlmClientOptions): LlmClient {
  const { apiKey, timeoutMs } = options;
  if (apiKey === null) {
    return {
      complete: () =>
        Promise.reject(
          new LlmError({
            type: LLM_ERROR_TYPES.missingApiKey,
            message: 'No LLM API key is configured: set API_KEY (or LLM_API_KEY) and restart the service',
            retryable: false,
          }),
        ),
    };
  }

  // No cap on connections: with HTTP/1.1 each call in flight holds one, and WORKER_CONCURRENCY
  // calls may be in flight (a cap would queue them inside the agent, under the SDK's timer).
  const agent = new Agent({ keepAliveTimeout: 30_000, headersTimeout: 0, bodyTimeout: 0 });
  const client = new OpenAI({
    apiKey,
    baseURL: options.baseUrl,
    timeout: timeoutMs,
    maxRetries: 0,
    fetch: createUndiciFetch(agent),
  });

  return {
    close() {
      // Open connections are dropped; a call still running fails as a network error.
      agent.destroy().catch(() => {});
    },
    async complete(request, signal) {
      let completion: OpenAI.Chat.Completions.ChatCompletion;
      try {
        completion = await client.chat.completions.create(
          {
            model: request.model,
            messages: request.messages,
            ...(request.temperature === undefined ? {} : { temperature: request.temperature }),
            ...(request.max_tokens === undefined ? {} : { max_tokens: request.max_tokens }),
          },
          signal === undefined ? {} : { signal },
        );
      } catch (error) {
        throw translate(error, timeoutMs, apiKey);
      }
      const reply = completion.choices?.[0]?.message?.content;
      if (typeof reply !== 'string' || reply.trim() === '') {
        throw new LlmError({
          type: LLM_ERROR_TYPES.badResponse,
          message: 'The LLM answered without a reply (no choices or empty content)',
          retryable: true,
        });
      }
      return {
        reply,
        model:
          typeof completion.model === 'string' && completion.model !== '' ? completion.model : request.model,
        usage: usageOf(completion.usage),
      };
    },
  };
}
