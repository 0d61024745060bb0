/**
 * The jobs of the service, in one place: their names, ids and queues. Generations and deliveries
 * run in queues of their own, each with its own worker slots, so a slow receiver never takes a
 * generation's place and a backlog of LLM calls never holds a finished reply back.
 *
 * - `generate` (generation queue, id: the task id), in its conversation's group: the messages of
 *   a conversation are answered one at a time, in order.
 * - `deliver` (delivery queue, `deliver:<task>`), with its retries, in the same conversation's
 *   group of the delivery queue: a conversation's callbacks go out one at a time, in the order its
 *   replies were made; one waiting for a retry holds the conversation's later ones back. Queued
 *   only when the generation's run could not make the first attempt itself, or for what follows
 *   a failed one (generate-reply.ts).
 * - `deliver`, a redelivery asked for through the API (`redeliver:<task>:<ms>:<uuid>`): a schedule
 *   of its own, counted from the time in its id.
 *
 * A leaf: the HTTP routes enqueue through it without loading the worker's code.
 */
import { randomUUID } from 'node:crypto';
import type { Job, NewJob } from '../queue/job-queue.js';

export const JOB_NAMES = { generate: 'generate', deliver: 'deliver' } as const;
export type JobName = (typeof JOB_NAMES)[keyof typeof JOB_NAMES];

/** The generation of a newly accepted task, in its conversation's group. */
export function generateJob(taskId: string, group: string): NewJob {
  return { id: taskId, name: JOB_NAMES.generate, taskId, group };
}

/** The delivery of a task's outcome, retries included, in its conversation's group of the delivery queue. */
export function deliveryJob(taskId: string, group: string): NewJob {
  return { id: `deliver:${taskId}`, name: JOB_NAMES.deliver, taskId, group };
}

/** Another delivery of a finished task, asked for through the API: an id of its own each time. */
export function redeliveryJob(taskId: string, nowMs: number = Date.now()): NewJob {
  return { id: `redeliver:${taskId}:${nowMs}:${randomUUID()}`, name: JOB_NAMES.deliver, taskId };
}

/**
 * What a `deliver` job is. A redelivery carries when it was asked for (its attempts are those
 * made since), or `null` for one queued by an older version (`deliver:<task>:<uuid>`), whose
 * attempts the job's own attempt number counts.
 */
export type DeliveryKind = { type: 'task' } | { type: 'redelivery'; sinceMs: number | null };

export function deliveryKind(job: Pick<Job, 'id' | 'taskId'>): DeliveryKind {
  if (job.id === `deliver:${job.taskId}`) return { type: 'task' };
  const redelivery = /^redeliver:.+:(\d+):[0-9a-f-]+$/.exec(job.id);
  return { type: 'redelivery', sinceMs: redelivery === null ? null : Number(redelivery[1]) };
}
