/**
 * GET /tasks/:task_id and POST /tasks/:task_id/redeliver (SPEC §3). A task is only visible in
 * the namespace that created it.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { redeliveryJob } from '../../jobs/catalog.js';
import type { JobQueue } from '../../queue/job-queue.js';
import { ERROR_CODES, HttpError } from '../../shared/errors.js';
import type { Store, TaskRecord } from '../../store/store.js';
import { createBackendBudget, withBackendDeadline } from '../backend-deadline.js';
import { errorResponse, unauthorizedResponse, unavailableResponse } from '../error-responses.js';
import {
  redeliverSchema,
  type TaskIdParams,
  type TaskView,
  taskIdParamsSchema,
  taskSchema,
} from '../schemas.js';
import type { SecurityDoc } from './docs.js';

export interface TaskRouteOptions {
  store: Store;
  /** The delivery queue, where redeliveries go. */
  deliveries: JobQueue;
  /** The OpenAPI `security` of protected routes (nothing when tokens are off). */
  security: SecurityDoc;
}

type TaskParams = { Params: TaskIdParams };

/** The public shape of a task record: no message text, callback URL or metadata. */
export function toTaskView(task: TaskRecord): TaskView {
  return {
    task_id: task.taskId,
    status: task.status,
    conversation_id: task.conversationId,
    created_at: task.createdAt,
    updated_at: task.updatedAt,
    ...(task.generatedResponse === null ? {} : { generated_response: task.generatedResponse }),
    ...(task.error === null ? {} : { error: { type: task.error.type, message: task.error.message } }),
    attempts: { llm: task.attempts.llm, callback: task.attempts.callback },
    deliveries: task.deliveries.map((delivery) => ({
      at: delivery.at,
      ...(delivery.status_code === undefined ? {} : { status_code: delivery.status_code }),
      ...(delivery.error === undefined ? {} : { error: delivery.error }),
      duration_ms: delivery.duration_ms,
    })),
  };
}

const TASK_NOT_FOUND = 'Task not found';

export function registerTaskRoutes(app: FastifyInstance, options: TaskRouteOptions): void {
  const { store, deliveries } = options;

  app.get<TaskParams>(
    '/tasks/:task_id',
    {
      schema: {
        summary: 'A task: status, reply or error, and every delivery attempt',
        tags: ['tasks'],
        ...options.security,
        params: taskIdParamsSchema,
        response: {
          200: { description: 'The task.', ...taskSchema },
          401: unauthorizedResponse,
          404: errorResponse('Unknown (or expired) task.', 'Task not found'),
          503: unavailableResponse,
        },
      },
    },
    async (request: FastifyRequest<TaskParams>) => {
      const task = await withBackendDeadline(store.getTask(request.namespace, request.params.task_id));
      if (task === null) throw new HttpError(404, TASK_NOT_FOUND, ERROR_CODES.taskNotFound);
      return toTaskView(task);
    },
  );

  app.post<TaskParams>(
    '/tasks/:task_id/redeliver',
    {
      schema: {
        summary: "Send a finished task's callback again",
        tags: ['tasks'],
        ...options.security,
        params: taskIdParamsSchema,
        response: {
          202: { description: 'A new delivery is queued.', ...redeliverSchema },
          401: unauthorizedResponse,
          404: errorResponse('Unknown (or expired) task.', 'Task not found'),
          409: errorResponse(
            'The task is not finished yet.',
            'Task is processing; only a completed or failed task can be redelivered',
          ),
          503: unavailableResponse,
        },
      },
    },
    async (request: FastifyRequest<TaskParams>, reply: FastifyReply) => {
      const withinBudget = createBackendBudget();
      const task = await withinBudget(store.getTask(request.namespace, request.params.task_id));
      if (task === null) throw new HttpError(404, TASK_NOT_FOUND, ERROR_CODES.taskNotFound);
      if (task.status !== 'completed' && task.status !== 'failed') {
        throw new HttpError(
          409,
          `Task is ${task.status}; only a completed or failed task can be redelivered`,
          ERROR_CODES.taskNotFinished,
        );
      }
      await withinBudget(store.setStatus(task.taskId, 'delivering'));
      await withinBudget(deliveries.enqueue(redeliveryJob(task.taskId)));
      request.log.info({ task_id: task.taskId }, 'redelivery queued');
      return reply.code(202).send({ task_id: task.taskId, status: 'delivering' });
    },
  );
}
