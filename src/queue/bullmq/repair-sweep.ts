/**
 * The BullMQ driver's repair sweep: adds to BullMQ what the group registry's sweeps return (jobs
 * never handed to BullMQ, group heads missing from it), batch by batch. It runs when a worker
 * starts consuming, then every few seconds, never two at once in one process. Adding is
 * idempotent (same BullMQ id), so the sweeps of several workers may overlap.
 */
import type { Logger } from '../../shared/logger.js';
import { type GroupRegistry, REPAIR_BATCH, type RegisteredJob } from './group-registry.js';

export interface RepairSweepOptions {
  registry: GroupRegistry;
  /** Adds a registered job to BullMQ (a no-op when its BullMQ id is there already). */
  addToBull: (job: RegisteredJob) => Promise<void>;
  intervalMs: number;
  logger: Logger | undefined;
}

export interface RepairSweep {
  /** Stops the timer; a sweep under way runs to its end. */
  stop(): void;
}

/** Runs a sweep now, then every `intervalMs` on an unref'd timer. */
export function startRepairSweep({
  registry,
  addToBull,
  intervalMs,
  logger,
}: RepairSweepOptions): RepairSweep {
  const repair = async (): Promise<void> => {
    for (;;) {
      const missing = await registry.sweepPending(Date.now());
      for (const job of missing) {
        logger?.info({ job_id: job.id }, 'repair: adding a job that was never handed to BullMQ');
        await addToBull(job);
      }
      // A full batch may hide more; the added ones are in BullMQ now and settle next time.
      if (missing.length < REPAIR_BATCH) break;
    }

    let cursor = '0';
    do {
      const step = await registry.sweepGroups(cursor);
      cursor = step.cursor;
      for (const head of step.missing) {
        logger?.info(
          { job_id: head.id, group: head.group },
          'repair: adding a group head missing from BullMQ',
        );
        await addToBull(head);
      }
    } while (cursor !== '0');
  };

  let repairing: Promise<void> | null = null;
  const runRepair = (): void => {
    // One sweep at a time: under load a sweep can outlast the interval.
    if (repairing !== null) return;
    repairing = repair()
      .catch((error: unknown) => logger?.warn({ err: error }, 'queue repair sweep failed'))
      .finally(() => {
        repairing = null;
      });
  };

  runRepair();
  const timer = setInterval(runRepair, intervalMs);
  timer.unref();
  return {
    stop() {
      clearInterval(timer);
    },
  };
}
