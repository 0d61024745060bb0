/**
 * Retry schedules as data: a schedule is the list of delays between attempts, so its length is
 * the number of retries after the first attempt (SPEC §7).
 */

/**
 * The delay before the next attempt, given how many attempts were made (1 after the first), or
 * `null` when the schedule is spent. No attempt made yet means no delay.
 */
export function nextRetryDelayMs(scheduleMs: readonly number[], attemptsSoFar: number): number | null {
  if (attemptsSoFar < 1) return 0;
  return scheduleMs[attemptsSoFar - 1] ?? null;
}
