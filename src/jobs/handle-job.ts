/** The worker's one job handler, for both queues: routes each job to what its name says. */
import type { JobHandler } from '../queue/job-queue.js';
import { JOB_NAMES } from './catalog.js';
import { createDeliverer, type DeliverCallbackDeps } from './deliver-callback.js';
import { createGenerateReply, type GenerateReplyDeps } from './generate-reply.js';

export type JobDeps = GenerateReplyDeps & DeliverCallbackDeps;

export function createJobHandler(deps: JobDeps): JobHandler {
  const deliverer = createDeliverer(deps);
  const generate = createGenerateReply(deps);
  return (job) => (job.name === JOB_NAMES.generate ? generate(job) : deliverer.job(job));
}
