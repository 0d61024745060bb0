/**
 * An OpenAI-compatible Chat Completions server for tests, `npm run demo` and the benchmark. It
 * answers `POST /v1/chat/completions` with a deterministic reply derived from the request, after
 * an optional latency, and can be scripted to answer the next requests with errors or delays.
 *
 * What tests of the LLM side need of a provider: `usage.cost` on every answer (OpenRouter's field,
 * `costPerMillionTokens`), a context window that answers OpenAI's `context_length_exceeded` 400
 * (`contextWindowTokens`, counted as the service counts: llm/token-count.ts), a rate-limited spell
 * answering `429` with `Retry-After` (`rateLimit`), and the calls in flight (`inFlight`,
 * `maxInFlight`).
 *
 * Run it alone with `node dist/dev/mock-llm.js`: it listens on `MOCK_LLM_PORT` (default 8001)
 * and `MOCK_LLM_HOST` (default 127.0.0.1), answers after `MOCK_LLM_LATENCY_MS`, enforces
 * `MOCK_LLM_CONTEXT_WINDOW_TOKENS` when set, and prints its base URL.
 */
import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pathToFileURL } from 'node:url';
import { promptTokens as countPromptTokens, tokenCounterFor } from '../llm/token-count.js';
import { readBody } from './harness.js';

export interface MockChatMessage {
  role: string;
  content: string;
}

export interface RecordedLlmRequest {
  model: string;
  messages: MockChatMessage[];
  headers: IncomingHttpHeaders;
  /** `temperature` and `max_tokens` as sent (absent when not sent). */
  temperature?: number;
  max_tokens?: number;
  /** The prompt's tokens as llm/token-count.ts counts them for `model`. */
  promptTokens: number;
  /** `Date.now()` when the request arrived. */
  receivedAt: number;
  /** The status it was answered with (set when answered). */
  status?: number;
}

/** One scripted answer. Without `body`, a 2xx gets the default reply and any other status an OpenAI-style error. */
export interface ScriptedLlmResponse {
  status: number;
  /** A string is sent as is (so malformed JSON can be scripted); anything else as JSON. */
  body?: unknown;
  headers?: Record<string, string>;
  /** Replaces the latency for this answer. */
  delayMs?: number;
}

export interface MockLlm {
  /** Base URL ending in `/v1`, for `LLM_BASE_URL`. */
  url: string;
  /** Requests received, oldest first (at most `maxRecorded`, newest kept). */
  requests: RecordedLlmRequest[];
  /** Queues answers used one per request, before the default reply. */
  script(responses: ScriptedLlmResponse[]): void;
  setLatency(ms: number): void;
  /**
   * For the next `forMs`, answers every request `429` with `Retry-After: retryAfterSeconds`, as a
   * provider whose rate limit is hit; `rateLimitedAt` is when the first such answer was sent.
   */
  rateLimit(forMs: number, retryAfterSeconds: number): void;
  /** `Date.now()` of the first 429 answer of the last `rateLimit` spell; `null` before. */
  readonly rateLimitedAt: number | null;
  /** Requests being answered right now. */
  readonly inFlight: number;
  /** The most requests in flight at once since the start or the last `reset`. */
  readonly maxInFlight: number;
  /** Forgets recorded requests, scripted answers, the rate-limited spell and the in-flight peak, and restores the initial latency. */
  reset(): void;
  close(): Promise<void>;
}

export interface MockLlmOptions {
  /** Default 0 (any free port). */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** Delay before every answer; default 0. */
  latencyMs?: number;
  /** When set, `Authorization: Bearer <apiKey>` must match it exactly; otherwise any bearer token is accepted. */
  apiKey?: string;
  /** Record requests in `requests`; default true. Turn off for benchmarks. */
  record?: boolean;
  /** Most requests kept in `requests`; default 10,000. */
  maxRecorded?: number;
  /**
   * Prompt plus `max_tokens` larger than this is refused with OpenAI's `context_length_exceeded`
   * (400); default: no window.
   */
  contextWindowTokens?: number;
  /**
   * The `usage.cost` reported (USD per million total tokens), by model; `null` (or a model the
   * function answers `null` for) reports no cost. Default 1 for every model.
   */
  costPerMillionTokens?: number | null | ((model: string) => number | null);
}

const MAX_BODY_BYTES = 10 * 1024 * 1024;

/** The default reply text: the turn number, the last user message and how many messages were sent. */
export function mockReplyText(messages: readonly MockChatMessage[]): string {
  const userMessages = messages.filter((message) => message.role === 'user');
  const last = userMessages.at(-1)?.content ?? '';
  return `Reply #${userMessages.length} to "${last}" (saw ${messages.length} messages)`;
}

