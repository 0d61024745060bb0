/**
 * GET /tasks (a filtered, newest-first page of the client's tasks) and POST /tasks/redeliver
 * (every matching finished task's callback again, or only their count with `dry_run`), SPEC §12.
 * Both read the store's indexes; neither scans every task.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { redeliveryJob } from '../../jobs/catalog.js';
import type { JobQueue } from '../../queue/job-queue.js';
import { ERROR_CODES, HttpError } from '../../shared/errors.js';
import type { Store, TaskRecord } from '../../store/store.js';
import type { TaskFilter, TaskListPage } from '../../store/task-lists.js';
import { createBackendBudget, withBackendDeadline } from '../backend-deadline.js';
import {
  errorResponse,
  unauthorizedResponse,
  unavailableResponse,
  validationErrorSchema,
} from '../error-responses.js';
import { checkCursor, parseLimit } from '../list-params.js';
import {
  type BulkRedeliverBody,
  bulkMatchedSchema,
  bulkRedeliverBodySchema,
  bulkRedeliveringSchema,
  type TaskListQuery,
  taskListQuerySchema,
  taskListSchema,
} from '../list-schemas.js';
import { toTaskView } from '../task-view.js';
import type { SecurityDoc } from './docs.js';

export interface TaskListRouteOptions {
  store: Store;
  /** The delivery queue, where redeliveries go. */
  deliveries: JobQueue;
  security: SecurityDoc;
}

/** Most tasks one bulk redelivery takes; a wider filter is refused, to be narrowed. */
export const BULK_REDELIVER_MAX = 10_000;
const REDELIVER_PAGE = 500;

const timeOf = (text: string | undefined): number | undefined =>
  text === undefined ? undefined : Date.parse(text);

export function registerTaskListRoutes(app: FastifyInstance, options: TaskListRouteOptions): void {
  const { store, deliveries } = options;

  app.get<{ Querystring: TaskListQuery }>(
    '/tasks',
    {
      schema: {
        summary: "The client's tasks, newest first, filtered and paged",
        tags: ['tasks'],
        ...options.security,
        querystring: taskListQuerySchema,
        response: {
          200: { description: 'One page of tasks.', ...taskListSchema },
          400: errorResponse('A cursor this listing did not write.', 'Invalid cursor'),
          401: unauthorizedResponse,
          422: { description: 'A query parameter out of its range.', ...validationErrorSchema },
          503: unavailableResponse,
        },
      },
    },
    async (request) => {
      const query = request.query;
      const filter: TaskFilter = {
        statuses: query.status === undefined ? undefined : [query.status],
        conversationId: query.conversation_id,
        destination: query.destination,
        sinceMs: timeOf(query.since),
        untilMs: timeOf(query.until),
      };
      const page = await withBackendDeadline(
        store.listTasks(
          request.namespace,
          filter,
          parseLimit(query.limit),
          checkCursor('tasks', query.cursor),
        ),
      );
      return { tasks: page.tasks.map(toTaskView), next_cursor: page.nextCursor };
    },
  );

  app.post<{ Body: BulkRedeliverBody }>(
    '/tasks/redeliver',
    {
      schema: {
        summary: 'Send the callback of every matching finished task again',
        tags: ['tasks'],
        ...options.security,
        body: bulkRedeliverBodySchema,
        response: {
          200: { description: 'With `dry_run`: how many tasks match.', ...bulkMatchedSchema },
          202: { description: 'Their deliveries are queued.', ...bulkRedeliveringSchema },
          401: unauthorizedResponse,
          422: errorResponse(
            'A body field out of its rules, or more tasks than one call takes.',
            `More than ${BULK_REDELIVER_MAX} tasks match; narrow the filter`,
          ),
          503: unavailableResponse,
        },
      },
    },
    async (request: FastifyRequest<{ Body: BulkRedeliverBody }>, reply: FastifyReply) => {
      const body = request.body ?? {};
      const filter: TaskFilter = {
        statuses: body.status === undefined ? ['completed', 'failed'] : [body.status],
        conversationId: body.conversation_id,
        destination: body.destination,
        sinceMs: timeOf(body.since),
        untilMs: timeOf(body.until),
      };
      const withinBudget = createBackendBudget();
      if (body.dry_run === true) {
        return reply
          .code(200)
          .send({ matched: await withinBudget(store.countTasks(request.namespace, filter)) });
      }
      const matched = await withinBudget(store.countTasks(request.namespace, filter));
      if (matched > BULK_REDELIVER_MAX) {
        throw new HttpError(
          422,
          `${matched} tasks match, more than ${BULK_REDELIVER_MAX}; narrow the filter`,
          ERROR_CODES.validationFailed,
        );
      }
      const taskIds: string[] = [];
      let cursor: string | null = null;
      do {
        const page: TaskListPage<TaskRecord> = await withBackendDeadline(
          store.listTasks(request.namespace, filter, REDELIVER_PAGE, cursor),
        );
        for (const task of page.tasks) taskIds.push(task.taskId);
        cursor = page.nextCursor;
      } while (cursor !== null && taskIds.length < BULK_REDELIVER_MAX);
      for (const taskId of taskIds) {
        await withBackendDeadline(store.setStatus(taskId, 'delivering'));
        await withBackendDeadline(deliveries.enqueue(redeliveryJob(taskId)));
      }
      request.log.info({ redelivering: taskIds.length }, 'bulk redelivery queued');
      return reply.code(202).send({ redelivering: taskIds.length });
    },
  );
}
