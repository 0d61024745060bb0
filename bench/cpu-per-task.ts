/**
 * CPU per task of one `all` process (and of Redis in redis mode): 300 tasks to warm up, then
 * TASKS (3000) of an instant mock LLM to one receiver in CONVERSATIONS (100) conversations, 50
 * requests at a time. Prints one JSON line: the service's CPU per task (every thread, /proc; also
 * split into user and system time),
 * and in redis mode Redis commands and CPU per task (`INFO`). Run two trees' copies at the same
 * time to compare them under the same noise:
 *
 *   MODE=embedded|redis|redis-api npx tsx bench/cpu-per-task.ts
 *
 * MODE=redis-api runs an `api` process alone and sends the tasks to it: CPU per accepted request.
 *
 * CPU_PROF=<dir> also writes the service's V8 CPU profiles there (bench/profile-summary.ts reads them);
 * REDIS_COMMANDSTATS=<file> writes Redis' `INFO commandstats` at the end (calls and µs by command,
 * those run inside scripts included); STRACE=<file> the service's system calls during the measured
 * tasks (`strace -c`); SERVICE_ENV=NAME=value,... adds settings for the service.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../src/dev/harness.js';
import { type RedisServer, startRedisServer } from '../test/support/redis-server.js';
import {
  cpuTimeMs,
  cpuTimesMs,
  killAll,
  pairsEnv,
  ROOT,
  spawnChild,
  startService,
  waitUntilReady,
} from './processes.js';
import { startReceiver } from './receiver.js';
import { redisCli, redisStats } from './redis-stats.js';

const mode = process.env.MODE === 'redis' || process.env.MODE === 'redis-api' ? 'redis' : 'embedded';
/** MODE=redis-api: an `api` process alone, CPU per accepted request (no worker: tasks stay queued). */
const apiOnly = process.env.MODE === 'redis-api';
const tasks = Number(process.env.TASKS ?? 3000);
const conversations = Number(process.env.CONVERSATIONS ?? 100);

const llmPort = await freePort();
const llm = spawnChild('mock LLM', [join(ROOT, 'dist/dev/mock-llm.js')], {
  cwd: ROOT,
  env: { MOCK_LLM_PORT: String(llmPort), MOCK_LLM_HOST: '127.0.0.1', MOCK_LLM_LATENCY_MS: '0' },
});
await waitUntilReady(llm, `http://127.0.0.1:${llmPort}/v1/models`, { anyStatus: true });
const receiver = await startReceiver();
const dataDir = mkdtempSync(join(tmpdir(), 'cpu-per-task-'));
const env: Record<string, string> = {
  HOST: '127.0.0.1',
  DATA_DIR: dataDir,
  API_KEY: 'bench',
  LLM_BASE_URL: `http://127.0.0.1:${llmPort}/v1`,
  CALLBACK_ALLOWED_HOSTS: '127.0.0.1',
  RATE_LIMIT: 'off',
  LOG_LEVEL: 'warn',
  WORKER_CONCURRENCY: '100',
  ...pairsEnv('SERVICE_ENV'),
};
let redis: RedisServer | null = null;
if (mode === 'redis') {
  redis = await startRedisServer();
  env.REDIS_URL = redis.url;
}
const service = await startService('service (all)', {
  role: apiOnly ? 'api' : 'all',
  env,
  cwd: dataDir,
  ...(process.env.CPU_PROF ? { cpuProfileDir: process.env.CPU_PROF } : {}),
});

async function send(count: number, tag: string): Promise<void> {
  const ids: string[] = [];
  let next = 0;
  const sender = async (): Promise<void> => {
    while (next < count) {
      const index = next++;
      const response = await fetch(`${service.url}/webhook`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: 'Bearer bench' },
        body: JSON.stringify({
          message: `${tag} ${index}`,
          callback_url: receiver.url,
          conversation_id: `c${index % conversations}`,
        }),
      });
      const body = (await response.json()) as { task_id?: string };
      if (body.task_id === undefined) throw new Error(`not accepted: ${JSON.stringify(body)}`);
      ids.push(body.task_id);
    }
  };
  await Promise.all(Array.from({ length: 50 }, sender));
  if (apiOnly) return;
  const arrived = await receiver.waitFor(ids, { idleMs: 20_000, deadlineMs: 120_000 });
  if (arrived !== count) throw new Error(`only ${arrived} of ${count} callbacks arrived`);
}

try {
  await send(300, 'warm');
  const cpuBefore = cpuTimesMs(service.pid) ?? { user: 0, system: 0 };
  const llmCpuBefore = cpuTimeMs(llm.pid) ?? 0;
  const redisBefore = redis === null ? null : redisStats(redis.url);
  // STRACE=<file>: the service's system calls during the measured tasks, counted by strace -c.
  const strace = process.env.STRACE
    ? spawn('strace', ['-f', '-c', '-p', String(service.pid), '-o', process.env.STRACE], { stdio: 'ignore' })
    : null;
  if (strace !== null) await new Promise((resolve) => setTimeout(resolve, 1000));
  await send(tasks, 'run');
  if (strace !== null) {
    strace.kill('SIGINT');
    await new Promise((resolve) => strace.once('exit', resolve));
  }
  await new Promise((resolve) => setTimeout(resolve, 1500));
  const cpuAfter = cpuTimesMs(service.pid) ?? cpuBefore;
  const figures: Record<string, number> = {
    serviceCpuMsPerTask: (cpuAfter.user + cpuAfter.system - cpuBefore.user - cpuBefore.system) / tasks,
    serviceUserMsPerTask: (cpuAfter.user - cpuBefore.user) / tasks,
    serviceSystemMsPerTask: (cpuAfter.system - cpuBefore.system) / tasks,
    mockLlmCpuMsPerTask: ((cpuTimeMs(llm.pid) ?? 0) - llmCpuBefore) / tasks,
  };
  if (redisBefore !== null) {
    const after = redisStats(redis!.url);
    figures.redisCommandsPerTask = (after.commands - redisBefore.commands) / tasks;
    figures.redisCpuMsPerTask = (after.cpuMs - redisBefore.cpuMs) / tasks;
  }
  console.log(JSON.stringify({ mode: process.env.MODE ?? mode, tasks, ...figures }));
  if (redis !== null && process.env.REDIS_COMMANDSTATS) {
    writeFileSync(process.env.REDIS_COMMANDSTATS, redisCli(redis.url, 'INFO', 'commandstats'));
  }
} finally {
  await service.stop();
  await llm.stop();
  await receiver.close();
  await redis?.stop();
  killAll();
  rmSync(dataDir, { recursive: true, force: true });
}