function countTokens(text: string): number {
  return text.split(/\s+/).filter((word) => word !== '').length;
}

function errorBody(status: number, message: string): unknown {
  return { error: { message, type: status >= 500 ? 'server_error' : 'invalid_request_error', code: status } };
}

function isChatMessage(value: unknown): value is MockChatMessage {
  if (typeof value !== 'object' || value === null) return false;
  const { role, content } = value as Record<string, unknown>;
  return typeof role === 'string' && typeof content === 'string';
}

export async function startMockLlm(options: MockLlmOptions = {}): Promise<MockLlm> {
  const initialLatencyMs = options.latencyMs ?? 0;
  const record = options.record ?? true;
  const maxRecorded = options.maxRecorded ?? 10_000;
  let latencyMs = initialLatencyMs;
  let scripted: ScriptedLlmResponse[] = [];
  let served = 0;
  const requests: RecordedLlmRequest[] = [];

  const send = (
    res: ServerResponse,
    status: number,
    body: unknown,
    headers: Record<string, string> = {},
  ): void => {
    if (res.destroyed) return;
    const text = typeof body === 'string' ? body : JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(text);
  };

  /** Answers after `delayMs`, or drops the answer when the client went away first. */
  const later = (res: ServerResponse, delayMs: number, answer: () => void): void => {
    if (delayMs <= 0) {
      answer();
      return;
    }
    const timer = setTimeout(answer, delayMs);
    res.on('close', () => clearTimeout(timer));
  };

  let rateLimitedUntil = 0;
  let rateLimitRetryAfterSeconds = 0;
  let rateLimitedAt: number | null = null;
  let inFlight = 0;
  let maxInFlight = 0;
  const costOf = (model: string, totalTokens: number): number | null => {
    const option = options.costPerMillionTokens === undefined ? 1 : options.costPerMillionTokens;
    const perMillion = typeof option === 'function' ? option(model) : option;
    return perMillion === null ? null : (totalTokens * perMillion) / 1_000_000;
  };

  const handle = async (req: IncomingMessage, res: ServerResponse, raw: string): Promise<void> => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/v1/chat/completions') {
      send(res, 404, errorBody(404, `No route ${req.method} ${path}`));
      return;
    }
    if (req.method !== 'POST') {
      send(res, 405, errorBody(405, 'Only POST is supported'), { allow: 'POST' });
      return;
    }
    const token = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '')?.[1];
    if (token === undefined || (options.apiKey !== undefined && token !== options.apiKey)) {
      send(res, 401, errorBody(401, 'Missing or invalid bearer token'));
      return;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw);
    } catch {
      send(res, 400, errorBody(400, 'The body is not valid JSON'));
      return;
    }
    const { model, messages, temperature, max_tokens } = (
      typeof parsed === 'object' && parsed !== null ? parsed : {}
    ) as Record<string, unknown>;
    if (typeof model !== 'string' || !Array.isArray(messages) || !messages.every(isChatMessage)) {
      send(res, 400, errorBody(400, 'Expected a model and messages of {role, content}'));
      return;
    }
    const window = options.contextWindowTokens;
    const counted =
      window === undefined && !record ? 0 : countPromptTokens(await tokenCounterFor(model), messages);
    const entry: RecordedLlmRequest = {
      model,
      messages,
      headers: req.headers,
      ...(typeof temperature === 'number' ? { temperature } : {}),
      ...(typeof max_tokens === 'number' ? { max_tokens } : {}),
      promptTokens: counted,
      receivedAt: Date.now(),
    };
    if (record) {
      requests.push(entry);
      if (requests.length > maxRecorded) requests.splice(0, requests.length - maxRecorded);
    }
    const reserved = typeof max_tokens === 'number' ? max_tokens : 0;
    if (window !== undefined && counted + reserved > window) {
      entry.status = 400;
      send(res, 400, {
        error: {
          message: `This model's maximum context length is ${window} tokens. However, you requested ${counted + reserved} tokens (${counted} in the messages, ${reserved} in the completion). Please reduce the length of the messages or completion.`,
          type: 'invalid_request_error',
          param: 'messages',
          code: 'context_length_exceeded',
        },
      });
      return;
    }
    if (Date.now() < rateLimitedUntil) {
      entry.status = 429;
      rateLimitedAt ??= Date.now();
      send(res, 429, errorBody(429, 'Rate limit reached for requests'), {
        'retry-after': String(rateLimitRetryAfterSeconds),
      });
      return;
    }

    const step = scripted.shift();
    const status = step?.status ?? 200;
    entry.status = status;
    inFlight += 1;
    maxInFlight = Math.max(maxInFlight, inFlight);
    let answered = false;
    const done = (): void => {
      if (answered) return;
      answered = true;
      inFlight -= 1;
    };
    res.on('close', done);
    later(res, step?.delayMs ?? latencyMs, () => {
      done();
      if (step?.body !== undefined) {
        send(res, status, step.body, step.headers);
        return;
      }
      if (status < 200 || status >= 300) {
        send(res, status, errorBody(status, `Mock error ${status}`), step?.headers);
        return;
      }
      served += 1;
      const reply = mockReplyText(messages);
      const promptTokens = messages.reduce((sum, message) => sum + countTokens(message.content), 0);
      const completionTokens = countTokens(reply);
      const totalTokens = promptTokens + completionTokens;
      const cost = costOf(model, totalTokens);
      const lastTokens = countTokens(messages.at(-1)?.content ?? '');
      send(
        res,
        status,
        {
          id: `chatcmpl-mock-${served}`,
          object: 'chat.completion',
          created: Math.floor(Date.now() / 1000),
          model,
          choices: [
            {
              index: 0,
              message: { role: 'assistant', content: reply },
              finish_reason: 'stop',
              logprobs: null,
            },
          ],
          usage: {
            prompt_tokens: promptTokens,
            completion_tokens: completionTokens,
            total_tokens: totalTokens,
            // Everything before the new message counts as a cached prefix; "reasoning" models think.
            prompt_tokens_details: { cached_tokens: Math.max(0, promptTokens - lastTokens) },
            completion_tokens_details: { reasoning_tokens: model.includes('reason') ? completionTokens : 0 },
            ...(cost === null ? {} : { cost }),
          },
        },
        step?.headers,
      );
    });
  };

  const server = createServer((req, res) => {
    readBody(req, MAX_BODY_BYTES, (text, tooLarge) => {
      if (tooLarge) send(res, 413, errorBody(413, 'The body is too large'));
      else
        handle(req, res, text).catch(() => {
          if (!res.headersSent) send(res, 500, errorBody(500, 'Mock failure'));
        });
    });
    req.on('error', () => res.destroy());
  });
  // Many clients hold keep-alive connections open at once during a benchmark.
  server.keepAliveTimeout = 65_000;
  server.listen({ port: options.port ?? 0, host: options.host ?? '127.0.0.1', backlog: 4096 });
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  const listenHost = options.host ?? '127.0.0.1';
  // A wildcard address is not something a client can connect to; the loopback is.
  const host = listenHost === '0.0.0.0' || listenHost === '::' ? '127.0.0.1' : listenHost;
  const urlHost = host.includes(':') ? `[${host}]` : host;

  return {
    url: `http://${urlHost}:${port}/v1`,
    requests,
    script(responses) {
      scripted.push(...responses);
    },
    setLatency(ms) {
      latencyMs = ms;
    },
    rateLimit(forMs, retryAfterSeconds) {
      rateLimitedUntil = Date.now() + forMs;
      rateLimitRetryAfterSeconds = retryAfterSeconds;
      rateLimitedAt = null;
    },
    get rateLimitedAt() {
      return rateLimitedAt;
    },
    get inFlight() {
      return inFlight;
    },
    get maxInFlight() {
      return maxInFlight;
    },
    reset() {
      requests.length = 0;
      scripted = [];
      latencyMs = initialLatencyMs;
      rateLimitedUntil = 0;
      rateLimitedAt = null;
      maxInFlight = inFlight;
    },
    close() {
      return new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeAllConnections();
      });
    },
  };
}

const entry = process.argv[1];
if (entry !== undefined && import.meta.url === pathToFileURL(entry).href) {
  const mock = await startMockLlm({
    port: Number(process.env.MOCK_LLM_PORT ?? 8001),
    host: process.env.MOCK_LLM_HOST ?? '127.0.0.1',
    latencyMs: Number(process.env.MOCK_LLM_LATENCY_MS ?? 0),
    record: false,
    ...(process.env.MOCK_LLM_CONTEXT_WINDOW_TOKENS === undefined
      ? {}
      : { contextWindowTokens: Number(process.env.MOCK_LLM_CONTEXT_WINDOW_TOKENS) }),
  });
  process.stdout.write(`mock LLM listening at ${mock.url}\n`);
}
