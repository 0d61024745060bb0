/**
 * A throwaway `redis-server` for tests: spawned on a free 127.0.0.1 port with persistence off,
 * answered PING before the promise resolves, killed by `stop()`. Never the shared server on 6379.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createServer, Socket } from 'node:net';
import { tmpdir } from 'node:os';

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

async function findFreePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

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

function waitForExit(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
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
  const spawnError = new Promise<Error>((resolve) => child.once('error', resolve));

  const deadline = Date.now() + START_DEADLINE_MS;
  while (Date.now() < deadline) {
    const early = await Promise.race([
      spawnError,
      new Promise<null>((resolve) => setTimeout(resolve, 50, null)),
    ]);
    if (early !== null) {
      const code = (early as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') {
        throw new Error(
          'redis-server is not on PATH: install it (Debian/Ubuntu: `apt-get install redis-server`, macOS: `brew install redis`)',
        );
      }
      throw early;
    }
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`redis-server exited early on port ${port}: ${output.trim()}`);
    }
    if (await answersPing(port)) return child;
  }
  child.kill('SIGKILL');
  throw new Error(`redis-server did not answer PING on port ${port} within ${START_DEADLINE_MS} ms`);
}

async function killServer(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  if (await waitForExit(child, STOP_GRACE_MS)) return;
  child.kill('SIGKILL');
  await waitForExit(child, STOP_GRACE_MS);
}

/** Starts a redis-server on `options.port` or a free port and waits until it answers PING. */
export async function startRedisServer(options: { port?: number } = {}): Promise<RedisServer> {
  const port = options.port ?? (await findFreePort());
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
      await killServer(child);
    },
    async restart() {
      await killServer(child);
      child = await spawnServer(port);
      process.removeListener('exit', killOnExit);
      process.once('exit', killOnExit);
    },
  };
}
