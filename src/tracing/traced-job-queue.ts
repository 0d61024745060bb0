/**
 * Tracing across the queue: a `JobQueue` that wraps another. `enqueue` makes a PRODUCER span,
 * `send {name}`, and stores its context with the job (`NewJob.trace`, kept durably by the
 * driver); each run of the job is a CONSUMER span, `process {name}`, whose parent is that stored
 * context. So every run of a job, its retries and a run after a crash or a restart, on any
 * worker, is in the trace of the request that enqueued it.
 *
 * A carrier stored with the job, rather than BullMQ's own `telemetry` option: the redis driver
 * adds a conversation's next job to BullMQ while finishing the one before it (or from a repair
 * sweep), in another task's context, and the embedded queue is not BullMQ at all.
 *
 * Only wrapped when tracing is on (`service.ts`), so with tracing off the queue is untouched.
 */
import { context, SpanKind, trace } from '@opentelemetry/api';
import type { Job, JobHandler, JobQueue, NewJob } from '../queue/job-queue.js';
import { ATTR, extractCarrier, injectCarrier, markFailed, tracer } from './spans.js';

/** The messaging attributes of both sides; `system` names the queue's technology. */
function messagingAttributes(system: string, job: Pick<Job, 'id' | 'name' | 'taskId'>, operation: string) {
  return {
    'messaging.system': system,
    'messaging.operation.type': operation,
    'messaging.operation.name': operation,
    'messaging.destination.name': job.name,
    'messaging.message.id': job.id,
    [ATTR.taskId]: job.taskId,
  };
}

/** `queue` with a span per enqueue and per run; `system` is `sqlite` or `bullmq`. */
export function traceJobQueue(queue: JobQueue, system: string): JobQueue {
  const enqueue = async (job: NewJob): Promise<boolean> => {
    const span = tracer().startSpan(`send ${job.name}`, {
      kind: SpanKind.PRODUCER,
      attributes: messagingAttributes(system, job, 'send'),
    });
    const carrier = injectCarrier(trace.setSpan(context.active(), span));
    try {
      const added = await queue.enqueue(carrier === undefined ? job : { ...job, trace: carrier });
      // A duplicate id: the job already there keeps the trace it was enqueued in.
      if (!added) span.setAttribute('llm_webhook.job.duplicate', true);
      return added;
    } catch (error) {
      markFailed(span, error);
      throw error;
    } finally {
      span.end();
    }
  };

  const traced =
    (handler: JobHandler): JobHandler =>
    async (job) => {
      const parent = extractCarrier(job.trace);
      const span = tracer().startSpan(
        `process ${job.name}`,
        {
          kind: SpanKind.CONSUMER,
          attributes: { ...messagingAttributes(system, job, 'process'), [ATTR.jobAttempt]: job.attempt },
        },
        parent,
      );
      try {
        const result = await context.with(trace.setSpan(parent, span), () => handler(job));
        span.setAttribute(ATTR.jobOutcome, result.type);
        if (result.type === 'retry') span.setAttribute(ATTR.retryDelayMs, result.delayMs);
        return result;
      } catch (error) {
        markFailed(span, error);
        throw error;
      } finally {
        span.end();
      }
    };

  return {
    enqueue,
    consume: (handler, options) => queue.consume(traced(handler), options),
    groupPending: (group) => queue.groupPending(group),
    counts: () => queue.counts(),
    ping: () => queue.ping(),
    close: (options) => queue.close(options),
  };
}
