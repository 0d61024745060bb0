/**
 * `npm run bench`: starts the mock LLM, a callback receiver, a redis-server of its own and the
 * service as real processes on 127.0.0.1, runs each scenario several times, prints one table of
 * medians against the targets, and writes it as JSON under bench/results/.
 *
 * Settings (env): BENCH_RUNS (3), BENCH_INGEST_SECONDS (10), BENCH_INGEST_CONNECTIONS (50),
 * BENCH_WARMUP_SECONDS (2), BENCH_TASKS (5000), BENCH_CONVERSATIONS (1000), BENCH_CONCURRENCY
 * (200), BENCH_SLOW_LATENCY_MS (1000), BENCH_SLOW_CONCURRENCY (2000), BENCH_CONSOLE_TASKS
 * (100000), BENCH_SCENARIOS (ingest,instant,slow,scale,isolation,console), BENCH_MODES (embedded,redis), BENCH_QUICK=1 (a fast smoke run),
 * BENCH_CPU_PROF=<dir> (service processes write V8 CPU profiles there), BENCH_OUT=<file>,
 * BENCH_SERVICE_ENV=NAME=value,... (extra settings for the service processes), BENCH_TRACING
 * (off; `off,on` measures every mode of ingest, instant and slow also with tracing on, exporting
 * to an OTLP sink on 127.0.0.1, as `<mode> +tracing`, side by side in the same run).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, freemem, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../src/dev/harness.js';
import { type RedisServer, startRedisServer } from '../test/support/redis-server.js';
import { type ConsoleResults, consoleRows, measureConsole, seedRedis, seedSqlite } from './console.js';
import { type EndToEndFigures, runEndToEnd } from './e2e.js';
import { type IngestFigures, runIngest } from './ingest.js';
import { type IsolationFigures, runIsolation } from './isolation.js';
import { type OtlpSink, startOtlpSink } from './otlp-sink.js';
import {
  type Child,
  cpuTimeMs,
  killAll,
  pairsEnv,
  peakRssBytes,
  ROOT,
  type Service,
  spawnChild,
  startService,
  waitUntilReady,
} from './processes.js';
import { type Receiver, startReceiver } from './receiver.js';
import { buildRows, formatTable, type Results } from './report.js';
import { median, medianOf } from './stats.js';

type Mode = 'embedded' | 'redis';
type Scenario = 'ingest' | 'instant' | 'slow' | 'scale' | 'isolation' | 'console';
type Tracing = 'off' | 'on';

function intEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0)
    throw new Error(`${name}=${raw}: expected a non-negative integer`);
  return value;
}

function listEnv<T extends string>(
  name: string,
  allowed: readonly T[],
  fallback: readonly T[] = allowed,
): T[] {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === '') return [...fallback];
  const values = raw.split(',').map((part) => part.trim());
  for (const value of values) {
    if (!allowed.includes(value as T))
      throw new Error(`${name}: unknown "${value}", expected ${allowed.join(',')}`);
  }
  return values as T[];
}

const quick = process.env.BENCH_QUICK === '1';
const settings = {
  quick,
  runs: intEnv('BENCH_RUNS', quick ? 1 : 3),
  ingestSeconds: intEnv('BENCH_INGEST_SECONDS', quick ? 2 : 10),
  ingestConnections: intEnv('BENCH_INGEST_CONNECTIONS', 50),
  warmupSeconds: intEnv('BENCH_WARMUP_SECONDS', quick ? 1 : 2),
  tasks: intEnv('BENCH_TASKS', quick ? 500 : 5000),
  conversations: intEnv('BENCH_CONVERSATIONS', quick ? 100 : 1000),
  concurrency: intEnv('BENCH_CONCURRENCY', 200),
  slowLatencyMs: intEnv('BENCH_SLOW_LATENCY_MS', 1000),
  slowConcurrency: intEnv('BENCH_SLOW_CONCURRENCY', 2000),
  consoleTasks: intEnv('BENCH_CONSOLE_TASKS', quick ? 10_000 : 100_000),
  scenarios: listEnv<Scenario>('BENCH_SCENARIOS', [
    'ingest',
    'instant',
    'slow',
    'scale',
    'isolation',
    'console',
  ]),
  modes: listEnv<Mode>('BENCH_MODES', ['embedded', 'redis']),
  cpuProfileDir: process.env.BENCH_CPU_PROF || undefined,
  serviceEnv: pairsEnv('BENCH_SERVICE_ENV'),
  tracing: listEnv<Tracing>('BENCH_TRACING', ['off', 'on'], ['off']),
};

/** Each mode measured, as `embedded`, and with tracing on as `embedded +tracing` when asked. */
function variants(): Array<{ mode: Mode; tracing: boolean; label: string }> {
  return settings.modes.flatMap((mode) =>
    settings.tracing.map((tracing) => ({
      mode,
      tracing: tracing === 'on',
      label: tracing === 'on' ? `${mode} +tracing` : mode,
    })),
  );
}

