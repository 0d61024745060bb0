/**
 * The per-minute roll-ups' counts on their way to the store (SPEC §12), for both drivers: each
 * event is counted in memory once the write that made it has committed, and the counts are
 * written once a second, one write for everything counted meanwhile, instead of a counter
 * update inside every task write. A read adds this process's pending counts to the stored ones.
 * A crash loses at most the last second's counts; the tasks themselves are never touched.
 */
import type { DeliveryAttempt, TaskStatus } from './store.js';
import { emptyRollup, latencyBucket, type MinuteRollup, minuteOf } from './task-lists.js';

/** What a roll-up counts: the five events, and one LLM latency bucket (`llm0`, `llm1`, ...). */
export type RollupCounter =
  | 'accepted'
  | 'completed'
  | 'failed'
  | 'callbackOk'
  | 'callbackFailed'
  | `llm${number}`;

/** Namespace → minute (epoch ms) → counter → count. */
export type PendingCounts = Map<string, Map<number, Map<RollupCounter, number>>>;

export interface RollupCounts {
  /** Counts one event; call once the write that made it has committed. */
  bump(namespace: string, nowMs: number, counter: RollupCounter): void;
  /** Counts one answered LLM call of `durationMs`. */
  bumpLlm(namespace: string, nowMs: number, durationMs: number): void;
  /**
   * Counts one recorded callback attempt (a 2xx or not), and `firstFinal`, the status it ended
   * the task with when that is the task's first final status (a redelivery's is not counted).
   */
  bumpDelivery(namespace: string, attempt: DeliveryAttempt, firstFinal: TaskStatus | null): void;
  /** Adds the counts not written yet of `namespace` to `stored` (a store read, oldest first). */
  withPending(namespace: string, stored: MinuteRollup[], sinceMs: number, untilMs: number): MinuteRollup[];
  /** Writes the pending counts now (also on a timer, a second after the first pending one). */
  flush(): Promise<void>;
  /** Writes the pending counts; later ones wait for an explicit `flush`. */
  close(): Promise<void>;
}

/** How long counts wait in memory before they are written. */
const ROLLUP_FLUSH_MS = 1000;

/** `write` stores `due` (adding to what is stored); on a throw the counts are kept for the next flush. */
export function createRollupCounts(write: (due: PendingCounts) => Promise<void>): RollupCounts {
  let counts: PendingCounts = new Map();
  let timer: NodeJS.Timeout | null = null;
  let closed = false;

  const add = (namespace: string, minuteMs: number, counter: RollupCounter, by: number): void => {
    let minutes = counts.get(namespace);
    if (minutes === undefined) {
      minutes = new Map();
      counts.set(namespace, minutes);
    }
    let counters = minutes.get(minuteMs);
    if (counters === undefined) {
      counters = new Map();
      minutes.set(minuteMs, counters);
    }
    counters.set(counter, (counters.get(counter) ?? 0) + by);
    if (timer === null && !closed) {
      timer = setTimeout(() => void flush().catch(() => {}), ROLLUP_FLUSH_MS);
      timer.unref();
    }
  };

  const flush = async (): Promise<void> => {
    if (timer !== null) clearTimeout(timer);
    timer = null;
    const due = counts;
    if (due.size === 0) return;
    counts = new Map();
    try {
      await write(due);
    } catch (error) {
      for (const [namespace, minutes] of due) {
        for (const [minuteMs, counters] of minutes) {
          for (const [counter, count] of counters) add(namespace, minuteMs, counter, count);
        }
      }
      throw error;
    }
  };

  return {
    bump: (namespace, nowMs, counter) => add(namespace, minuteOf(nowMs), counter, 1),
    bumpLlm: (namespace, nowMs, durationMs) =>
      add(namespace, minuteOf(nowMs), `llm${latencyBucket(durationMs)}`, 1),
    bumpDelivery(namespace, attempt, firstFinal) {
      const minuteMs = minuteOf(Date.now());
      const code = attempt.status_code;
      add(
        namespace,
        minuteMs,
        code !== undefined && code >= 200 && code < 300 ? 'callbackOk' : 'callbackFailed',
        1,
      );
      if (firstFinal === 'completed' || firstFinal === 'failed') add(namespace, minuteMs, firstFinal, 1);
    },
    withPending(namespace, stored, sinceMs, untilMs) {
      const pending = counts.get(namespace);
      if (pending === undefined) return stored;
      const byMinute = new Map(stored.map((rollup) => [rollup.minuteMs, rollup]));
      for (const [minuteMs, counters] of pending) {
        if (minuteMs < minuteOf(sinceMs) || minuteMs >= untilMs) continue;
        const rollup = byMinute.get(minuteMs) ?? emptyRollup(minuteMs);
        for (const [counter, count] of counters) {
          if (counter.startsWith('llm')) rollup.llmLatency[Number(counter.slice(3))]! += count;
          else rollup[counter as Exclude<RollupCounter, `llm${number}`>] += count;
        }
        byMinute.set(minuteMs, rollup);
      }
      return [...byMinute.values()].sort((a, b) => a.minuteMs - b.minuteMs);
    },
    flush,
    close: async () => {
      closed = true;
      await flush();
    },
  };
}
