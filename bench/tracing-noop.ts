/**
 * What the span helpers cost a task with tracing off (no SDK registered: every call of
 * `@opentelemetry/api` is a no-op): the LLM call's and a callback attempt's helper, around work
 * that does nothing, against the same work called directly. The queue wrapper and the log-line
 * hook are not even installed when tracing is off, so they cost nothing to measure.
 *
 * Two figures for each: the helper itself with no SDK (what tracing costs before it is even
 * turned on), and what the service runs with tracing off, where the helpers are made with
 * `enabled` false and call the work directly.
 *
 * `npx tsx bench/tracing-noop.ts` (prints nanoseconds per call, the median of 7 rounds).
 */
import { createCallbackTracer, traceCallbackAttempt } from '../src/tracing/callback-span.js';
import { createChatTracer } from '../src/tracing/llm-span.js';

const CALLS = 200_000;
const ROUNDS = 7;

const reply = { reply: 'r', model: 'm', usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } };
const outcome = { type: 'delivered' as const, statusCode: 200, durationMs: 1 };
const traceChat = createChatTracer('https://openrouter.ai/api/v1');
const chatOff = createChatTracer('https://openrouter.ai/api/v1', false);
const attemptOff = createCallbackTracer(false);
const request = { model: 'm', conversationId: 'https://hooks.example/cb?k=v', attempt: 1 };
const callback = { url: 'https://hooks.example/cb?k=v', attempt: 1, propagate: false };

async function nsPerCall(run: () => Promise<unknown>): Promise<number> {
  const rounds: number[] = [];
  for (let round = 0; round < ROUNDS; round += 1) {
    const startedAt = process.hrtime.bigint();
    for (let call = 0; call < CALLS; call += 1) await run();
    rounds.push(Number(process.hrtime.bigint() - startedAt) / CALLS);
  }
  return rounds.sort((a, b) => a - b)[Math.floor(ROUNDS / 2)]!;
}

const direct = await nsPerCall(async () => reply);
const chat = await nsPerCall(() => traceChat(request, async () => reply));
const directSend = await nsPerCall(async () => outcome);
const attempt = await nsPerCall(() => traceCallbackAttempt(callback, async () => outcome));
const chatDisabled = await nsPerCall(() => chatOff(request, async () => reply));
const attemptDisabled = await nsPerCall(() => attemptOff(callback, async () => outcome));
process.stdout.write(
  `${JSON.stringify({
    llmCallDirectNs: Math.round(direct),
    llmCallNoSdkNs: Math.round(chat),
    llmCallTracingOffNs: Math.round(chatDisabled),
    callbackDirectNs: Math.round(directSend),
    callbackNoSdkNs: Math.round(attempt),
    callbackTracingOffNs: Math.round(attemptDisabled),
    addedPerTaskNoSdkNs: Math.round(chat - direct + attempt - directSend),
    addedPerTaskTracingOffNs: Math.round(chatDisabled - direct + attemptDisabled - directSend),
  })}\n`,
);
