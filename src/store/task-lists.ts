/**
 * What the listing side of the store seam shares between drivers (SPEC §12): the task filter,
 * the opaque cursors of `listTasks` and `listConversations`, and the per-minute roll-ups behind
 * `GET /stats` with their LLM latency buckets.
 */
import type {
  ConversationListPage,
  ConversationSummary,
  MinuteRollup,
  TaskFilter,
  TaskListPage,
} from './store.js';

export type { ConversationListPage, ConversationSummary, MinuteRollup, TaskFilter, TaskListPage };

/** A position in a newest-first task listing: the last task returned. */
export interface TaskCursor {
  createdMs: number;
  taskId: string;
}

export function encodeTaskCursor(cursor: TaskCursor): string {
  return Buffer.from(`${cursor.createdMs}:${cursor.taskId}`, 'utf8').toString('base64url');
}

/** The cursor, or `null` when `text` is not one `encodeTaskCursor` wrote. */
export function decodeTaskCursor(text: string): TaskCursor | null {
  const match = /^(\d{1,16}):([\w-]{1,64})$/.exec(Buffer.from(text, 'base64url').toString('utf8'));
  return match === null ? null : { createdMs: Number(match[1]), taskId: match[2]! };
}

/** A position in a most-recent-first conversation listing. */
export interface ConversationCursor {
  lastActivityMs: number;
  conversationId: string;
}

export function encodeConversationCursor(cursor: ConversationCursor): string {
  return Buffer.from(`${cursor.lastActivityMs}:${cursor.conversationId}`, 'utf8').toString('base64url');
}

export function decodeConversationCursor(text: string): ConversationCursor | null {
  const decoded = Buffer.from(text, 'base64url').toString('utf8');
  const match = /^(\d{1,16}):([\s\S]{1,256})$/.exec(decoded);
  return match === null ? null : { lastActivityMs: Number(match[1]), conversationId: match[2]! };
}

/** Whether a cursor string is well-formed for its listing (checked by the routes: a 400 otherwise). */
export function isValidCursor(kind: 'tasks' | 'conversations', text: string): boolean {
  return (kind === 'tasks' ? decodeTaskCursor(text) : decodeConversationCursor(text)) !== null;
}

/**
 * Upper bounds (ms) of the LLM latency buckets of a roll-up; the last bucket takes everything
 * above the last bound. p50 and p95 are read from them (`latencyPercentile`).
 */
export const LLM_LATENCY_BOUNDS_MS = [100, 250, 500, 1000, 2000, 5000, 10_000, 30_000, 60_000] as const;
export const LLM_LATENCY_BUCKETS = LLM_LATENCY_BOUNDS_MS.length + 1;

export function latencyBucket(durationMs: number): number {
  const index = LLM_LATENCY_BOUNDS_MS.findIndex((bound) => durationMs <= bound);
  return index === -1 ? LLM_LATENCY_BOUNDS_MS.length : index;
}

export const MINUTE_MS = 60_000;
/** How long roll-ups are kept. */
export const ROLLUP_RETENTION_MS = 2 * 24 * 3600 * 1000;

export function minuteOf(ms: number): number {
  return Math.floor(ms / MINUTE_MS) * MINUTE_MS;
}

/** A minute with nothing counted. */
export function emptyRollup(minuteMs: number): MinuteRollup {
  return {
    minuteMs,
    accepted: 0,
    completed: 0,
    failed: 0,
    callbackOk: 0,
    callbackFailed: 0,
    llmLatency: new Array<number>(LLM_LATENCY_BUCKETS).fill(0),
  };
}

/**
 * The `fraction` (0..1) percentile of bucketed latencies, interpolated linearly inside its
 * bucket; `null` with no calls. The open last bucket reports its lower bound.
 */
export function latencyPercentile(buckets: readonly number[], fraction: number): number | null {
  const total = buckets.reduce((sum, n) => sum + n, 0);
  if (total === 0) return null;
  const rank = fraction * total;
  let below = 0;
  for (let index = 0; index < buckets.length; index++) {
    const count = buckets[index] ?? 0;
    if (count > 0 && below + count >= rank) {
      const lower = index === 0 ? 0 : LLM_LATENCY_BOUNDS_MS[index - 1]!;
      const upper = LLM_LATENCY_BOUNDS_MS[index];
      if (upper === undefined) return lower;
      return Math.round(lower + ((upper - lower) * (rank - below)) / count);
    }
    below += count;
  }
  return LLM_LATENCY_BOUNDS_MS[LLM_LATENCY_BOUNDS_MS.length - 1]!;
}
