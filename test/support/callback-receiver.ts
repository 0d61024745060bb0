/**
 * A callback target for tests: a real HTTP server on 127.0.0.1 that records every POST and
 * answers with a chosen status, so tests can await deliveries instead of sleeping.
 */
import { EventEmitter, once } from 'node:events';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readBody } from '../../src/dev/harness.js';

export interface ReceivedCallback {
  /** When the request body was complete (ms since the epoch). */
  at: number;
  path: string;
  headers: IncomingHttpHeaders;
  /** The raw body, as received (what a signature is computed over). */
  body: string;
  /** The body parsed as a JSON object; `undefined` when it is not one. */
  json: Record<string, unknown> | undefined;
  /** The status it was answered with. */
  status: number;
}

export type StatusChoice = number | ((n: number, callback: ReceivedCallback) => number);

export interface CallbackReceiverOptions {
  /** The status to answer with: fixed, or chosen per request (`n` counts from 1). Default 200. */
  status?: StatusChoice;
}

export interface CallbackReceiver {
  /** Base URL, such as `http://127.0.0.1:40123`; any path under it is accepted. */
  url: string;
  /** Every POST so far, in arrival order. */
  received: ReceivedCallback[];
  /** Answers the next requests with these statuses, one each, before the default. */
  script(statuses: number[]): void;
  /** Resolves with everything received once there are at least `count` callbacks. */
  waitFor(count: number, timeoutMs?: number): Promise<ReceivedCallback[]>;
  /** Resolves with the first callback (received already or later) that matches. */
  waitFor(predicate: (callback: ReceivedCallback) => boolean, timeoutMs?: number): Promise<ReceivedCallback>;
  /** Resolves with everything received once `predicate` holds over all of it. */
  waitUntil(predicate: (all: ReceivedCallback[]) => boolean, timeoutMs?: number): Promise<ReceivedCallback[]>;
  /** Forgets what was received and any scripted statuses. */
  reset(): void;
  close(): Promise<void>;
}

const MAX_BODY_BYTES = 1024 * 1024;

export async function startCallbackReceiver(
  options: CallbackReceiverOptions = {},
): Promise<CallbackReceiver> {
  const received: ReceivedCallback[] = [];
  const events = new EventEmitter();
  events.setMaxListeners(0);
  let scripted: number[] = [];
  let count = 0;

  const server = createServer((req, res) => {
    if (req.method !== 'POST') {
      res.writeHead(405, { allow: 'POST' }).end();
      return;
    }
    readBody(req, MAX_BODY_BYTES, (body) => {
      count += 1;
      let json: Record<string, unknown> | undefined;
      try {
        const parsed: unknown = JSON.parse(body);
        json =
          typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)
            ? (parsed as Record<string, unknown>)
            : undefined;
      } catch {
        json = undefined;
      }
      const callback: ReceivedCallback = {
        at: Date.now(),
        path: req.url ?? '/',
        headers: req.headers,
        body,
        json,
        status: 200,
      };
      const choice = options.status ?? 200;
      callback.status = scripted.shift() ?? (typeof choice === 'function' ? choice(count, callback) : choice);
      received.push(callback);
      res.writeHead(callback.status, { 'content-type': 'application/json' }).end('{"status":"received"}');
      events.emit('received', callback);
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;

  function waitUntil(
    predicate: (all: ReceivedCallback[]) => boolean,
    timeoutMs = 10_000,
  ): Promise<ReceivedCallback[]> {
    return waitFor(() => predicate(received), timeoutMs).then(() => [...received]);
  }

  function waitFor(count: number, timeoutMs?: number): Promise<ReceivedCallback[]>;
  function waitFor(
    predicate: (callback: ReceivedCallback) => boolean,
    timeoutMs?: number,
  ): Promise<ReceivedCallback>;
  function waitFor(
    target: number | ((callback: ReceivedCallback) => boolean),
    timeoutMs = 10_000,
  ): Promise<ReceivedCallback[] | ReceivedCallback> {
    const done = (): ReceivedCallback[] | ReceivedCallback | undefined =>
      typeof target === 'number'
        ? received.length >= target
          ? [...received]
          : undefined
        : received.find(target);
    const already = done();
    if (already !== undefined) return Promise.resolve(already);
    return new Promise((resolve, reject) => {
      const onReceived = (): void => {
        const result = done();
        if (result === undefined) return;
        clearTimeout(timer);
        events.off('received', onReceived);
        resolve(result);
      };
      const timer = setTimeout(() => {
        events.off('received', onReceived);
        const wanted =
          typeof target === 'number' ? `${target} callback(s)` : 'a callback matching the predicate';
        reject(
          new Error(`Timed out after ${timeoutMs} ms waiting for ${wanted}; received ${received.length}`),
        );
      }, timeoutMs);
      events.on('received', onReceived);
    });
  }

  return {
    url: `http://127.0.0.1:${port}`,
    received,
    script(statuses) {
      scripted.push(...statuses);
    },
    waitFor,
    waitUntil,
    reset() {
      received.length = 0;
      scripted = [];
    },
    close() {
      scripted = [];
      return new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeAllConnections();
      });
    },
  };
}
