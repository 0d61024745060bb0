/**
 * A lean callback receiver: answers every POST with 200 at once and keeps, per `task_id`, the
 * time of the first delivery (`performance.now()`, the clock the sender uses too) and its status.
 */
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Arrival {
  atMs: number;
  status: string;
}

export interface Receiver {
  /** `http://127.0.0.1:<port>/cb` */
  url: string;
  arrivals: Map<string, Arrival>;
  /** Deliveries of a task already received (at-least-once delivery shows here). */
  duplicates(): number;
  /** Bodies that were not JSON with a string `task_id`. */
  malformed(): number;
  /** Forgets every arrival. */
  reset(): void;
  /**
   * Resolves once every id has arrived, or when no new arrival came for `idleMs`, or at the
   * deadline; returns how many of `ids` have arrived.
   */
  waitFor(ids: readonly string[], options: { idleMs: number; deadlineMs: number }): Promise<number>;
  close(): Promise<void>;
}

export async function startReceiver(): Promise<Receiver> {
  const arrivals = new Map<string, Arrival>();
  let duplicates = 0;
  let malformed = 0;
  let lastArrivalMs = performance.now();

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const atMs = performance.now();
      try {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
          task_id?: unknown;
          status?: unknown;
        };
        if (typeof body.task_id !== 'string') throw new Error('no task_id');
        if (arrivals.has(body.task_id)) duplicates += 1;
        else arrivals.set(body.task_id, { atMs, status: String(body.status) });
        lastArrivalMs = atMs;
      } catch {
        malformed += 1;
      }
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': 2 });
      res.end('{}');
    });
  });
  server.keepAliveTimeout = 65_000;
  server.listen({ port: 0, host: '127.0.0.1', backlog: 4096 });
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}/cb`,
    arrivals,
    duplicates: () => duplicates,
    malformed: () => malformed,
    reset() {
      arrivals.clear();
      duplicates = 0;
      malformed = 0;
    },
    async waitFor(ids, { idleMs, deadlineMs }) {
      const deadline = performance.now() + deadlineMs;
      lastArrivalMs = Math.max(lastArrivalMs, performance.now());
      for (;;) {
        let arrived = 0;
        for (const id of ids) if (arrivals.has(id)) arrived += 1;
        const now = performance.now();
        if (arrived === ids.length || now > deadline || now - lastArrivalMs > idleMs) return arrived;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    },
    close() {
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}
