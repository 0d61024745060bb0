/**
 * The baseline the service is compared against: a bare `node:http` server that reads and
 * parses the same JSON body and answers the same `200 {"task_id", "status"}`, with nothing
 * durable and no validation beyond JSON.parse. Runs as its own process (like the service):
 *
 *   BASELINE_MODE=ingest  answers and does nothing else (ingest baseline)
 *   BASELINE_MODE=relay   also asks the LLM and POSTs the callback, one task of a conversation at
 *                         a time, all in memory (end-to-end baseline: what the harness and the
 *                         mock LLM allow on this machine)
 *
 * Env: PORT (required), HOST (default 127.0.0.1), LLM_BASE_URL (relay mode).
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { Agent, request } from 'undici';

const mode = process.env.BASELINE_MODE === 'relay' ? 'relay' : 'ingest';
const llmUrl = `${process.env.LLM_BASE_URL ?? 'http://127.0.0.1:8001/v1'}/chat/completions`;
const agent = new Agent({ keepAliveTimeout: 60_000 });

interface Task {
  taskId: string;
  message: string;
  callbackUrl: string;
  conversationId: string;
}

/** The tail of each conversation's chain: the next task of a conversation starts after it. */
const tails = new Map<string, Promise<void>>();

async function relay(task: Task): Promise<void> {
  const llm = await request(llmUrl, {
    method: 'POST',
    dispatcher: agent,
    headers: { 'content-type': 'application/json', authorization: 'Bearer bench' },
    body: JSON.stringify({ model: 'bench', messages: [{ role: 'user', content: task.message }] }),
  });
  const reply = (await llm.body.json()) as { choices?: Array<{ message?: { content?: string } }> };
  const callback = await request(task.callbackUrl, {
    method: 'POST',
    dispatcher: agent,
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      task_id: task.taskId,
      conversation_id: task.conversationId,
      status: 'completed',
      generated_response: reply.choices?.[0]?.message?.content ?? '',
    }),
  });
  await callback.body.dump();
}

function enqueue(task: Task): void {
  const previous = tails.get(task.conversationId) ?? Promise.resolve();
  const next = previous
    .then(() => relay(task))
    .catch((error: unknown) => {
      process.stderr.write(`relay failed: ${String(error)}\n`);
    });
  tails.set(task.conversationId, next);
  void next.then(() => {
    if (tails.get(task.conversationId) === next) tails.delete(task.conversationId);
  });
}

function answer(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function handle(req: IncomingMessage, res: ServerResponse, raw: string): void {
  if (req.method !== 'POST' || req.url !== '/webhook') {
    answer(res, req.url === '/readyz' ? 200 : 404, { detail: req.url === '/readyz' ? 'ok' : 'Not Found' });
    return;
  }
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(raw) as Record<string, unknown>;
  } catch {
    answer(res, 422, { detail: [{ type: 'json_invalid' }] });
    return;
  }
  const taskId = randomUUID();
  answer(res, 200, { task_id: taskId, status: 'Processing' });
  if (mode === 'relay') {
    const callbackUrl = String(body.callback_url);
    enqueue({
      taskId,
      message: String(body.message),
      callbackUrl,
      conversationId: typeof body.conversation_id === 'string' ? body.conversation_id : callbackUrl,
    });
  }
}

const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (chunk: Buffer) => chunks.push(chunk));
  req.on('end', () => handle(req, res, Buffer.concat(chunks).toString('utf8')));
});
server.keepAliveTimeout = 65_000;
server.listen({ port: Number(process.env.PORT), host: process.env.HOST ?? '127.0.0.1', backlog: 4096 });

const stop = (): void => {
  server.close();
  server.closeAllConnections();
  void agent.close().finally(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
