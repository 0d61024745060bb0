/**
 * Tracing (SPEC §11) against a real receiver: the service as real processes exports over
 * OTLP/HTTP to the test collector, in both modes (redis mode with separate API and worker
 * processes), and the tests assert on the tree it received: one trace per task from the
 * client's `traceparent` through the queue and the LLM call to the callback, the GenAI
 * attributes, `traceparent` on callbacks only when asked, no secret or message text anywhere,
 * and the same trace after a SIGKILL and a restart mid-task.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../../src/dev/harness.js';
import { useDeployment } from '../support/deployment.js';
import { postWebhook } from '../support/in-process-app.js';
import {
  type CollectedSpan,
  type OtlpCollector,
  SPAN_KIND,
  startOtlpCollector,
} from '../support/otlp-collector.js';
import type { ServiceProcess } from '../support/start-service.js';
import { attributeTexts, childrenOf, onlySpan, renderTree } from '../support/trace-tree.js';

const deployment = useDeployment();
const { llm, receiver } = deployment;

let collector: OtlpCollector;
beforeAll(async () => {
  collector = await startOtlpCollector();
});
afterAll(async () => {
  await collector.close();
});

const SECRETS = {
  apiKey: 'sk-llm-secret-5f1c9e27a0',
  token: 'tok-secret-8d2b41c7',
  webhookSecret: `whsec_${Buffer.from('webhook-signing-secret-bytes').toString('base64')}`,
  callbackQuery: 'cb-secret-63a0f9',
};
const MESSAGE = 'private message text 7f3e: never an attribute';
const MODEL = 'test/model-a';

/** What the printed tree shows of each span (the README's example is such a printout). */
const SHOWN_ATTRIBUTES = [
  'http.route',
  'http.response.status_code',
  'messaging.system',
  'llm_webhook.job.attempt',
  'llm_webhook.job.outcome',
  'gen_ai.provider.name',
  'gen_ai.response.model',
  'gen_ai.usage.input_tokens',
  'gen_ai.usage.output_tokens',
  'gen_ai.conversation.id',
  'llm_webhook.callback.attempt',
  'url.full',
];

const hex = (bytes: number): string => randomBytes(bytes).toString('hex');

type Mode = 'embedded' | 'redis';

/** The processes of one deployment: `api` takes webhooks, `worker` runs the jobs (one process when embedded). */
interface Running {
  api: ServiceProcess;
  worker: ServiceProcess;
  /** Starts the worker again (after it was killed), on the same data. */
  restartWorker(): Promise<ServiceProcess>;
}

async function deploy(mode: Mode, extra: Record<string, string> = {}): Promise<Running> {
  const tracing = {
    OTEL_EXPORTER_OTLP_ENDPOINT: collector.url,
    OTEL_BSP_SCHEDULE_DELAY: '50',
    API_KEY: SECRETS.apiKey,
    API_TOKENS: SECRETS.token,
    WEBHOOK_SECRET: SECRETS.webhookSecret,
    LLM_MODEL: MODEL,
    ...extra,
  };
  if (mode === 'embedded') {
    const env = deployment.env({ ...tracing, DATA_DIR: deployment.tempDir() });
    const all = await deployment.start('all', env);
    return {
      api: all,
      worker: all,
      restartWorker: () => deployment.start('all', env, { port: all.port }),
    };
  }
  const run = await deployment.freshRun();
  const env = run.env(tracing);
  const api = await deployment.start('api', env);
  const worker = await deployment.start('worker', env);
  return { api, worker, restartWorker: () => deployment.start('worker', env) };
}

async function submit(
  base: string,
  conversationId: string,
  headers: Record<string, string> = {},
): Promise<string> {
  const { status, json } = await postWebhook(
    base,
    {
      message: MESSAGE,
      callback_url: `${receiver.url}/hook?sig=${SECRETS.callbackQuery}`,
      conversation_id: conversationId,
    },
    { authorization: `Bearer ${SECRETS.token}`, ...headers },
  );
  expect(status, JSON.stringify(json)).toBe(200);
  return json.task_id as string;
}

