/**
 * Child processes of the benchmark: the service (`node dist/main.js <role>`), the baseline
 * server and the mock LLM. Every child is registered, so `killAll()` (called on success, on
 * error and on SIGINT/SIGTERM) leaves nothing running.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { freePort, hasExited, stopChild, waitFor } from '../src/dev/harness.js';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
const MAIN_JS = fileURLToPath(new URL('../dist/main.js', import.meta.url));

const children = new Set<ChildProcess>();

export interface Child {
  name: string;
  process: ChildProcess;
  pid: number;
  /** The last few KiB of stderr and stdout, for error messages. */
  output(): string;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once exited. */
  stop(graceMs?: number): Promise<void>;
}

export function spawnChild(
  name: string,
  args: readonly string[],
  options: { env: Record<string, string>; cwd: string; prefix?: readonly string[] },
): Child {
  // BENCH_SERVICE_PREFIX: a command the service processes run under (`valgrind --tool=callgrind`, say).
  const prefix = options.prefix ?? [];
  const child = spawn(
    prefix[0] ?? process.execPath,
    prefix.length === 0 ? args : [...prefix.slice(1), process.execPath, ...args],
    {
      cwd: options.cwd,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  if (child.pid === undefined) throw new Error(`could not start ${name}`);
  children.add(child);
  child.once('exit', () => children.delete(child));
  let output = '';
  const keep = (chunk: Buffer): void => {
    output = (output + chunk.toString('utf8')).slice(-8000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  return {
    name,
    process: child,
    pid: child.pid,
    output: () => output,
    stop: (graceMs = 15_000) => stopChild(child, graceMs),
  };
}

/** Kills every child still running, at once; safe to call from an `exit` handler. */
export function killAll(): void {
  for (const child of children) {
    if (!hasExited(child)) child.kill('SIGKILL');
  }
}

/**
 * Polls `url` until it answers 200 (any status with `anyStatus`), the child exits, or the
 * deadline passes.
 */
export async function waitUntilReady(
  child: Child,
  url: string,
  { timeoutMs = 30_000, anyStatus = false }: { timeoutMs?: number; anyStatus?: boolean } = {},
): Promise<void> {
  await waitFor(
    async () => {
      if (hasExited(child.process))
        throw new Error(`${child.name} exited during start-up:\n${child.output()}`);
      try {
        const response = await fetch(url, { signal: AbortSignal.timeout(2_000) });
        await response.arrayBuffer();
        return response.ok || anyStatus;
      } catch {
        return false; // not listening yet
      }
    },
    () => `${child.name} to be ready at ${url}:\n${child.output()}`,
    { timeoutMs, intervalMs: 100 },
  );
}

export type ServiceRole = 'all' | 'api' | 'worker';

export interface ServiceOptions {
  role: ServiceRole;
  /** HOST, PORT, DATA_DIR, LLM_BASE_URL, WORKER_CONCURRENCY, REDIS_URL... */
  env: Record<string, string>;
  /** Working directory: a fresh one keeps a developer's `.env` out of the measurement. */
  cwd: string;
  /** When set, the process writes a V8 CPU profile into this directory on exit. */
  cpuProfileDir?: string;
}

export interface Service extends Child {
  /** Base URL of its HTTP server (the API, or a worker's operations server). */
  url: string;
}

/** Starts `node dist/main.js <role>` and waits until its `/readyz` answers 200. */
export async function startService(name: string, options: ServiceOptions): Promise<Service> {
  const port = await freePort();
  const portVar = options.role === 'worker' ? 'WORKER_PORT' : 'PORT';
  const args =
    options.cpuProfileDir === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${options.cpuProfileDir}`];
  const prefix = process.env.BENCH_SERVICE_PREFIX?.trim();
  const child = spawnChild(name, [...args, MAIN_JS, options.role], {
    cwd: options.cwd,
    ...(prefix ? { prefix: prefix.split(/\s+/) } : {}),
    env: { ...options.env, [portVar]: String(port) },
  });
  const url = `http://127.0.0.1:${port}`;
  await waitUntilReady(child, `${url}/readyz`, prefix ? { timeoutMs: 600_000 } : {});
  return { ...child, url };
}

/** CPU time (user + system, every thread) a process has used so far, in ms; null once it is gone. */
export function cpuTimeMs(pid: number): number | null {
  const split = cpuTimesMs(pid);
  return split === null ? null : split.user + split.system;
}

/** `cpuTimeMs` in its two parts: user and system (kernel) time, in ms. */
export function cpuTimesMs(pid: number): { user: number; system: number } | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces), from field 3: utime and stime are 14 and 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const user = Number(fields[11]) * CLOCK_TICK_MS;
    const system = Number(fields[12]) * CLOCK_TICK_MS;
    return Number.isFinite(user) && Number.isFinite(system) ? { user, system } : null;
  } catch {
    return null;
  }
}

/** Linux's USER_HZ is 100 on every common build: one tick of /proc/<pid>/stat is 10 ms. */
const CLOCK_TICK_MS = 10;

/** Peak resident set size (VmHWM) of a live process, in bytes; null when it cannot be read. */
export function peakRssBytes(pid: number): number | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const match = /^VmHWM:\s+(\d+)\s+kB/m.exec(status);
    return match ? Number(match[1]) * 1024 : null;
  } catch {
    return null;
  }
}

/** `A=1,B=2` into `{ A: '1', B: '2' }`: settings passed to the service processes, to compare configurations. */
export function pairsEnv(name: string): Record<string, string> {
  const raw = process.env[name]?.trim() ?? '';
  const pairs: Record<string, string> = {};
  if (raw === '') return pairs;
  for (const part of raw.split(',')) {
    const match = /^\s*([A-Z][A-Z0-9_]*)=(.*)$/.exec(part);
    if (match === null)
      throw new Error(`${name}: expected NAME=value pairs separated by commas, got "${part}"`);
    pairs[match[1]!] = match[2]!.trim();
  }
  return pairs;
}
