/**
 * GET /stats (SPEC §12): per-minute accepted, completed and failed tasks, LLM latency p50/p95 and
 * callback success rate over the last `minutes`, from the store's roll-ups (one read per minute
 * at most, never a scan of tasks), with the depth of both queues (generations, deliveries) and the
 * oldest task waiting for its LLM call.
 */
import type { FastifyInstance } from 'fastify';
import type { JobQueue } from '../../queue/job-queue.js';
import { ERROR_CODES, HttpError } from '../../shared/errors.js';
import type { Store } from '../../store/store.js';
import {
  emptyRollup,
  latencyPercentile,
  MINUTE_MS,
  type MinuteRollup,
  minuteOf,
} from '../../store/task-lists.js';
import { createBackendBudget } from '../backend-deadline.js';
import { unauthorizedResponse, unavailableResponse, validationErrorSchema } from '../error-responses.js';
import {
  STATS_MINUTES_DEFAULT,
  STATS_MINUTES_MAX,
  type StatsQuery,
  statsQuerySchema,
  statsSchema,
} from '../list-schemas.js';
import type { SecurityDoc } from './docs.js';

type Counts = Omit<MinuteRollup, 'minuteMs'>;

function figuresOf(counts: Counts) {
  const attempts = counts.callbackOk + counts.callbackFailed;
  return {
    accepted: counts.accepted,
    completed: counts.completed,
    failed: counts.failed,
    llm_p50_ms: latencyPercentile(counts.llmLatency, 0.5),
    llm_p95_ms: latencyPercentile(counts.llmLatency, 0.95),
    callback_success_rate: attempts === 0 ? null : counts.callbackOk / attempts,
  };
}

export function registerStatsRoute(
  app: FastifyInstance,
  options: { store: Store; queue: JobQueue; deliveries: JobQueue; security: SecurityDoc },
): void {
  const { store, queue, deliveries } = options;
  app.get<{ Querystring: StatsQuery }>(
    '/stats',
    {
      schema: {
        summary: 'Per-minute task, LLM and callback figures, and the queue now',
        tags: ['operations'],
        ...options.security,
        querystring: statsQuerySchema,
        response: {
          200: { description: 'The figures, oldest minute first.', ...statsSchema },
          401: unauthorizedResponse,
          422: { description: 'A query parameter out of its range.', ...validationErrorSchema },
          503: unavailableResponse,
        },
      },
    },
    async (request) => {
      const minutes =
        request.query.minutes === undefined ? STATS_MINUTES_DEFAULT : Number(request.query.minutes);
      if (minutes < 1 || minutes > STATS_MINUTES_MAX) {
        throw new HttpError(
          422,
          `minutes must be between 1 and ${STATS_MINUTES_MAX}`,
          ERROR_CODES.validationFailed,
        );
      }
      const now = Date.now();
      const firstMinute = minuteOf(now) - (minutes - 1) * MINUTE_MS;
      const withinBudget = createBackendBudget();
      const [rollups, counts, deliveryCounts, oldest] = await withinBudget(
        Promise.all([
          store.getRollups(request.namespace, firstMinute, now + 1),
          queue.counts(),
          deliveries.counts(),
          store.oldestTaskAt(request.namespace, 'queued'),
        ]),
      );
      const byMinute = new Map(rollups.map((rollup) => [rollup.minuteMs, rollup]));
      const totals: Counts = emptyRollup(0);
      const series = [];
      for (let minute = firstMinute; minute <= now; minute += MINUTE_MS) {
        const rollup = byMinute.get(minute) ?? emptyRollup(minute);
        totals.accepted += rollup.accepted;
        totals.completed += rollup.completed;
        totals.failed += rollup.failed;
        totals.callbackOk += rollup.callbackOk;
        totals.callbackFailed += rollup.callbackFailed;
        rollup.llmLatency.forEach((n, bucket) => {
          totals.llmLatency[bucket] = (totals.llmLatency[bucket] ?? 0) + n;
        });
        series.push({ minute: new Date(minute).toISOString(), ...figuresOf(rollup) });
      }
      return {
        minutes,
        series,
        totals: figuresOf(totals),
        queue: counts,
        delivery_queue: deliveryCounts,
        oldest_queued_at: oldest,
      };
    },
  );
}
