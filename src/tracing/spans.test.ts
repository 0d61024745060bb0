/**
 * The spans made by hand, recorded in-process by the SDK with an in-memory exporter: what each
 * helper puts on its span (and what it leaves out), the queue wrapper's producer and consumer
 * pair, and the ids in log lines.
 */
import { Writable } from 'node:stream';
import { context, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { NodeSDK } from '@opentelemetry/sdk-node';
import { InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor } from '@opentelemetry/sdk-trace';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { LlmError } from '../llm/llm-errors.js';
import type { Job, JobHandler, JobQueue, NewJob } from '../queue/job-queue.js';
import { createLogger } from '../shared/logger.js';
import { traceCallbackAttempt } from './callback-span.js';
import { conversationIdForAttribute, createChatTracer, providerNameOf } from './llm-span.js';
import { urlForAttribute, withSpan } from './spans.js';
import { traceJobQueue } from './traced-job-queue.js';

const exporter = new InMemorySpanExporter();
const sdk = new NodeSDK({
  spanProcessors: [new SimpleSpanProcessor({ exporter })],
  // No detector whose attributes arrive later, which would hold every export back until then.
  resourceDetectors: [],
  metricReaders: [],
  logRecordProcessors: [],
});
beforeAll(() => sdk.start());
afterAll(() => sdk.shutdown());
beforeEach(() => exporter.reset());

const spanNamed = (name: string): ReadableSpan => {
  const found = exporter.getFinishedSpans().filter((span) => span.name === name);
  expect(found).toHaveLength(1);
  return found[0]!;
};

describe('attribute values', () => {
  it('drop a URL’s query string, fragment and credentials', () => {
    expect(urlForAttribute('https://user:pw@hooks.example/cb/1?token=s3cret#x')).toBe(
      'https://hooks.example/cb/1',
    );
    expect(urlForAttribute('not a url')).toBeNull();
    expect(conversationIdForAttribute('https://hooks.example/cb?sig=s3cret')).toBe(
      'https://hooks.example/cb',
    );
    expect(conversationIdForAttribute('support-42?not-a-url')).toBe('support-42?not-a-url');
  });

  it('name the GenAI provider after the endpoint’s host', () => {
    expect(providerNameOf('https://openrouter.ai/api/v1')).toBe('openrouter');
    expect(providerNameOf('https://api.groq.com/openai/v1')).toBe('groq');
    expect(providerNameOf('https://my-res.openai.azure.com/openai')).toBe('azure.ai.openai');
    expect(providerNameOf('http://127.0.0.1:8001/v1')).toBe('openai');
  });
});

describe('chat {model}', () => {
  const traceChat = createChatTracer('https://openrouter.ai/api/v1');

  it('carries the GenAI attributes of the request and of the reply, and no message text', async () => {
    const result = await traceChat(
      { model: 'openai/gpt-4o', conversationId: 'conv-1', attempt: 2 },
      async () => ({
        reply: 'the reply text',
        model: 'openai/gpt-4o-2024-08-06',
        usage: { prompt_tokens: 11, completion_tokens: 5, total_tokens: 16 },
      }),
    );
    expect(result.reply).toBe('the reply text');
    const span = spanNamed('chat openai/gpt-4o');
    expect(span.kind).toBe(SpanKind.CLIENT);
    expect(span.attributes).toEqual({
      'gen_ai.operation.name': 'chat',
      'gen_ai.provider.name': 'openrouter',
      'gen_ai.request.model': 'openai/gpt-4o',
      'gen_ai.response.model': 'openai/gpt-4o-2024-08-06',
      'gen_ai.usage.input_tokens': 11,
      'gen_ai.usage.output_tokens': 5,
      'gen_ai.conversation.id': 'conv-1',
      'llm_webhook.llm.attempt': 2,
      'server.address': 'openrouter.ai',
      'server.port': 443,
    });
  });

  it('marks a failed call with the LLM error’s stable type, and rethrows it', async () => {
    const failure = new LlmError({ type: 'llm_rate_limited', message: 'slow down', retryable: true });
    await expect(
      traceChat({ model: 'm', conversationId: 'c', attempt: 1 }, () => Promise.reject(failure)),
    ).rejects.toBe(failure);
    const span = spanNamed('chat m');
    expect(span.status).toEqual({ code: SpanStatusCode.ERROR, message: 'slow down' });
    expect(span.attributes['error.type']).toBe('llm_rate_limited');
    expect(span.attributes['gen_ai.response.model']).toBeUndefined();
  });
});

describe('POST callback', () => {
  const url = 'https://hooks.example:8443/in?key=s3cret';

  it('shows the attempt, its destination and outcome, the URL without its query string', async () => {
    let sentHeaders: Record<string, string> | undefined;
    await traceCallbackAttempt({ url, attempt: 3, propagate: false }, async (headers) => {
      sentHeaders = headers;
      return { type: 'retry' as const, statusCode: 503, durationMs: 12.4 };
    });
    expect(sentHeaders).toEqual({});
    const span = spanNamed('POST callback');
    expect(span.attributes).toEqual({
      'http.request.method': 'POST',
      'llm_webhook.callback.attempt': 3,
      'url.full': 'https://hooks.example:8443/in',
      'server.address': 'hooks.example',
      'server.port': 8443,
      'llm_webhook.callback.destination': 'https://hooks.example:8443',
      'http.response.status_code': 503,
      'llm_webhook.callback.outcome': 'retry',
      'llm_webhook.callback.duration_ms': 12,
      'error.type': '503',
    });
    expect(span.status.code).toBe(SpanStatusCode.ERROR);
  });

  it('hands the sender a traceparent naming the attempt’s span only when asked', async () => {
    let sentHeaders: Record<string, string> = {};
    await traceCallbackAttempt({ url, attempt: 1, propagate: true }, async (headers) => {
      sentHeaders = headers;
      return { type: 'delivered' as const, statusCode: 204, durationMs: 3 };
    });
    const span = spanNamed('POST callback');
    const { traceId, spanId } = span.spanContext();
    expect(sentHeaders).toEqual({ traceparent: `00-${traceId}-${spanId}-01` });
    expect(span.status.code).toBe(SpanStatusCode.UNSET);
  });
});

describe('traceJobQueue', () => {
  /** A queue that keeps what it is given and runs a job when told to. */
  function recordingQueue(): JobQueue & {
    stored: NewJob[];
    run(job: NewJob, attempt: number): ReturnType<JobHandler>;
  } {
    const stored: NewJob[] = [];
    let handler: JobHandler | null = null;
    return {
      stored,
      enqueue: async (job) => {
        stored.push(job);
        return true;
      },
      consume: (given) => {
        handler = given;
      },
      run: (job, attempt) => {
        const run: Job = {
          id: job.id,
          name: job.name,
          taskId: job.taskId,
          group: job.group ?? null,
          attempt,
          trace: job.trace ?? null,
          yieldSlot: () => {},
        };
        return handler!(run);
      },
      groupPending: async () => false,
      counts: async () => ({ waiting: 0, active: 0, delayed: 0 }),
      ping: async () => {},
      close: async () => {},
    };
  }

  it('stores the producer span’s context with the job; every run is a consumer span under it', async () => {
    const inner = recordingQueue();
    const queue = traceJobQueue(inner, 'sqlite');
    const seen: Array<string | undefined> = [];
    queue.consume(
      async (job) => {
        seen.push(trace.getActiveSpan()?.spanContext().spanId);
        return job.attempt === 1 ? { type: 'retry', delayMs: 250 } : { type: 'done' };
      },
      { concurrency: 1 },
    );
    await withSpan('request', { kind: SpanKind.SERVER }, () =>
      queue.enqueue({ id: 'task-1', name: 'generate', taskId: 'task-1' }),
    );
    const job = inner.stored[0]!;
    const producer = spanNamed('send generate');
    expect(producer.kind).toBe(SpanKind.PRODUCER);
    expect(producer.parentSpanContext?.spanId).toBe(spanNamed('request').spanContext().spanId);
    expect(job.trace?.traceparent).toBe(
      `00-${producer.spanContext().traceId}-${producer.spanContext().spanId}-01`,
    );

    // Two runs, outside any context (as a worker would): both under the producer, in its trace.
    await context.with(context.active(), () => inner.run(job, 1));
    await inner.run(job, 2);
    const runs = exporter.getFinishedSpans().filter((span) => span.name === 'process generate');
    expect(
      runs.map((span) => [span.kind, span.parentSpanContext?.spanId, span.spanContext().traceId]),
    ).toEqual([
      [SpanKind.CONSUMER, producer.spanContext().spanId, producer.spanContext().traceId],
      [SpanKind.CONSUMER, producer.spanContext().spanId, producer.spanContext().traceId],
    ]);
    expect(runs.map((span) => span.attributes['llm_webhook.job.outcome'])).toEqual(['retry', 'done']);
    expect(runs[0]!.attributes['llm_webhook.job.retry_delay_ms']).toBe(250);
    // The handler ran inside its run's span.
    expect(seen).toEqual(runs.map((span) => span.spanContext().spanId));
  });

  it('starts a trace of its own for a job stored without a carrier', async () => {
    const inner = recordingQueue();
    traceJobQueue(inner, 'bullmq').consume(async () => ({ type: 'done' }), { concurrency: 1 });
    await inner.run({ id: 'old', name: 'deliver', taskId: 't' }, 1);
    const run = spanNamed('process deliver');
    expect(run.parentSpanContext).toBeUndefined();
    expect(run.attributes['messaging.system']).toBe('bullmq');
  });
});

describe('log lines', () => {
  const capture = (traceIds: boolean) => {
    const lines: Array<Record<string, unknown>> = [];
    const destination = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(JSON.parse(chunk.toString('utf8')) as Record<string, unknown>);
        done();
      },
    });
    return { lines, logger: createLogger('info', destination, { traceIds }) };
  };

  it('carry the active span’s ids with tracing on, and none outside a span or with it off', async () => {
    const on = capture(true);
    const off = capture(false);
    await withSpan('work', { kind: SpanKind.INTERNAL }, async () => {
      on.logger.child({ task_id: 't' }).info('inside');
      off.logger.info('inside');
    });
    on.logger.info('outside');
    const { traceId, spanId } = spanNamed('work').spanContext();
    expect(on.lines[0]).toMatchObject({ msg: 'inside', task_id: 't', trace_id: traceId, span_id: spanId });
    expect(on.lines[1]).not.toHaveProperty('trace_id');
    expect(off.lines[0]).not.toHaveProperty('trace_id');
  });
});
