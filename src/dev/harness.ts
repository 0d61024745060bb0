/**
 * What the tests, the bench and `npm run demo` share to drive real servers and processes:
 * polling a condition until it holds (never a fixed sleep), a free port, waiting for or
 * stopping a child process, and reading a request body of the servers they stand up. It lives in `src/dev/` because the demo is built and shipped, so what
 * it imports must be under `src/`; it is dev tooling, not service code, so not in `shared/`.
 * It imports nothing of ours and reads no environment.
 */
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import type { IncomingMessage } from 'node:http';
import { createServer } from 'node:net';

export interface WaitForOptions {
  /** Default 20 000 ms. */
  timeoutMs?: number;
  /** Pause between two checks; default 20 ms. */
  intervalMs?: number;
}

/**
 * Calls `check` (sync or async) until it returns something other than `false`, `null` or
 * `undefined`, and resolves with that value. Rejects with "timed out after … waiting for
 * `what`" once `timeoutMs` has passed, and at once with whatever `check` throws. `what` can be a
 * function, to describe the last state seen.
 */
export async function waitFor<T>(
  check: () => T | Promise<T>,
  what: string | (() => string),
  { timeoutMs = 20_000, intervalMs = 20 }: WaitForOptions = {},
): Promise<Exclude<T, false | null | undefined>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== false && value !== null && value !== undefined) {
      return value as Exclude<T, false | null | undefined>;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${typeof what === 'string' ? what : what()}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  server.close();
  await once(server, 'close');
  if (address === null || typeof address === 'string') throw new Error('no free port');
  return address.port;
}

export function hasExited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

/** Resolves true once `child` has exited (at once when it already has), false after `timeoutMs`. */
export function waitForExit(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (hasExited(child)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.removeListener('exit', onExit);
      resolve(false);
    }, timeoutMs);
    const onExit = (): void => {
      clearTimeout(timer);
      resolve(true);
    };
    child.once('exit', onExit);
  });
}

/** SIGTERM, then SIGKILL once `graceMs` has passed; resolves when `child` has exited (or `killWaitMs` after the SIGKILL). */
export async function stopChild(child: ChildProcess, graceMs: number, killWaitMs = 5_000): Promise<void> {
  if (hasExited(child)) return;
  child.kill('SIGTERM');
  if (await waitForExit(child, graceMs)) return;
  child.kill('SIGKILL');
  await waitForExit(child, killWaitMs);
}

/**
 * Reads the body of `request`, keeping at most `maxBytes` of it (the rest is read and dropped);
 * `done` gets the text kept and whether the body was longer.
 */
export function readBody(
  request: IncomingMessage,
  maxBytes: number,
  done: (text: string, tooLarge: boolean) => void,
): void {
  const chunks: Buffer[] = [];
  let size = 0;
  request.on('data', (chunk: Buffer) => {
    size += chunk.length;
    if (size <= maxBytes) chunks.push(chunk);
  });
  request.on('end', () => done(Buffer.concat(chunks).toString('utf8'), size > maxBytes));
}
