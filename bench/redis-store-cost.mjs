// `node bench/redis-store-cost.mjs <checkout> [tasks]` (after `npm run build` in <checkout>): what
// each step of a task's life in the redis store costs Redis, per task: its CPU time (`INFO cpu`,
// user + system) and the commands it ran (`INFO commandstats`, those called by scripts included).
// The steps, each run for every task before the next, 50 tasks at a time over 1,000
// conversations: create, read, LLM attempt, completion (history, usage roll-ups), final delivery
// record. Against a redis-server of its own on a free port (persistence off). The steps are the
// same for any checkout, so two checkouts' figures compare; run them one after the other (a run's
// figures move by a few percent from the last).
import { execFileSync, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const repo = process.argv[2];
const tasks = Number(process.argv[3] ?? 20000);
const AT_ONCE = 50;
const { createRedisStore } = await import(`${repo}/dist/store/redis-store.js`);
const { Redis } = await import(`${repo}/node_modules/ioredis/built/index.js`);

const port = await new Promise((resolve) => {
  const server = createServer().listen(0, '127.0.0.1', () => {
    const { port: free } = server.address();
    server.close(() => resolve(free));
  });
});
const dir = mkdtempSync(join(tmpdir(), 'redis-store-cost-'));
const redis = spawn(
  'redis-server',
  ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir],
  { stdio: 'ignore' },
);
const cli = (...args) => execFileSync('redis-cli', ['-p', String(port), ...args]).toString();
for (let tries = 0; ; tries += 1) {
  try {
    if (cli('PING').trim() === 'PONG') break;
  } catch (error) {
    if (tries > 100) throw error;
  }
  await new Promise((resolve) => setTimeout(resolve, 50));
}

const client = new Redis({ port, host: '127.0.0.1', enableAutoPipelining: true });
const store = createRedisStore(client, {
  historyMaxMessages: 20,
  historyTtlSeconds: 604_800,
  taskRetentionSeconds: 604_800,
});

const cpuMs = () => {
  const info = cli('INFO', 'cpu');
  const seconds = (name) => Number(new RegExp(`${name}:([\\d.]+)`).exec(info)[1]);
  return (seconds('used_cpu_user') + seconds('used_cpu_sys')) * 1000;
};
const commands = () => {
  let calls = 0;
  for (const [, count] of cli('INFO', 'commandstats').matchAll(/cmdstat_[^:]+:calls=(\d+)/g))
    calls += Number(count);
  return calls;
};

const ids = Array.from({ length: tasks }, () => randomUUID());
const conversation = (index) => `c${index % 1000}`;
const now = () => new Date().toISOString();
const figures = {};
async function step(name, run) {
  cli('CONFIG', 'RESETSTAT');
  const before = cpuMs();
  for (let start = 0; start < tasks; start += AT_ONCE) {
    await Promise.all(ids.slice(start, start + AT_ONCE).map((id, offset) => run(id, start + offset)));
  }
  const cpu = cpuMs() - before;
  figures[name] = {
    redisCpuUs: +((cpu * 1000) / tasks).toFixed(1),
    commands: +(commands() / tasks).toFixed(1),
  };
}

try {
  await step('create', (taskId, index) =>
    store.createTask({
      taskId,
      namespace: '',
      client: 'ip:127.0.0.1',
      conversationId: conversation(index),
      message: `run ${index}`,
      callbackUrl: 'http://127.0.0.1:9/cb',
      metadata: null,
      createdAt: now(),
    }),
  );
  await step('read', (taskId) => store.getTaskById(taskId));
  await step('llmAttempt', (taskId) => store.recordLlmAttempt(taskId));
  await step('complete', (taskId, index) =>
    store.completeGeneration(taskId, conversation(index), {
      reply: `Reply to run ${index}`,
      model: 'openai/gpt-4o-mini',
      usage: { prompt_tokens: 100, completion_tokens: 8, total_tokens: 108, cost: 0.0001 },
      completedAt: now(),
      namespace: '',
      conversationId: conversation(index),
      client: 'ip:127.0.0.1',
      llmDurationMs: 3,
    }),
  );
  await step('delivery', (taskId) =>
    store.recordDelivery(
      taskId,
      { at: now(), attempt: 1, status_code: 200, duration_ms: 2 },
      { status: 'completed', error: null },
    ),
  );
  const total = Object.values(figures).reduce((sum, { redisCpuUs }) => sum + redisCpuUs, 0);
  console.log(JSON.stringify({ repo, tasks, ...figures, redisCpuUsPerTask: +total.toFixed(1) }));
} finally {
  await store.close?.();
  client.disconnect();
  redis.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
}
