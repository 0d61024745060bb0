/**
 * Starts the real service as a child process (from source, through tsx), for tests whose
 * behaviour crosses a process: SIGKILL and restart, SIGTERM, several workers, start-up errors.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { freePort } from '../../src/dev/harness.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface ServiceProcess {
  /** `http://127.0.0.1:<port>` of the API (or the worker's operations server). */
  url: string;
  port: number;
  child: ChildProcess;
  /** Every stdout line so far, parsed when it is JSON. */
  logs: Array<Record<string, unknown>>;
  stderr: string[];
  /** Resolves with the exit code (or signal) once the process has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  waitForLog(
    predicate: (line: Record<string, unknown>) => boolean,
    timeoutMs?: number,
  ): Promise<Record<string, unknown>>;
}

export interface StartServiceOptions {
  env: Record<string, string>;
  role?: 'all' | 'api' | 'worker';
  /** Port to listen on (default: a free one). */
  port?: number;
  /** Wait for `/healthz` (default true; a worker without WORKER_PORT waits for its start log line). */
  waitReady?: boolean;
}

export async function startService(options: StartServiceOptions): Promise<ServiceProcess> {
  const role = options.role ?? 'all';
  const port = options.port ?? (await freePort());
  const portVar = role === 'worker' ? 'WORKER_PORT' : 'PORT';
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', role], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '',
      HOST: '127.0.0.1',
      LOG_LEVEL: 'info',
      RATE_LIMIT: 'off',
      API_TOKENS: '',
      // Not auto, whose choice follows the CPU count; on is what auto picks on two CPUs or more.
      OUTBOUND_THREAD: 'on',
      [portVar]: String(port),
      ...options.env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Array<Record<string, unknown>> = [];
  const stderr: string[] = [];
  const waiters = new Set<() => void>();
  let buffer = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    buffer += chunk;
    const lines = buffer.split('\n');
    buffer = lines.pop() ?? '';
    for (const line of lines) {
      if (line.trim() === '') continue;
      try {
        logs.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        logs.push({ raw: line });
      }
    }
    for (const wake of waiters) wake();
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    stderr.push(chunk);
    for (const wake of waiters) wake();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => {
      resolve({ code, signal });
      for (const wake of waiters) wake();
    });
  });
  let hasExited = false;
  void exited.then(() => {
    hasExited = true;
  });

  const waitForLog = (predicate: (line: Record<string, unknown>) => boolean, timeoutMs = 20_000) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const check = (): boolean => {
        const found = logs.find(predicate);
        if (found !== undefined) {
          finish();
          resolve(found);
          return true;
        }
        if (hasExited) {
          finish();
          reject(new Error(`service exited before the expected log line; stderr: ${stderr.join('')}`));
          return true;
        }
        return false;
      };
      const timer = setTimeout(() => {
        finish();
        reject(new Error(`no matching log line within ${timeoutMs} ms; stderr: ${stderr.join('')}`));
      }, timeoutMs);
      const wake = (): void => {
        check();
      };
      const finish = (): void => {
        clearTimeout(timer);
        waiters.delete(wake);
      };
      if (!check()) waiters.add(wake);
    });

  const service: ServiceProcess = {
    url: `http://127.0.0.1:${port}`,
    port,
    child,
    logs,
    stderr,
    exited,
    async kill(signal = 'SIGTERM') {
      if (!hasExited) child.kill(signal);
      return exited;
    },
    waitForLog,
  };
  if (options.waitReady !== false) {
    const hasHttp = role !== 'worker' || options.env.WORKER_PORT !== undefined || options.port !== undefined;
    if (hasHttp) await waitForLog((line) => line.msg === 'listening', 30_000);
    else await waitForLog((line) => line.msg === 'worker started', 30_000);
  }
  return service;
}
