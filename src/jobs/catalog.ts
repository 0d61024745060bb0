/**
 * The jobs of the service, in one place: their names, ids and priorities. A task has one
 * `generate` job (id: the task id), in its conversation's group; its first delivery attempt is
 * made by that job, and a `deliver` job exists only for a retry (id `deliver:<task>`) or a
 * redelivery asked for through the API (id `deliver:<task>:<uuid>`). Deliveries run before new
 * generations. A leaf: the HTTP routes enqueue through it without loading the worker's code.
 */
import { randomUUID } from 'node:crypto';
import type { Job, NewJob } from '../queue/job-queue.js';

export const JOB_NAMES = { generate: 'generate', deliver: 'deliver' } as const;
export type JobName = (typeof JOB_NAMES)[keyof typeof JOB_NAMES];

/** The generation of a newly accepted task, in its conversation's group. */
export function generateJob(taskId: string, group: string): NewJob {
  return { id: taskId, name: JOB_NAMES.generate, taskId, group, priority: 'normal' };
}

/** The delivery of a task's outcome after its first attempt, `delayMs` from now. */
export function deliveryJob(taskId: string, delayMs?: number): NewJob {
  return {
    id: `deliver:${taskId}`,
    name: JOB_NAMES.deliver,
    taskId,
    priority: 'first',
    ...(delayMs === undefined ? {} : { delayMs }),
  };
}

/** Another delivery of a finished task, asked for through the API: an id of its own each time. */
export function redeliveryJob(taskId: string): NewJob {
  return { id: `deliver:${taskId}:${randomUUID()}`, name: JOB_NAMES.deliver, taskId, priority: 'first' };
}

/** Whether a `deliver` job is a redelivery (which starts a retry schedule of its own). */
export function isRedelivery(job: Pick<Job, 'id' | 'taskId'>): boolean {
  return job.id !== deliveryJob(job.taskId).id;
}
