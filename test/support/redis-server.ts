/**
 * A throwaway `redis-server` for tests: spawned on a free 127.0.0.1 port with persistence off,
 * answered PING before the promise resolves, killed by `stop()`. Never the shared server on 6379.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, expect } from 'vitest';
import { createRedisClient } from '../../src/backends/redis/redis-connection.js';
import { freePort, hasExited, stopChild, waitFor } from '../../src/dev/harness.js';
import { BackendUnavailableError } from '../../src/shared/errors.js';

export interface RedisServer {
  /** `redis://127.0.0.1:<port>` */
  url: string;
  port: number;
  /** SIGTERM, then SIGKILL after a grace period; resolves once the process has exited. */
  stop(): Promise<void>;
  /** Stops the server and starts a fresh one (empty data) on the same port. */
  restart(): Promise<void>;
}

const START_DEADLINE_MS = 10_000;
const STOP_GRACE_MS = 3_000;

/** One PING over a raw socket: true when the server answered `+PONG`. */
async function answersPing(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = new Socket();
    let reply = '';
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once('error', () => done(false));
    socket.on('data', (chunk) => {
      reply += chunk.toString('utf8');
      if (reply.includes('\r\n')) done(reply.startsWith('+PONG'));
    });
    socket.connect(port, '127.0.0.1', () => socket.write('PING\r\n'));
  });
}

async function spawnServer(port: number): Promise<ChildProcess> {
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', tmpdir()],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    output = (output + chunk.toString('utf8')).slice(-4000);
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    output = (output + chunk.toString('utf8')).slice(-4000);
  });
  let spawnError: NodeJS.ErrnoException | null = null;
  child.once('error', (error) => {
    spawnError = error;
  });

  try {
    await waitFor(
      async () => {
        if (spawnError?.code === 'ENOENT') {
          throw new Error(
            'redis-server is not on PATH: install it (Debian/Ubuntu: `apt-get install redis-server`, macOS: `brew install redis`)',
          );
        }
        if (spawnError !== null) throw spawnError;
        if (hasExited(child)) throw new Error(`redis-server exited early on port ${port}: ${output.trim()}`);
        return answersPing(port);
      },
      `redis-server to answer PING on port ${port}`,
      { timeoutMs: START_DEADLINE_MS, intervalMs: 50 },
    );
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
  return child;
}

/** Starts a redis-server on `options.port` or a free port and waits until it answers PING. */
export async function startRedisServer(options: { port?: number } = {}): Promise<RedisServer> {
  const port = options.port ?? (await freePort());
  let child = await spawnServer(port);
  // A test run that dies must not leave servers behind.
  const killOnExit = (): void => {
    child.kill('SIGKILL');
  };
  process.once('exit', killOnExit);

  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    async stop() {
      process.removeListener('exit', killOnExit);
      await stopChild(child, STOP_GRACE_MS, STOP_GRACE_MS);
    },
    async restart() {
      await stopChild(child, STOP_GRACE_MS, STOP_GRACE_MS);
      child = await spawnServer(port);
      process.removeListener('exit', killOnExit);
      process.once('exit', killOnExit);
    },
  };
}

/**
 * Stops `server`; each of `operations` must then reject with `BackendUnavailableError` within
 * 2.5 s. Restarts it and waits until `ping` resolves again (a client reconnecting on its own).
 */
export async function expectUnavailableWhileStopped(
  server: RedisServer,
  operations: ReadonlyArray<() => Promise<unknown>>,
  ping: () => Promise<unknown>,
  timeoutMs = 20_000,
): Promise<void> {
  await server.stop();
  try {
    for (const operation of operations) {
      const startedAt = Date.now();
      await expect(operation()).rejects.toBeInstanceOf(BackendUnavailableError);
      expect(Date.now() - startedAt).toBeLessThan(2500);
    }
  } finally {
    await server.restart();
  }
  await waitFor(
    () =>
      ping().then(
        () => true,
        () => false,
      ),
    'Redis to answer again',
    { timeoutMs, intervalMs: 50 },
  );
}

/**
 * Registers hooks that start a redis-server before the file's first test and, after its last,
 * disconnect every client `connect()` made and stop the server.
 */
export function useRedisConnections(): { connect(): Redis } {
  let server: RedisServer | undefined;
  const clients: Redis[] = [];
  beforeAll(async () => {
    server = await startRedisServer();
  });
  afterAll(async () => {
    for (const client of clients) client.disconnect();
    await server?.stop();
  });
  return {
    connect() {
      if (server === undefined) throw new Error('connect() is for tests and hooks, after the server started');
      const client = createRedisClient(server.url, { role: 'command' });
      clients.push(client);
      return client;
    },
  };
}