const workDir = mkdtempSync(join(tmpdir(), 'llm-webhook-bench-'));
let redis: RedisServer | null = null;
let receiver: Receiver | null = null;
let otlpSink: OtlpSink | null = null;
const mockLlms = new Map<number, { child: Child; url: string }>();

function log(line: string): void {
  process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`);
}

async function mockLlm(latencyMs: number): Promise<string> {
  const known = mockLlms.get(latencyMs);
  if (known !== undefined) return known.url;
  const port = await freePort();
  const child = spawnChild(`mock LLM (${latencyMs} ms)`, [join(ROOT, 'dist/dev/mock-llm.js')], {
    cwd: workDir,
    env: { MOCK_LLM_PORT: String(port), MOCK_LLM_HOST: '127.0.0.1', MOCK_LLM_LATENCY_MS: String(latencyMs) },
  });
  const url = `http://127.0.0.1:${port}/v1`;
  await waitUntilReady(child, `${url}/chat/completions`, { anyStatus: true });
  mockLlms.set(latencyMs, { child, url });
  return url;
}

async function startBaseline(mode: 'ingest' | 'relay', llmUrl: string): Promise<Service> {
  const port = await freePort();
  const child = spawnChild(
    `baseline (${mode})`,
    ['--import', 'tsx', join(ROOT, 'bench/baseline-server.ts')],
    {
      cwd: ROOT,
      env: { PORT: String(port), BASELINE_MODE: mode, LLM_BASE_URL: llmUrl },
    },
  );
  const url = `http://127.0.0.1:${port}`;
  await waitUntilReady(child, `${url}/readyz`);
  return { ...child, url };
}

interface Deployment {
  /** Base URL of the API. */
  url: string;
  processes: Service[];
  stop(): Promise<void>;
}

/**
 * A fresh deployment: embedded is one `all` process on a new DATA_DIR; redis is one `api` and
 * `workers` worker processes on an emptied redis-server.
 */
async function deploy(
  mode: Mode,
  options: {
    llmUrl: string;
    workerConcurrency: number;
    workers?: number;
    label: string;
    /** Runs once the backend is ready and before any service process starts (to seed the store). */
    beforeStart?: (env: Readonly<Record<string, string>>) => Promise<void>;
    tracing?: boolean;
  },
): Promise<Deployment> {
  if (options.tracing === true) otlpSink ??= await startOtlpSink();
  const runDir = mkdtempSync(join(workDir, 'run-'));
  const env: Record<string, string> = {
    HOST: '127.0.0.1',
    DATA_DIR: join(runDir, 'data'),
    API_KEY: 'bench',
    LLM_BASE_URL: options.llmUrl,
    CALLBACK_ALLOWED_HOSTS: '127.0.0.1',
    RATE_LIMIT: 'off',
    LOG_LEVEL: 'warn',
    WORKER_CONCURRENCY: String(options.workerConcurrency),
    // The SDK's defaults otherwise (a batch every 5 s, up to 512 spans each).
    ...(options.tracing === true ? { OTEL_EXPORTER_OTLP_ENDPOINT: otlpSink!.url } : {}),
    ...settings.serviceEnv,
  };
  const cpuProfileDir =
    settings.cpuProfileDir === undefined ? undefined : join(settings.cpuProfileDir, options.label);
  const common = { env, cwd: runDir, ...(cpuProfileDir === undefined ? {} : { cpuProfileDir }) };
  const processes: Service[] = [];
  const stop = async (): Promise<void> => {
    await Promise.all(processes.map((process) => process.stop()));
    rmSync(runDir, { recursive: true, force: true });
  };
  try {
    if (mode === 'embedded') {
      await options.beforeStart?.(env);
      processes.push(await startService('service (all)', { ...common, role: 'all' }));
    } else {
      if (redis === null) redis = await startRedisServer();
      else await redis.restart();
      env.REDIS_URL = redis.url;
      await options.beforeStart?.(env);
      processes.push(await startService('service (api)', { ...common, role: 'api' }));
      for (let index = 0; index < (options.workers ?? 1); index += 1) {
        processes.push(await startService(`service (worker ${index + 1})`, { ...common, role: 'worker' }));
      }
    }
  } catch (error) {
    await stop();
    throw error;
  }
  return { url: processes[0]!.url, processes, stop };
}

