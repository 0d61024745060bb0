/**
 * Scenarios 2, 3 and 5, end to end: sends a fixed number of tasks spread over a number of
 * conversations with bounded client concurrency (one keep-alive connection per request in
 * flight), then waits for their callbacks at the receiver.
 */
import { Pool } from 'undici';
import type { Receiver } from './receiver.js';
import { percentile } from './stats.js';

export interface EndToEndFigures extends Record<string, number> {
  /** Callbacks received per second, from the first accept to the last callback. */
  completionsPerSecond: number;
  /** Accept (200 received by the client) to callback received, in ms. */
  p50Ms: number;
  p99Ms: number;
  /** The same minus the LLM's latency: the time the service itself adds. */
  overheadP50Ms: number;
  overheadP99Ms: number;
  accepted: number;
  /** Answers other than 200, and requests that failed outright. */
  rejected: number;
  /**
   * Accepted tasks whose callback had not arrived when the wait ended (no callback for
   * `idleTimeoutMs`). `missingSampled_<status>` keys count what GET /tasks says of a sample.
   */
  lost: number;
  /** Callbacks with a status other than `completed`. */
  failed: number;
  duplicates: number;
  /** Time spent sending, in seconds. */
  sendSeconds: number;
}

/** How many missing tasks are looked up with GET /tasks/{id} after a run. */
const MISSING_SAMPLE = 20;

export interface EndToEndOptions {
  baseUrl: string;
  receiver: Receiver;
  tasks: number;
  conversations: number;
  concurrency: number;
  llmLatencyMs: number;
  /** Give up when no callback arrived for this long. */
  idleTimeoutMs: number;
  /** Distinguishes the conversation ids of one run from those of another. */
  runId: string;
}

export async function runEndToEnd(options: EndToEndOptions): Promise<EndToEndFigures> {
  const { receiver } = options;
  receiver.reset();
  const pool = new Pool(options.baseUrl, { connections: options.concurrency, keepAliveTimeout: 60_000 });
  const acceptedAt = new Map<string, number>();
  let rejected = 0;
  let next = 0;
  const sendStart = performance.now();

  const sendOne = async (index: number): Promise<void> => {
    const body = JSON.stringify({
      message: `Message ${index} of the benchmark`,
      callback_url: receiver.url,
      conversation_id: `${options.runId}-c${index % options.conversations}`,
    });
    try {
      const response = await pool.request({
        path: '/webhook',
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
      });
      const text = await response.body.text();
      const now = performance.now();
      if (response.statusCode !== 200) {
        rejected += 1;
        return;
      }
      const { task_id: taskId } = JSON.parse(text) as { task_id: string };
      acceptedAt.set(taskId, now);
    } catch {
      rejected += 1;
    }
  };

  const lane = async (): Promise<void> => {
    while (next < options.tasks) {
      const index = next;
      next += 1;
      await sendOne(index);
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(options.concurrency, options.tasks) }, lane));
  } finally {
    await pool.close();
  }
  const sendSeconds = (performance.now() - sendStart) / 1000;

  const ids = [...acceptedAt.keys()];
  const arrived = await receiver.waitFor(ids, {
    idleMs: options.idleTimeoutMs,
    deadlineMs: options.idleTimeoutMs * 10,
  });

  // For tasks whose callback never came, what the service says about a few of them.
  const missingStatuses: Record<string, number> = {};
  const missing = ids.filter((id) => !receiver.arrivals.has(id)).slice(0, MISSING_SAMPLE);
  for (const id of missing) {
    const status = await fetch(`${options.baseUrl}/tasks/${id}`, { signal: AbortSignal.timeout(5_000) })
      .then(async (response) =>
        response.ok ? ((await response.json()) as { status: string }).status : `http ${response.status}`,
      )
      .catch(() => 'unreachable');
    const key = `missingSampled_${status.replace(/\W/g, '_')}`;
    missingStatuses[key] = (missingStatuses[key] ?? 0) + 1;
  }

  const latencies: number[] = [];
  let firstAccept = Number.POSITIVE_INFINITY;
  let lastArrival = Number.NEGATIVE_INFINITY;
  let failed = 0;
  for (const [id, at] of acceptedAt) {
    firstAccept = Math.min(firstAccept, at);
    const arrival = receiver.arrivals.get(id);
    if (arrival === undefined) continue;
    lastArrival = Math.max(lastArrival, arrival.atMs);
    // The callback can be read before the client has read the 200 on a loaded event loop.
    latencies.push(Math.max(0, arrival.atMs - at));
    if (arrival.status !== 'completed') failed += 1;
  }
  const p50Ms = percentile(latencies, 50);
  const p99Ms = percentile(latencies, 99);
  return {
    completionsPerSecond: arrived / ((lastArrival - firstAccept) / 1000),
    p50Ms,
    p99Ms,
    overheadP50Ms: p50Ms - options.llmLatencyMs,
    overheadP99Ms: p99Ms - options.llmLatencyMs,
    accepted: ids.length,
    rejected,
    lost: ids.length - arrived,
    failed,
    duplicates: receiver.duplicates(),
    sendSeconds,
    ...missingStatuses,
  };
}
