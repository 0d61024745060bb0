/** The public view of a task (`GET /tasks/:task_id`, `GET /tasks`): no message text, callback URL or metadata. */
import { destinationOf } from '../shared/destination.js';
import type { TaskRecord } from '../store/store.js';
import type { TaskView } from './schemas.js';

/** The public shape of a task record: no message text, callback URL or metadata. */
export function toTaskView(task: TaskRecord): TaskView {
  return {
    task_id: task.taskId,
    status: task.status,
    conversation_id: task.conversationId,
    created_at: task.createdAt,
    updated_at: task.updatedAt,
    ...(task.completedAt === null ? {} : { completed_at: task.completedAt }),
    destination: destinationOf(task.callbackUrl),
    ...(task.generatedResponse === null ? {} : { generated_response: task.generatedResponse }),
    ...(task.model === null ? {} : { model: task.model }),
    ...(task.usage === null ? {} : { usage: { ...task.usage } }),
    ...(task.error === null ? {} : { error: { type: task.error.type, message: task.error.message } }),
    attempts: { llm: task.attempts.llm, callback: task.attempts.callback },
    deliveries: task.deliveries.map((delivery) => ({
      at: delivery.at,
      ...(delivery.status_code === undefined ? {} : { status_code: delivery.status_code }),
      ...(delivery.error === undefined ? {} : { error: delivery.error }),
      duration_ms: delivery.duration_ms,
      ...(delivery.probe === true ? { probe: true } : {}),
    })),
  };
}
