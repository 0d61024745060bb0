/** The worker's one job handler: routes each job to what its name says. */
import type { JobHandler } from '../queue/job-queue.js';
import { createDeliverCallback, type DeliverCallbackDeps } from './deliver-callback.js';
import { createGenerateReply, type GenerateReplyDeps } from './generate-reply.js';

export type JobDeps = GenerateReplyDeps & DeliverCallbackDeps;

export function createJobHandler(deps: JobDeps): JobHandler {
  const generate = createGenerateReply(deps);
  const deliver = createDeliverCallback(deps);
  return (job) => (job.name === 'generate' ? generate(job) : deliver(job));
}
