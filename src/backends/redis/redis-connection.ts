/**
 * The one place our own ioredis clients are created, and where Redis errors become ours.
 *
 * Two roles:
 * - `command`: for the API path (store, enqueue, readiness). It fails fast while Redis is down:
 *   after the first connection, no offline queue (a command sent while disconnected rejects at
 *   once instead of waiting for a reconnect), one retry per request, and connect/command
 *   timeouts, so a request is answered 503 within SPEC §3's 2 s instead of hanging. Before the
 *   first connection commands wait, bounded by the command timeout, so start-up needs no dance.
 * - `blocking`: for BullMQ workers, whose blocking commands must wait across reconnects
 *   (`maxRetriesPerRequest: null`, as BullMQ requires).
 *
 * Both reconnect forever with a capped backoff: a Redis restart heals without a process restart.
 *
 * A `command` client never sends a command its caller has given up on (timed out, or failed
 * with the connection): ioredis would otherwise write it later, from its offline queue or by
 * re-sending unanswered commands after a reconnect, and a request already answered 503 would
 * still take effect once Redis is back.
 *
 * Its command timeout measures Redis, not this process: when the timer fires, the I/O that is
 * already waiting (the reply, read from the socket in the same event-loop turn) is handled first.
 * ioredis's own `commandTimeout` fires in the timers phase, before the poll phase reads replies,
 * so a process whose event loop was busy for longer than the timeout (a worker running
 * thousands of jobs on a loaded machine) failed commands that Redis had answered long before;
 * the failed jobs were retried, which loaded it further, and it stopped making progress.
 */
import { type Command, Redis, type RedisOptions } from 'ioredis';
import { BackendUnavailableError } from '../../shared/errors.js';
import type { Logger } from '../../shared/logger.js';

export type { Redis };

export type RedisClientRole = 'command' | 'blocking';

export interface RedisClientOptions {
  role: RedisClientRole;
  logger?: Logger | undefined;
}

/** Longest wait for a connection or a command on a `command` client. */
export const REDIS_COMMAND_TIMEOUT_MS = 1500;
/** Longest pause between two reconnect attempts. */
export const REDIS_MAX_RECONNECT_DELAY_MS = 2000;

/** Reconnect delay after `times` failed attempts: 50 ms doubling, capped. Never gives up. */
export function reconnectDelayMs(times: number): number {
  return Math.min(50 * 2 ** Math.min(Math.max(times - 1, 0), 10), REDIS_MAX_RECONNECT_DELAY_MS);
}

/** Creates an ioredis client for `url` configured for `role` (see the file header). */
export function createRedisClient(url: string, options: RedisClientOptions): Redis {
  const common: RedisOptions = {
    retryStrategy: reconnectDelayMs,
    connectionName: `llm-webhook:${options.role}`,
  };
  const roleOptions: RedisOptions =
    options.role === 'command'
      ? {
          // Queued until the first connection is ready (a process starting with Redis); fail-fast
          // from then on (see below).
          enableOfflineQueue: true,
          maxRetriesPerRequest: 1,
          connectTimeout: REDIS_COMMAND_TIMEOUT_MS,
          // Commands issued in one event-loop turn (by every request and job of that turn) go
          // out in one socket write instead of one write each.
          enableAutoPipelining: true,
          // No `commandTimeout`: see `guardCommands`.
        }
      : { maxRetriesPerRequest: null, enableReadyCheck: true };
  const client = new Redis(url, { ...common, ...roleOptions });
  if (options.role === 'command') guardCommands(client, REDIS_COMMAND_TIMEOUT_MS);

  // Without an 'error' listener ioredis prints every failed reconnect. Log the first error of an
  // outage, then stay quiet until the connection is ready again.
  let reported = false;
  client.on('error', (error: Error) => {
    if (reported) return;
    reported = true;
    options.logger?.warn({ err: error, role: options.role }, 'redis connection error; reconnecting');
  });
  client.on('ready', () => {
    // Once connected, a command sent while disconnected must fail at once, not wait for Redis.
    if (options.role === 'command') client.options.enableOfflineQueue = false;
    if (reported) options.logger?.info({ role: options.role }, 'redis connection ready');
    reported = false;
  });
  return client;
}

