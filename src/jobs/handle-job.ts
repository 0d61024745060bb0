/** The worker's one job handler, for both queues: routes each job to what its name says. */
import type { Config } from '../config.js';
import { createDeliveryGate } from '../destinations/delivery-gate.js';
import type { LeaseLimiter } from '../limits/lease-limiter.js';
import type { JobHandler } from '../queue/job-queue.js';
import { JOB_NAMES } from './catalog.js';
import { createDeliverer, type DeliverCallbackDeps } from './deliver-callback.js';
import { createGenerateReply, type GenerateReplyDeps } from './generate-reply.js';

export type JobDeps = GenerateReplyDeps & Omit<DeliverCallbackDeps, 'gate'> & { leases: LeaseLimiter };

/** How long a callback attempt's place in flight, and a probe's claim, outlast its timeout. */
const ATTEMPT_MARGIN_MS = 5000;

/** The gate's settings from the configuration (README *Delivery isolation*). */
export function deliveryGateSettings(config: Readonly<Config>) {
  return {
    ...config.callbackBreaker,
    maxInFlight: config.callbackMaxInFlightPerDestination,
    leaseMs: config.callbackTimeoutMs + 2 * ATTEMPT_MARGIN_MS,
    probeMs: config.callbackTimeoutMs + ATTEMPT_MARGIN_MS,
  };
}

export function createJobHandler(deps: JobDeps): JobHandler {
  const gate = createDeliveryGate({
    store: deps.destinations,
    leases: deps.leases,
    settings: deliveryGateSettings(deps.config),
    logger: deps.logger,
    metrics: deps.metrics,
  });
  const deliverer = createDeliverer({ ...deps, gate });
  const generate = createGenerateReply(
    deps.config.callbackFirstAttemptInline
      ? { ...deps, firstDelivery: (task, run) => deliverer.first(task, run) }
      : deps,
  );
  return (job) => (job.name === JOB_NAMES.generate ? generate(job) : deliverer.job(job));
}