/**
 * The spans of task `taskId`'s trace, once they are all in: the API's server span, `callbacks`
 * callback spans and the job runs around them (each process exports on its own schedule).
 */
async function traceOfTask(taskId: string, callbacks = 1): Promise<CollectedSpan[]> {
  const spansOf = (all: readonly CollectedSpan[]): CollectedSpan[] => {
    const send = all.find(
      (span) => span.name === 'send generate' && span.attributes['llm_webhook.task.id'] === taskId,
    );
    return send === undefined ? [] : all.filter((span) => span.traceId === send.traceId);
  };
  const complete = (spans: readonly CollectedSpan[]): boolean => {
    const byId = new Map(spans.map((span) => [span.spanId, span]));
    // Every ancestor of the callback spans is in, up to the server span.
    const rooted = (span: CollectedSpan): boolean => {
      if (span.name === 'POST /webhook') return true;
      const parent = byId.get(span.parentSpanId);
      return parent !== undefined && rooted(parent);
    };
    const sent = spans.filter((span) => span.name === 'POST callback');
    return sent.length >= callbacks && sent.every(rooted);
  };
  await collector.waitUntil((all) => complete(spansOf(all)));
  return spansOf(collector.spans);
}

/** Asserts the tree of one task and returns its spans by role. */
function expectTaskTree(spans: readonly CollectedSpan[], taskId: string, inline: boolean) {
  const server = onlySpan(spans, 'POST /webhook');
  expect(server.kind).toBe(SPAN_KIND.server);
  expect(server.attributes['http.route']).toBe('/webhook');
  expect(server.attributes['http.response.status_code']).toBe(200);
  const send = onlySpan(spans, 'send generate');
  expect(send.kind).toBe(SPAN_KIND.producer);
  // The producer is inside the request: under its server span, through the handler span.
  const handler = spans.find((span) => span.spanId === send.parentSpanId)!;
  expect(handler.parentSpanId).toBe(server.spanId);
  const process = spans.filter((span) => span.name === 'process generate');
  expect(process.length).toBeGreaterThanOrEqual(1);
  for (const run of process) {
    expect(run.kind).toBe(SPAN_KIND.consumer);
    expect(run.parentSpanId).toBe(send.spanId);
    expect(run.attributes).toMatchObject({ 'llm_webhook.task.id': taskId, 'messaging.message.id': taskId });
  }
  const lastRun = process.at(-1)!;
  const chat = onlySpan(childrenOf(spans, lastRun), `chat ${MODEL}`);
  expect(chat.kind).toBe(SPAN_KIND.client);
  expect(chat.attributes).toMatchObject({
    'gen_ai.operation.name': 'chat',
    'gen_ai.provider.name': 'openai',
    'gen_ai.request.model': MODEL,
    'gen_ai.response.model': MODEL,
    'gen_ai.usage.input_tokens': expect.any(Number),
    'gen_ai.usage.output_tokens': expect.any(Number),
    'llm_webhook.llm.attempt': lastRun.attributes['llm_webhook.job.attempt'],
    'server.address': '127.0.0.1',
  });
  expect(chat.attributes['gen_ai.conversation.id']).toEqual(expect.any(String));
  // A healthy receiver's first attempt is made by the run that stored the reply
  // (CALLBACK_FIRST_ATTEMPT=inline, the default); with `queued`, it is a job of the delivery queue.
  let parentOfCallback = lastRun;
  if (inline) {
    expect(spans.filter((span) => span.name === 'send deliver')).toEqual([]);
  } else {
    const sendDelivery = onlySpan(childrenOf(spans, lastRun), 'send deliver');
    expect(sendDelivery.kind).toBe(SPAN_KIND.producer);
    const deliveries = childrenOf(spans, sendDelivery);
    expect(deliveries.map((span) => [span.name, span.kind])).toEqual([
      ['process deliver', SPAN_KIND.consumer],
    ]);
    parentOfCallback = deliveries[0]!;
  }
  const callback = onlySpan(childrenOf(spans, parentOfCallback), 'POST callback');
  expect(callback.kind).toBe(SPAN_KIND.client);
  expect(callback.attributes).toMatchObject({
    'http.request.method': 'POST',
    'http.response.status_code': 200,
    'llm_webhook.callback.attempt': 1,
    'llm_webhook.callback.outcome': 'delivered',
    'llm_webhook.callback.duration_ms': expect.any(Number),
    'llm_webhook.callback.destination': new URL(receiver.url).origin,
    'url.full': `${receiver.url}/hook`,
  });
  return { server, handler, send, process, chat, delivery: parentOfCallback, callback };
}