async function warmIngest(baseUrl: string): Promise<void> {
  if (settings.warmupSeconds === 0) return;
  await runIngest({
    baseUrl,
    callbackUrl: receiver!.url,
    connections: settings.ingestConnections,
    seconds: settings.warmupSeconds,
  });
}

async function ingestScenario(results: Results): Promise<void> {
  const llmUrl = await mockLlm(0);
  const measure = async (label: string, target: () => Promise<{ url: string; stop(): Promise<void> }>) => {
    const runs: IngestFigures[] = [];
    for (let run = 0; run < settings.runs; run += 1) {
      const deployment = await target();
      try {
        await warmIngest(deployment.url);
        receiver!.reset();
        otlpSink?.take();
        const figures = await runIngest({
          baseUrl: deployment.url,
          callbackUrl: receiver!.url,
          connections: settings.ingestConnections,
          seconds: settings.ingestSeconds,
        });
        log(
          `ingest ${label} run ${run + 1}: ${figures.acceptedPerSecond.toFixed(0)}/s, p50 ${figures.p50Ms} ms, p99 ${figures.p99Ms} ms, non-2xx ${figures.non2xx}${exportedNote()}, ${receiver!.arrivals.size} callbacks meanwhile`,
        );
        runs.push(figures);
      } finally {
        await deployment.stop();
        receiver!.reset();
      }
    }
    results.ingest[label] = { median: medianOf(runs), runs };
  };
  await measure('baseline', () => startBaseline('ingest', llmUrl));
  for (const { mode, tracing, label } of variants()) {
    await measure(label, () =>
      deploy(mode, { llmUrl, workerConcurrency: 100, label: `ingest-${label}`, tracing }),
    );
  }
  if (settings.modes.includes('redis')) {
    // The API tier alone, as when the workers run on other machines: the same API process, no
    // worker taking CPU from it on this machine's two cores.
    await measure('redis (api alone)', () =>
      deploy('redis', { llmUrl, workerConcurrency: 100, label: 'ingest-redis-api', workers: 0 }),
    );
  }
}

interface EndToEndCase {
  label: string;
  start: () => Promise<Deployment>;
  conversations: number;
  llmLatencyMs: number;
  /** Sample the peak RSS of each process at the end of every run. */
  sampleMemory: boolean;
}

async function endToEnd(
  group: Record<string, Results['instant'][string]>,
  testCase: EndToEndCase,
): Promise<void> {
  const runs: EndToEndFigures[] = [];
  const memory: Record<string, number[]> = {};
  for (let run = 0; run < settings.runs; run += 1) {
    const deployment = await testCase.start();
    try {
      const warmTasks = Math.min(settings.tasks, Math.max(200, Math.round(settings.tasks / 10)));
      await runEndToEnd({
        baseUrl: deployment.url,
        receiver: receiver!,
        tasks: warmTasks,
        conversations: Math.min(warmTasks, testCase.conversations),
        concurrency: settings.concurrency,
        llmLatencyMs: testCase.llmLatencyMs,
        idleTimeoutMs: 20_000,
        runId: `warm-${run}`,
      });
      otlpSink?.take();
      const cpuBefore = deployment.processes.map((child) => cpuTimeMs(child.pid) ?? 0);
      const figures = await runEndToEnd({
        baseUrl: deployment.url,
        receiver: receiver!,
        tasks: settings.tasks,
        conversations: testCase.conversations,
        concurrency: settings.concurrency,
        llmLatencyMs: testCase.llmLatencyMs,
        idleTimeoutMs: 20_000,
        runId: `run-${run}`,
      });
      // CPU the service's processes used for the measured tasks: far steadier than throughput on
      // a machine shared with other work (it counts only what this service did).
      const cpuMs = deployment.processes.reduce(
        (total, child, index) => total + ((cpuTimeMs(child.pid) ?? 0) - cpuBefore[index]!),
        0,
      );
      figures.serviceCpuMsPerTask = cpuMs / Math.max(1, figures.accepted);
      if (testCase.sampleMemory) {
        for (const child of deployment.processes) {
          const bytes = peakRssBytes(child.pid);
          if (bytes === null) continue;
          memory[child.name] ??= [];
          memory[child.name]!.push(bytes / 2 ** 20);
        }
      }
      log(
        `${testCase.label} run ${run + 1}: ${figures.completionsPerSecond.toFixed(0)}/s, p50 ${figures.p50Ms.toFixed(1)} ms, p99 ${figures.p99Ms.toFixed(1)} ms, lost ${figures.lost}, rejected ${figures.rejected}, failed ${figures.failed}, sent in ${figures.sendSeconds.toFixed(1)} s, service CPU ${figures.serviceCpuMsPerTask!.toFixed(2)} ms/task${missingNote(figures)}${exportedNote()}`,
      );
      runs.push(figures);
    } finally {
      await deployment.stop();
      receiver!.reset();
    }
  }
  group[testCase.label] = {
    median: medianOf(runs),
    runs,
    ...(testCase.sampleMemory
      ? {
          peakRssMiB: Object.fromEntries(
            Object.entries(memory).map(([name, values]) => [name, median(values)]),
          ),
        }
      : {}),
  };
}

