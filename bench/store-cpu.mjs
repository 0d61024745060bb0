// `node bench/store-cpu.mjs <checkout> [tasks]` (after `npm run build` in <checkout>): the CPU time
// (user + system of this process, all threads: less sensitive to a loaded machine than wall time)
// of the embedded store's task lifecycle, per task: create, read, processing, LLM attempt,
// history read, completeGeneration (history append), final delivery record, read; 200 tasks at a
// time over 1,000 conversations, like a busy worker, after 2,000 tasks of warm-up. Used to compare
// SQLite drivers: run it alternately on checkouts that differ only in the driver.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const repo = process.argv[2];
const tasks = Number(process.argv[3] ?? 20000);
const { openSqliteDatabase } = await import(`${repo}/dist/store/sqlite-database.js`);
const { createSqliteStore } = await import(`${repo}/dist/store/sqlite-store.js`);
const dir = mkdtempSync(join(tmpdir(), 'store-cpu-'));
const db = openSqliteDatabase({ path: join(dir, 'db.sqlite') });
const store = createSqliteStore(db, {
  historyMaxMessages: 20,
  historyTtlSeconds: 3600,
  taskRetentionSeconds: 3600,
});
const one = async (i) => {
  const taskId = `t-${i}`;
  const key = `c-${i % 1000}`;
  const now = new Date().toISOString();
  await store.createTask({
    taskId,
    namespace: '',
    conversationId: key,
    message: `hello ${i} `.repeat(10),
    callbackUrl: 'http://127.0.0.1:9/cb',
    metadata: { i },
    createdAt: now,
  });
  await store.getTaskById(taskId);
  await store.setStatus(taskId, 'processing');
  await store.recordLlmAttempt(taskId);
  await store.getHistory(key, 20);
  await store.completeGeneration(taskId, key, {
    reply: `reply ${i} `.repeat(20),
    model: 'm',
    usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
    completedAt: now,
  });
  await store.recordDelivery(
    taskId,
    { at: now, status_code: 200, duration_ms: 1 },
    { status: 'completed', error: null },
  );
  await store.getTask('', taskId);
};
const warm = 2000;
for (let b = 0; b < warm; b += 200)
  await Promise.all(Array.from({ length: 200 }, (_, j) => one(1e9 + b + j)));
const cpu0 = process.cpuUsage();
const t0 = performance.now();
for (let b = 0; b < tasks; b += 200) await Promise.all(Array.from({ length: 200 }, (_, j) => one(b + j)));
const wall = performance.now() - t0;
const cpu = process.cpuUsage(cpu0);
await store.close?.();
db.close();
rmSync(dir, { recursive: true, force: true });
const cpuMs = (cpu.user + cpu.system) / 1000;
console.log(
  JSON.stringify({
    repo,
    node: process.version,
    tasks,
    cpuUsPerTask: +((cpuMs * 1000) / tasks).toFixed(1),
    wallMs: Math.round(wall),
    tasksPerCpuSecond: Math.round(tasks / (cpuMs / 1000)),
  }),
);