/** No secret of the deployment and no message or reply text in any span or resource attribute. */
function expectNothingSecret(spans: readonly CollectedSpan[]): void {
  const texts = attributeTexts(spans).join('\n');
  for (const secret of [...Object.values(SECRETS), MESSAGE, 'private message text']) {
    expect(texts).not.toContain(secret);
  }
}

describe.each(['embedded', 'redis'] as const)('tracing, %s mode', (mode) => {
  it('makes one trace per task from the client’s traceparent to the callback, with GenAI attributes and no secret', async () => {
    // Embedded with the delivery queued (CALLBACK_FIRST_ATTEMPT=queued), so both shapes are seen.
    const { api, worker } = await deploy(
      mode,
      mode === 'embedded' ? { CALLBACK_FIRST_ATTEMPT: 'queued' } : {},
    );
    const clientTraceId = hex(16);
    const clientSpanId = hex(8);
    const continued = await submit(api.url, 'conversation-a', {
      traceparent: `00-${clientTraceId}-${clientSpanId}-01`,
    });
    const fresh = await submit(api.url, 'conversation-b');
    await deployment.deliveredAll([continued, fresh]);

    const first = await traceOfTask(continued);
    const second = await traceOfTask(fresh);
    const tree = expectTaskTree(first, continued, mode === 'redis');
    expectTaskTree(second, fresh, mode === 'redis');
    console.log(`${mode} mode, one task's trace:\n${renderTree(first, SHOWN_ATTRIBUTES)}`);

    // Continued from the client: its trace id, the server span a child of the client's span.
    expect(tree.server.traceId).toBe(clientTraceId);
    expect(tree.server.parentSpanId).toBe(clientSpanId);
    // The other task is a trace of its own, rooted at its server span.
    expect(second[0]!.traceId).not.toBe(clientTraceId);
    expect(onlySpan(second, 'POST /webhook').parentSpanId).toBe('');
    // Every span of a trace is that task's: nothing of one task lands in the other's trace.
    for (const span of [...first, ...second]) {
      const taskId = span.attributes['llm_webhook.task.id'];
      if (taskId !== undefined) expect(taskId).toBe(span.traceId === clientTraceId ? continued : fresh);
    }
    // The spans come from the process that did the work: across processes in redis mode.
    expect(tree.server.resource['process.pid']).toBe(api.child.pid);
    expect(tree.send.resource['process.pid']).toBe(api.child.pid);
    for (const span of [...tree.process, tree.chat, tree.delivery, tree.callback]) {
      expect(span.resource['process.pid']).toBe(worker.child.pid);
    }
    expect(tree.server.service).toBe('llm-webhook');

    // No traceparent on callbacks unless CALLBACK_TRACEPARENT=true.
    for (const callback of receiver.received) expect(callback.headers.traceparent).toBeUndefined();
    expectNothingSecret(collector.spans);

    // Log lines written inside a span carry its ids.
    const calling = worker.logs.find((line) => line.msg === 'calling LLM' && line.task_id === continued);
    expect(calling).toMatchObject({ trace_id: clientTraceId, span_id: tree.process.at(-1)!.spanId });
    const accepted = api.logs.find((line) => line.msg === 'task accepted' && line.task_id === continued);
    expect(accepted?.trace_id).toBe(clientTraceId);
  });

  it('shows each LLM and callback retry, and adds traceparent to callbacks with CALLBACK_TRACEPARENT=true', async () => {
    // OTLP/JSON this time, so both encodings of the exporter are decoded.
    const { api } = await deploy(mode, {
      CALLBACK_TRACEPARENT: 'true',
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      LLM_RETRY_SCHEDULE: '100ms',
    });
    llm.script([{ status: 429 }]);
    receiver.script([503]);
    const taskId = await submit(api.url, 'conversation-c');
    await receiver.waitFor((entry) => entry.json?.task_id === taskId && entry.status === 200);
    const spans = await traceOfTask(taskId, 2);
    const inOrder = (name: string): CollectedSpan[] =>
      spans.filter((span) => span.name === name).sort((a, b) => (a.startNs < b.startNs ? -1 : 1));

    // The rate-limited LLM call: a run that ends in a retry, then the run that succeeds.
    const runs = inOrder('process generate');
    expect(
      runs.map((run) => [
        run.attributes['llm_webhook.job.attempt'],
        run.attributes['llm_webhook.job.outcome'],
      ]),
    ).toEqual([
      [1, 'retry'],
      [2, 'done'],
    ]);
    const chats = inOrder(`chat ${MODEL}`);
    expect(
      chats.map((chat) => [
        chat.parentSpanId,
        chat.attributes['llm_webhook.llm.attempt'],
        chat.attributes['error.type'] ?? null,
        chat.statusCode,
      ]),
    ).toEqual([
      [runs[0]!.spanId, 1, 'llm_rate_limited', 2],
      [runs[1]!.spanId, 2, null, 0],
    ]);

    // The callback answered 503, then 200: two attempts, each with its own span.
    const callbacks = inOrder('POST callback');
    expect(
      callbacks.map((callback) => [
        callback.attributes['llm_webhook.callback.attempt'],
        callback.attributes['http.response.status_code'],
        callback.attributes['llm_webhook.callback.outcome'],
        callback.attributes['error.type'] ?? null,
      ]),
    ).toEqual([
      [1, 503, 'retry', '503'],
      [2, 200, 'delivered', null],
    ]);
    // Each attempt sent its own span as the receiver's parent.
    const sent = receiver.received.filter((entry) => entry.json?.task_id === taskId);
    expect(sent.map((entry) => entry.headers.traceparent)).toEqual(
      callbacks.map((callback) => `00-${callback.traceId}-${callback.spanId}-01`),
    );
    expect(collector.contentTypes.some((type) => type.startsWith('application/json'))).toBe(true);
    expectNothingSecret(spans);
  });

  it('keeps a task in its trace when its worker is SIGKILLed mid-task and restarted', async () => {
    llm.setLatency(60_000);
    const { api, worker, restartWorker } = await deploy(mode, { LLM_TIMEOUT_MS: '120000' });
    const taskId = await submit(api.url, 'conversation-d');
    // The request's spans are exported before the kill (the batch delay is short).
    await collector.waitUntil((all) => {
      const send = all.find(
        (span) => span.name === 'send generate' && span.attributes['llm_webhook.task.id'] === taskId,
      );
      return all.some((span) => span.name === 'POST /webhook' && span.traceId === send?.traceId);
    });
    await waitFor(() => llm.requests.length >= 1, 'the LLM call to start', { timeoutMs: 20_000 });
    expect((await worker.kill('SIGKILL')).signal).toBe('SIGKILL');

    llm.setLatency(0);
    await restartWorker();
    await deployment.deliveredAll([taskId]);
    const spans = await traceOfTask(taskId);
    const { process } = expectTaskTree(spans, taskId, true);
    // The killed run's span was never exported; the run after the restart is attempt 2, in the
    // same trace, under the same producer span.
    expect(process.map((run) => run.attributes['llm_webhook.job.attempt'])).toEqual([2]);
    console.log(`${mode} mode, after a SIGKILL:\n${renderTree(spans)}`);
  });
});