/** What the traced deployment exported during the measured part of the run (batches still due come later). */
function exportedNote(): string {
  const taken = otlpSink?.take();
  if (taken === undefined || taken.exports === 0) return '';
  return `; exported ${taken.exports} batches, ${(taken.bytes / 2 ** 20).toFixed(1)} MiB`;
}

function missingNote(figures: EndToEndFigures): string {
  const sampled = Object.entries(figures).filter(([key]) => key.startsWith('missingSampled_'));
  if (sampled.length === 0) return '';
  return `; sampled missing tasks: ${sampled.map(([key, count]) => `${key.slice(15)} ${count}`).join(', ')}`;
}

function baselineCase(llmUrl: string, conversations: number, llmLatencyMs: number): EndToEndCase {
  return {
    label: 'baseline',
    start: async () => {
      const baseline = await startBaseline('relay', llmUrl);
      return { url: baseline.url, processes: [baseline], stop: () => baseline.stop() };
    },
    conversations,
    llmLatencyMs,
    sampleMemory: false,
  };
}

async function instantScenario(results: Results): Promise<void> {
  const llmUrl = await mockLlm(0);
  const cases: EndToEndCase[] = [baselineCase(llmUrl, settings.conversations, 0)];
  for (const { mode, tracing, label } of variants()) {
    cases.push({
      label,
      start: () => deploy(mode, { llmUrl, workerConcurrency: 100, label: `instant-${label}`, tracing }),
      conversations: settings.conversations,
      llmLatencyMs: 0,
      sampleMemory: true,
    });
  }
  for (const testCase of cases) await endToEnd(results.instant, testCase);
}

async function slowScenario(results: Results): Promise<void> {
  const llmUrl = await mockLlm(settings.slowLatencyMs);
  for (const { mode, tracing, label } of variants()) {
    await endToEnd(results.slow, {
      label,
      start: () =>
        deploy(mode, {
          llmUrl,
          workerConcurrency: settings.slowConcurrency,
          label: `slow-${label}`,
          tracing,
        }),
      conversations: settings.tasks,
      llmLatencyMs: settings.slowLatencyMs,
      sampleMemory: true,
    });
  }
}

async function scaleScenario(results: Results): Promise<void> {
  if (!settings.modes.includes('redis')) return;
  const llmUrl = await mockLlm(0);
  for (const workers of [1, 2]) {
    const label = `redis-${workers}w`;
    const known = workers === 1 ? results.instant.redis : undefined;
    if (known !== undefined) {
      results.scale[label] = known;
      continue;
    }
    await endToEnd(results.scale, {
      label,
      start: () => deploy('redis', { llmUrl, workerConcurrency: 100, workers, label: `scale-${label}` }),
      conversations: settings.conversations,
      llmLatencyMs: 0,
      sampleMemory: true,
    });
  }
}

