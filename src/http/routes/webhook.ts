/**
 * POST /webhook (SPEC §3): validate, claim the idempotency key, store the task, enqueue its
 * generation, answer with the task id. The reply itself is produced by the worker.
 */
import { createHash, randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { SsrfPolicy } from '../../delivery/ssrf/allow-list.js';
import { checkCallbackUrl } from '../../delivery/ssrf/callback-url.js';
import { generateJob } from '../../jobs/catalog.js';
import type { JobQueue } from '../../queue/job-queue.js';
import { ERROR_CODES, HttpError } from '../../shared/errors.js';
import type { Budget } from '../../shared/llm-settings.js';
import type { Metrics } from '../../shared/metrics.js';
import { conversationKey, type LlmOptions, type Store } from '../../store/store.js';
import { createBackendBudget, withBackendDeadline } from '../backend-deadline.js';
import { budgetClient, overBudget } from '../budget.js';
import {
  errorResponse,
  jsonBodyErrorResponses,
  unauthorizedResponse,
  unavailableResponse,
} from '../error-responses.js';
import {
  idempotencyKeyHeaderSchema,
  METADATA_MAX_BYTES,
  type WebhookAccepted,
  type WebhookBody,
  webhookAcceptedSchema,
  webhookBodySchema,
} from '../schemas.js';
import { RequestValidationError, type ValidationIssue } from '../validation-errors.js';
import type { SecurityDoc } from './docs.js';

export interface WebhookRouteOptions {
  store: Store;
  queue: JobQueue;
  metrics: Metrics;
  ssrfPolicy: SsrfPolicy;
  messageMaxChars: number;
  /** Route `config` (the rate limit), shared with POST /callback. */
  routeConfig: object;
  /** The OpenAPI `security` of protected routes (nothing when tokens are off). */
  security: SecurityDoc;
  /** What `options.model` may name: LLM_MODEL, the fallbacks and LLM_MODELS_ALLOWED. */
  allowedModels: readonly string[];
  /** `CLIENT_BUDGET`; `null`: none. */
  budget: Budget | null;
}

/** How long an idempotency key keeps its first answer. */
export const IDEMPOTENCY_TTL_SECONDS = 86_400;
const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/;

function fingerprint(body: unknown): string {
  return createHash('sha256').update(JSON.stringify(body)).digest('hex');
}

/** pydantic's way of listing a literal's values: `'a', 'b' or 'c'`. */
function expectedLiterals(values: readonly string[]): string {
  const quoted = values.map((value) => `'${value}'`);
  return quoted.length <= 1 ? (quoted[0] ?? "''") : `${quoted.slice(0, -1).join(', ')} or ${quoted.at(-1)}`;
}

/** The checks JSON Schema cannot express; same 422 shape as the schema's own. */
function semanticIssues(
  body: WebhookBody,
  policy: SsrfPolicy,
  allowedModels: readonly string[],
): ValidationIssue[] {
  const issues: ValidationIssue[] = [];
  const model = body.options?.model;
  if (typeof model === 'string' && !allowedModels.includes(model)) {
    const expected = expectedLiterals(allowedModels);
    issues.push({
      type: 'literal_error',
      loc: ['body', 'options', 'model'],
      msg: `Input should be ${expected}`,
      input: model,
      ctx: { expected },
    });
  }
  const url = new URL(body.callback_url.trim());
  const verdict = checkCallbackUrl(url, policy);
  if (!verdict.allowed) {
    issues.push({
      type: 'callback_url_forbidden',
      loc: ['body', 'callback_url'],
      msg: `Callback URL is not allowed: ${verdict.reason}`,
      input: body.callback_url,
      ctx: { reason: verdict.reason },
    });
  }
  if (body.metadata !== undefined) {
    const bytes = Buffer.byteLength(JSON.stringify(body.metadata), 'utf8');
    if (bytes > METADATA_MAX_BYTES) {
      issues.push({
        type: 'too_long',
        loc: ['body', 'metadata'],
        msg: `Metadata should be at most ${METADATA_MAX_BYTES} bytes as JSON, not ${bytes}`,
        input: body.metadata,
        ctx: { field_type: 'Metadata', max_length: METADATA_MAX_BYTES, actual_length: bytes },
      });
    }
  }
  return issues;
}

/** The LLM options of a request that has them (unknown names dropped). */
function pickLlmOptions(given: WebhookBody['options']): LlmOptions | null {
  if (given === undefined) return null;
  const picked: LlmOptions = {
    ...(typeof given.model === 'string' ? { model: given.model } : {}),
    ...(typeof given.temperature === 'number' ? { temperature: given.temperature } : {}),
    ...(typeof given.max_tokens === 'number' ? { max_tokens: given.max_tokens } : {}),
  };
  return Object.keys(picked).length === 0 ? null : picked;
}

function idempotencyKeyOf(request: FastifyRequest): string | null {
  const raw = request.headers['idempotency-key'];
  if (raw === undefined) return null;
  if (typeof raw !== 'string' || !IDEMPOTENCY_KEY.test(raw)) {
    throw new HttpError(
      400,
      'Idempotency-Key must be 1 to 255 visible ASCII characters',
      ERROR_CODES.idempotencyKeyInvalid,
    );
  }
  return raw;
}

export function registerWebhookRoute(app: FastifyInstance, options: WebhookRouteOptions): void {
  const { store, queue, metrics, ssrfPolicy } = options;

  app.post<{ Body: WebhookBody; Reply: WebhookAccepted }>(
    '/webhook',
    {
      config: options.routeConfig,
      schema: {
        summary: 'Submit a message; the reply is POSTed to callback_url',
        tags: ['webhook'],
        ...options.security,
        body: webhookBodySchema(options.messageMaxChars),
        headers: idempotencyKeyHeaderSchema,
        response: {
          200: { description: 'Accepted: the task is queued.', ...webhookAcceptedSchema },
          400: errorResponse(
            'Malformed Idempotency-Key.',
            'Idempotency-Key must be 1 to 255 visible ASCII characters',
          ),
          401: unauthorizedResponse,
          409: errorResponse(
            'Idempotency-Key reused with another body.',
            'Idempotency-Key was already used with a different request body',
          ),
          ...jsonBodyErrorResponses,
          503: unavailableResponse,
        },
      },
    },
    async (request: FastifyRequest<{ Body: WebhookBody }>, reply: FastifyReply) => {
      const body = request.body;
      const issues = semanticIssues(body, ssrfPolicy, options.allowedModels);
      if (issues.length > 0) throw new RequestValidationError(issues, body);

      // However many backend calls this takes, a backend that hangs means a 503 within 2 s.
      const withinBudget = createBackendBudget();
      const enqueueGeneration = (id: string, group: string) =>
        withinBudget(queue.enqueue(generateJob(id, group)));
      const namespace = request.namespace;
      const conversationId = body.conversation_id ?? body.callback_url;
      const group = conversationKey(namespace, conversationId);
      const idempotencyKey = idempotencyKeyOf(request);
      const taskId = randomUUID();
      const releaseClaim = (key: string): Promise<void> =>
        withBackendDeadline(store.releaseIdempotencyKey(key, taskId)).catch((releaseError: unknown) =>
          request.log.warn({ err: releaseError, task_id: taskId }, 'could not release idempotency key'),
        );

      const claimKey = idempotencyKey === null ? null : `${namespace}:${idempotencyKey}`;
      if (claimKey !== null) {
        const claim = await withinBudget(
          store.claimIdempotencyKey(claimKey, fingerprint(body), taskId, IDEMPOTENCY_TTL_SECONDS),
        );
        if (claim.outcome === 'conflict') {
          throw new HttpError(
            409,
            'Idempotency-Key was already used with a different request body',
            ERROR_CODES.idempotencyConflict,
          );
        }
        if (claim.outcome === 'replay') {
          // The first request may have stored its task and then failed to enqueue it; enqueueing
          // again is harmless (a job id that exists is not added twice) and makes sure it runs.
          const first = await withinBudget(store.getTask(namespace, claim.taskId));
          if (first?.status === 'queued') await enqueueGeneration(first.taskId, group);
          reply.header('idempotent-replayed', 'true');
          return { task_id: claim.taskId, status: 'Processing' } as const;
        }
      }

      const client = budgetClient(namespace, request.ip);
      const llmOptions = pickLlmOptions(body.options);
      if (options.budget !== null) {
        const retryAfterSeconds = await withinBudget(
          overBudget(store, options.budget, client, {
            message: body.message,
            maxTokens: llmOptions?.max_tokens,
          }),
        ).catch(async (error: unknown) => {
          if (claimKey !== null) await releaseClaim(claimKey);
          throw error;
        });
        if (retryAfterSeconds !== null) {
          if (claimKey !== null) await releaseClaim(claimKey);
          reply.header('retry-after', String(retryAfterSeconds));
          throw new HttpError(429, `Budget exceeded: ${options.budget.label}`, ERROR_CODES.budgetExceeded);
        }
      }

      try {
        // Requested together so the embedded mode commits both in one transaction; in the redis
        // mode a job whose task record is missing waits for it briefly, then is dropped.
        await Promise.all([
          withinBudget(
            store.createTask({
              taskId,
              namespace,
              conversationId,
              message: body.message,
              callbackUrl: body.callback_url,
              metadata: body.metadata ?? null,
              createdAt: new Date().toISOString(),
              options: llmOptions,
              client,
            }),
          ),
          enqueueGeneration(taskId, group),
        ]);
      } catch (error) {
        // Without its task the claim would replay an id that does not exist: free the key so
        // the client's retry can succeed.
        if (claimKey !== null) await releaseClaim(claimKey);
        throw error;
      }

      metrics.tasksAccepted.inc();
      request.log.info({ task_id: taskId, namespace: namespace || undefined }, 'task accepted');
      request.log.debug({ task_id: taskId, message: body.message }, 'task message');
      return { task_id: taskId, status: 'Processing' } as const;
    },
  );
}
