/**
 * The LLM call's span, `chat {model}`, after the OpenTelemetry GenAI semantic conventions as
 * published in semantic-conventions v1.45.0 (status: Development; since moved to the
 * semantic-conventions-genai repository). The conventions are still experimental, so their
 * names are copied here, as the semantic-conventions package asks of runtime code, rather than
 * imported from its `incubating` entry point: a rename upstream changes nothing here until this
 * pin is moved on purpose.
 *
 * Made by hand, around the call, in the worker's main thread (the call itself may run on the
 * outbound thread): the `openai` SDK's instrumentation would need a loader hook and would name
 * every OpenAI-compatible endpoint `openai`. A failed call carries `error.type`, the LlmError's
 * stable type (`llm_rate_limited`, `llm_timeout`, ...). Message texts never become attributes.
 */
import { type Span, SpanKind } from '@opentelemetry/api';
import { ATTR, setDefined, urlForAttribute, withSpan } from './spans.js';

/** The GenAI attribute names followed, pinned to semantic conventions v1.45.0. */
export const GEN_AI = {
  operationName: 'gen_ai.operation.name',
  providerName: 'gen_ai.provider.name',
  requestModel: 'gen_ai.request.model',
  requestTemperature: 'gen_ai.request.temperature',
  requestMaxTokens: 'gen_ai.request.max_tokens',
  responseModel: 'gen_ai.response.model',
  inputTokens: 'gen_ai.usage.input_tokens',
  outputTokens: 'gen_ai.usage.output_tokens',
  conversationId: 'gen_ai.conversation.id',
} as const;

export const GEN_AI_SEMCONV_VERSION = '1.45.0';

/**
 * Well-known `gen_ai.provider.name` values by API host. Any other OpenAI-compatible endpoint is
 * `openai`: the conventions ask for the instrumentation's best knowledge, which for a client
 * speaking the OpenAI API to an unknown host is the API's flavour.
 */
const PROVIDERS_BY_HOST: ReadonlyArray<readonly [RegExp, string]> = [
  [/(^|\.)openrouter\.ai$/, 'openrouter'],
  [/(^|\.)openai\.azure\.com$/, 'azure.ai.openai'],
  [/(^|\.)groq\.com$/, 'groq'],
  [/(^|\.)mistral\.ai$/, 'mistral_ai'],
  [/(^|\.)deepseek\.com$/, 'deepseek'],
  [/(^|\.)x\.ai$/, 'x_ai'],
  [/(^|\.)perplexity\.ai$/, 'perplexity'],
  [/(^|\.)anthropic\.com$/, 'anthropic'],
];

/** `gen_ai.provider.name` for an endpoint. */
export function providerNameOf(baseUrl: string): string {
  let host: string;
  try {
    host = new URL(baseUrl).hostname;
  } catch {
    return 'openai';
  }
  return PROVIDERS_BY_HOST.find(([pattern]) => pattern.test(host))?.[1] ?? 'openai';
}

/** What one call asks for; none of it a message text. */
export interface ChatSpanRequest {
  model: string;
  conversationId: string;
  /** The job's attempt number (it runs the LLM retry schedule and the fallback models). */
  attempt: number;
  /** The task's own options, when it set them (SPEC §10). */
  temperature?: number;
  maxTokens?: number;
}

/** What a reply tells the span: the model that answered and the tokens counted. */
export interface ChatSpanResult {
  model: string;
  usage: { prompt_tokens: number; completion_tokens: number } | null;
}

export type TraceChat = <T extends ChatSpanResult>(
  request: ChatSpanRequest,
  call: () => Promise<T>,
) => Promise<T>;

/** The attributes of an endpoint (`LLM_BASE_URL`), worked out once: provider and server. */
function endpointAttributes(baseUrl: string): Record<string, string | number> {
  const attributes: Record<string, string | number> = { [GEN_AI.providerName]: providerNameOf(baseUrl) };
  try {
    const url = new URL(baseUrl);
    attributes['server.address'] = url.hostname;
    attributes['server.port'] = url.port === '' ? (url.protocol === 'https:' ? 443 : 80) : Number(url.port);
  } catch {
    // No server attributes for an endpoint that is not a URL (the config check prevents it).
  }
  return attributes;
}

/**
 * Runs each LLM call to `baseUrl` inside its `chat {model}` span; with tracing off (`enabled`
 * false), runs the call as it is, with no span call at all.
 */
export function createChatTracer(baseUrl: string, enabled = true): TraceChat {
  if (!enabled) return (_request, call) => call();
  const endpoint = endpointAttributes(baseUrl);
  return (request, call) =>
    withSpan(
      `chat ${request.model}`,
      {
        kind: SpanKind.CLIENT,
        attributes: {
          [GEN_AI.operationName]: 'chat',
          ...endpoint,
          [GEN_AI.requestModel]: request.model,
          ...(request.temperature === undefined ? {} : { [GEN_AI.requestTemperature]: request.temperature }),
          ...(request.maxTokens === undefined ? {} : { [GEN_AI.requestMaxTokens]: request.maxTokens }),
          [ATTR.llmAttempt]: request.attempt,
        },
      },
      async (span: Span) => {
        if (span.isRecording()) {
          span.setAttribute(GEN_AI.conversationId, conversationIdForAttribute(request.conversationId));
        }
        const result = await call();
        setDefined(span, {
          [GEN_AI.responseModel]: result.model,
          [GEN_AI.inputTokens]: result.usage?.prompt_tokens,
          [GEN_AI.outputTokens]: result.usage?.completion_tokens,
        });
        return result;
      },
    );
}

/**
 * A conversation id as an attribute. Without one of its own a conversation is named after its
 * callback URL, whose query string may hold a secret: a URL loses it here, as in every attribute.
 */
export function conversationIdForAttribute(conversationId: string): string {
  if (!/^https?:\/\//i.test(conversationId)) return conversationId;
  return urlForAttribute(conversationId) ?? conversationId;
}