/** One receiver that never answers and one that answers 500, beside a healthy one (bench/isolation.ts). */
async function isolationScenario(results: Results): Promise<void> {
  const llmUrl = await mockLlm(0);
  for (const mode of settings.modes) {
    const runs: IsolationFigures[] = [];
    for (let run = 0; run < settings.runs; run += 1) {
      const deployment = await deploy(mode, { llmUrl, workerConcurrency: 100, label: `isolation-${mode}` });
      try {
        const figures = await runIsolation({
          baseUrl: deployment.url,
          receiver: receiver!,
          runId: `iso-${run}`,
        });
        log(
          `isolation ${mode} run ${run + 1}: healthy p50 ${figures.baselineP50Ms.toFixed(1)} ms alone, ${figures.deadP50Ms.toFixed(1)} ms beside a dead receiver, ${figures.failingP50Ms.toFixed(1)} ms beside a failing one`,
        );
        runs.push(figures);
      } finally {
        await deployment.stop();
        receiver!.reset();
      }
    }
    results.isolation[mode] = { median: medianOf(runs), runs };
  }
}

async function consoleScenario(results: ConsoleResults): Promise<void> {
  const llmUrl = await mockLlm(0);
  for (const mode of settings.modes) {
    const count = settings.consoleTasks;
    const deployment = await deploy(mode, {
      llmUrl,
      workerConcurrency: 100,
      label: `console-${mode}`,
      beforeStart: async (env) => {
        const started = performance.now();
        if (mode === 'embedded') await seedSqlite(env.DATA_DIR!, count);
        else await seedRedis(env.REDIS_URL!, count);
        log(
          `console ${mode}: ${count} tasks seeded in ${((performance.now() - started) / 1000).toFixed(1)} s`,
        );
      },
    });
    try {
      results[mode] = await measureConsole(deployment.url);
      for (const [call, figures] of Object.entries(results[mode])) {
        log(
          `console ${mode} ${call}: p50 ${figures.p50Ms.toFixed(1)} ms, p95 ${figures.p95Ms.toFixed(1)} ms`,
        );
      }
    } finally {
      await deployment.stop();
    }
  }
}

async function cleanup(): Promise<void> {
  killAll();
  await redis?.stop();
  await receiver?.close();
  await otlpSink?.close();
  rmSync(workDir, { recursive: true, force: true });
}

async function main(): Promise<void> {
  const startedAt = new Date();
  // Other work on the machine shows here: the figures are only as steady as the machine was.
  const loadAtStart = loadavg();
  log(
    `settings: ${JSON.stringify(settings)}; load average ${loadAtStart.map((load) => load.toFixed(2)).join(' ')}`,
  );
  receiver = await startReceiver();
  const results: Results = { ingest: {}, instant: {}, slow: {}, scale: {}, isolation: {} };
  if (settings.scenarios.includes('ingest')) await ingestScenario(results);
  if (settings.scenarios.includes('instant')) await instantScenario(results);
  if (settings.scenarios.includes('slow')) await slowScenario(results);
  if (settings.scenarios.includes('scale')) await scaleScenario(results);
  if (settings.scenarios.includes('isolation')) await isolationScenario(results);
  const consoleResults: ConsoleResults = {};
  if (settings.scenarios.includes('console')) await consoleScenario(consoleResults);

  const rows = [...buildRows(results, settings), ...consoleRows(consoleResults)];
  const table = formatTable(rows);
  process.stdout.write(`\n${table}\n`);

  const machine = {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    totalMemGiB: Number((totalmem() / 2 ** 30).toFixed(1)),
    freeMemGiB: Number((freemem() / 2 ** 30).toFixed(1)),
    node: process.version,
    loadAverageAtStart: loadAtStart,
    loadAverageAtEnd: loadavg(),
  };
  const stamp = startedAt.toISOString().replace(/[:.]/g, '-');
  const out = process.env.BENCH_OUT || join(ROOT, 'bench/results', `${stamp}${quick ? '-quick' : ''}.json`);
  mkdirSync(join(out, '..'), { recursive: true });
  writeFileSync(
    out,
    `${JSON.stringify({ startedAt: startedAt.toISOString(), finishedAt: new Date().toISOString(), machine, settings, rows, results: { ...results, console: consoleResults } }, null, 2)}\n`,
  );
  log(`wrote ${out}`);
}

let interrupted = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    log(`${signal}: stopping every process`);
    void cleanup().finally(() => process.exit(130));
  });
}
process.on('exit', killAll);

try {
  await main();
} catch (error) {
  process.exitCode = 1;
  process.stderr.write(
    `bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
  );
} finally {
  await cleanup();
}
