/**
 * GET /usage (SPEC §10): tokens and cost of the client's completed tasks, grouped by day, model or
 * conversation, from the store's usage roll-ups (never a scan of the tasks). Per namespace: with
 * API tokens on, each token sees its own usage.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { fromNanoUsd } from '../../shared/llm-settings.js';
import type { Store, UsageGroup, UsageTotals } from '../../store/store.js';
import { withBackendDeadline } from '../backend-deadline.js';
import { unauthorizedResponse, unavailableResponse } from '../error-responses.js';
import { type UsageQueryString, type UsageReport, usageQuerySchema, usageReportSchema } from '../schemas.js';
import { RequestValidationError } from '../validation-errors.js';
import type { SecurityDoc } from './docs.js';

export interface UsageRouteOptions {
  store: Store;
  security: SecurityDoc;
}

/** The default span of a query without `since`. */
const DEFAULT_DAYS = 30;
/** The longest span one query may cover. */
export const USAGE_MAX_DAYS = 366;
const DAY_MS = 86_400_000;

function figures(totals: UsageTotals) {
  return {
    requests: totals.requests,
    prompt_tokens: totals.promptTokens,
    completion_tokens: totals.completionTokens,
    total_tokens: totals.totalTokens,
    cost: fromNanoUsd(totals.costNanoUsd),
  };
}

/** The UTC day of an ISO date or date-time; `null` when it is neither. */
function dayOf(text: string): string | null {
  if (!/^\d{4}-\d{2}-\d{2}([T ][\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(text)) return null;
  const ms = Date.parse(text.length === 10 ? `${text}T00:00:00Z` : text);
  return Number.isFinite(ms) ? new Date(ms).toISOString().slice(0, 10) : null;
}

function badQuery(field: string, value: string, msg: string): RequestValidationError {
  return new RequestValidationError(
    [{ type: 'value_error', loc: ['query', field], msg, input: value }],
    null,
  );
}

export function registerUsageRoutes(app: FastifyInstance, options: UsageRouteOptions): void {
  const { store } = options;
  app.get<{ Querystring: UsageQueryString; Reply: UsageReport }>(
    '/usage',
    {
      schema: {
        summary: 'Tokens and cost of completed tasks, by day, model or conversation',
        tags: ['usage'],
        ...options.security,
        querystring: usageQuerySchema,
        response: {
          200: { description: 'The usage, in key order, and its total.', ...usageReportSchema },
          401: unauthorizedResponse,
          503: unavailableResponse,
        },
      },
    },
    async (request: FastifyRequest<{ Querystring: UsageQueryString }>) => {
      const query = request.query;
      const untilDay = query.until === undefined ? new Date().toISOString().slice(0, 10) : dayOf(query.until);
      if (untilDay === null)
        throw badQuery('until', query.until!, 'Value error, expected an ISO date or date-time');
      const sinceDay =
        query.since === undefined
          ? new Date(Date.parse(`${untilDay}T00:00:00Z`) - (DEFAULT_DAYS - 1) * DAY_MS)
              .toISOString()
              .slice(0, 10)
          : dayOf(query.since);
      if (sinceDay === null)
        throw badQuery('since', query.since!, 'Value error, expected an ISO date or date-time');
      const span = (Date.parse(untilDay) - Date.parse(sinceDay)) / DAY_MS + 1;
      if (span < 1 || span > USAGE_MAX_DAYS) {
        throw badQuery(
          'since',
          sinceDay,
          `Value error, expected since before until, at most ${USAGE_MAX_DAYS} days apart`,
        );
      }
      const groupBy = (query.group_by ?? 'day') as UsageGroup;
      const rows = await withBackendDeadline(
        store.getUsage(request.namespace, { sinceDay, untilDay, groupBy }),
      );
      const total: UsageTotals = {
        requests: 0,
        promptTokens: 0,
        completionTokens: 0,
        totalTokens: 0,
        costNanoUsd: 0,
      };
      for (const row of rows) {
        total.requests += row.requests;
        total.promptTokens += row.promptTokens;
        total.completionTokens += row.completionTokens;
        total.totalTokens += row.totalTokens;
        total.costNanoUsd += row.costNanoUsd;
      }
      return { usage: rows.map((row) => ({ key: row.key, ...figures(row) })), total: figures(total) };
    },
  );
}