/**
 * Gives every command of `client` a timeout of `timeoutMs` that tolerates a busy event loop, and
 * makes `client` skip, instead of sending, a command whose promise has already rejected. Every
 * command passes through `sendCommand` when issued, and again when ioredis replays it from its
 * offline queue or after a reconnect; only the replay can meet a settled command.
 *
 * One sweep every `timeoutMs / 15` (100 ms for the command timeout) fails the commands
 * unanswered for longer than `timeoutMs`, rather than a timer for each command: a worker sends
 * thousands a second, and a timer each cost more than the rest of this wrapper.
 */
function guardCommands(client: Redis, timeoutMs: number): void {
  const abandoned = new WeakSet<Command>();
  /** Commands sent and not known to be settled, with when they were first sent, oldest first. */
  const waiting = new Map<Command, number>();
  let sweeper: NodeJS.Timeout | null = null;
  const sweep = (): void => {
    // Replies already received are read in this turn's poll phase, after the timers: decide
    // after it, so time this process spent busy elsewhere is not blamed on Redis.
    setImmediate(() => {
      const cutoff = performance.now() - timeoutMs;
      for (const [command, sentAt] of waiting) {
        if (command.isResolved) waiting.delete(command);
        else if (sentAt <= cutoff) command.reject(new Error('Command timed out'));
      }
      if (waiting.size === 0 && sweeper !== null) {
        clearInterval(sweeper);
        sweeper = null;
      }
    });
  };
  const send = client.sendCommand.bind(client);
  client.sendCommand = (command: Command, stream?: Parameters<Redis['sendCommand']>[1]) => {
    if (abandoned.has(command)) return command.promise;
    if (!waiting.has(command) && !command.isResolved) {
      waiting.set(command, performance.now());
      // A command that fails (timeout included) before it was answered is abandoned for good.
      const reject = command.reject;
      command.reject = (error: Error) => {
        abandoned.add(command);
        waiting.delete(command);
        reject(error);
      };
      if (sweeper === null) {
        sweeper = setInterval(sweep, Math.max(1, Math.floor(timeoutMs / 15)));
        sweeper.unref();
      }
    }
    return send(command, stream);
  };
}

/** Wraps any error from Redis (or a library talking to it) as a `BackendUnavailableError`. */
export function toBackendUnavailable(error: unknown, action: string): BackendUnavailableError {
  if (error instanceof BackendUnavailableError) return error;
  const detail = error instanceof Error ? `: ${error.message}` : '';
  return new BackendUnavailableError(`Redis unavailable (${action})${detail}`, { cause: error });
}

/** Runs `fn`, rejecting with `BackendUnavailableError` when it fails or takes longer than `timeoutMs`. */
export async function withRedis<T>(action: string, fn: () => Promise<T>, timeoutMs?: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    const work = fn();
    if (timeoutMs === undefined) return await work;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    });
    // The losing promise may still reject later; keep that from becoming an unhandled rejection.
    work.catch(() => {});
    return await Promise.race([work, timeout]);
  } catch (error) {
    throw toBackendUnavailable(error, action);
  } finally {
    if (timer !== undefined) clearTimeout(timer);
  }
}

/** How long a `ping` of a driver waits for Redis before the backend counts as unavailable. */
const REDIS_PING_TIMEOUT_MS = 2000;

/** Resolves when `client`'s Redis answers within `REDIS_PING_TIMEOUT_MS`; rejects with `BackendUnavailableError` otherwise. */
export function pingRedis(client: Redis): Promise<void> {
  return withRedis(
    'ping',
    async () => {
      await client.ping();
    },
    REDIS_PING_TIMEOUT_MS,
  );
}
