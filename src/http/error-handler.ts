/**
 * Every error answered through Fastify becomes a JSON body with `detail` (SPEC §3): validation
 * errors in FastAPI's shape (`{"detail": [{type, loc, msg, input, ctx?}], "body": ...}`), a
 * backend outage as 503, 404 and 405 for unknown routes and methods, and the router's own errors
 * (`frameworkErrors`). A 5xx never carries a message or stack; it is logged. What Node answers
 * before Fastify sees a request is in client-error-handler.ts.
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { BackendUnavailableError, HttpError } from '../shared/errors.js';
import {
  type AjvIssue,
  issuesFromAjv,
  jsonInvalidIssue,
  RequestValidationError,
} from './validation-errors.js';

function sendJson(reply: FastifyReply, statusCode: number, body: unknown): FastifyReply {
  // Error bodies are written as built, not through a route's response serialiser, whose schema
  // for this status may not fit (and would silently drop or coerce fields).
  return reply
    .code(statusCode)
    .type('application/json; charset=utf-8')
    .serializer((payload: unknown) => JSON.stringify(payload))
    .send(body);
}

/**
 * Fastify's `frameworkErrors`: a URL the router cannot decode (bad percent-encoding) or a path
 * parameter over `maxParamLength`, answered with a `detail` like every other error.
 */
export function frameworkErrorHandler(
  error: FastifyError,
  _request: FastifyRequest,
  reply: FastifyReply,
): void {
  if (error.code === 'FST_ERR_MAX_PARAM_LENGTH') {
    sendJson(reply, 414, { detail: 'URI Too Long' });
    return;
  }
  sendJson(reply, 400, { detail: 'Malformed URL: invalid percent-encoding' });
}

type RouteMatcher = { pattern: RegExp; methods: Set<string> };

function patternOf(url: string): RegExp {
  const source = url
    .split(/(:[A-Za-z0-9_]+|\*)/)
    .map((part) => {
      if (part === '*') return '.*';
      if (part.startsWith(':')) return '[^/]+';
      return part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    })
    .join('');
  return new RegExp(`^${source}$`);
}

/**
 * Installs the error handler and the 404/405 handler. Call before registering routes: the
 * routes are indexed as they are added, so an existing path with another method is a 405.
 */
export function registerErrorHandling(app: FastifyInstance, options: { bodyLimitBytes: number }): void {
  const routes = new Map<string, RouteMatcher>();
  app.addHook('onRoute', (route) => {
    const entry = routes.get(route.url) ?? { pattern: patternOf(route.url), methods: new Set<string>() };
    for (const method of Array.isArray(route.method) ? route.method : [route.method])
      entry.methods.add(method);
    routes.set(route.url, entry);
  });

  app.setNotFoundHandler((request: FastifyRequest, reply: FastifyReply) => {
    const path = request.url.split('?', 1)[0] ?? '/';
    const allowed = new Set<string>();
    for (const { pattern, methods } of routes.values()) {
      if (pattern.test(path)) for (const method of methods) allowed.add(method);
    }
    if (allowed.size > 0 && !allowed.has(request.method)) {
      reply.header('allow', [...allowed].sort().join(', '));
      return sendJson(reply, 405, { detail: 'Method Not Allowed' });
    }
    return sendJson(reply, 404, { detail: 'Not Found' });
  });

  app.setErrorHandler((error: FastifyError | Error, request: FastifyRequest, reply: FastifyReply) => {
    if (error instanceof RequestValidationError) {
      return sendJson(reply, 422, { detail: error.detail, body: error.body ?? null });
    }
    const fastifyError = error as FastifyError;
    if (fastifyError.validation !== undefined) {
      const context = fastifyError.validationContext ?? 'body';
      const data = (request as unknown as Record<string, unknown>)[context];
      const fieldOrder = Object.keys(
        (request.routeOptions.schema?.[context as 'body'] as { properties?: object } | undefined)
          ?.properties ?? {},
      );
      const detail = issuesFromAjv(fastifyError.validation as AjvIssue[], context, data, fieldOrder);
      return sendJson(reply, 422, { detail, body: context === 'body' ? (request.body ?? null) : null });
    }
    if (error instanceof BackendUnavailableError) {
      request.log.warn({ err_code: error.code, reason: error.message }, 'backend unavailable');
      return sendJson(reply, 503, { detail: 'Service unavailable: the queue backend cannot be reached' });
    }
    if (error instanceof HttpError) {
      return sendJson(reply, error.statusCode, { detail: error.detail });
    }
    switch (fastifyError.code) {
      case 'FST_ERR_CTP_BODY_TOO_LARGE':
        return sendJson(reply, 413, {
          detail: `Request body is larger than ${options.bodyLimitBytes} bytes`,
        });
      case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
        return sendJson(reply, 415, { detail: 'Unsupported media type: send application/json' });
      case 'FST_ERR_CTP_EMPTY_JSON_BODY':
        return sendJson(reply, 422, {
          detail: [{ type: 'missing', loc: ['body'], msg: 'Field required', input: null }],
          body: null,
        });
      case 'FST_ERR_CTP_INVALID_JSON_BODY':
        return sendJson(reply, 422, { detail: [jsonInvalidIssue('Invalid JSON')], body: null });
    }
    const statusCode = fastifyError.statusCode ?? 500;
    if (statusCode >= 400 && statusCode < 500) {
      return sendJson(reply, statusCode, { detail: error.message });
    }
    request.log.error({ err: error }, 'request failed');
    return sendJson(reply, statusCode >= 500 && statusCode < 600 ? statusCode : 500, {
      detail: 'Internal Server Error',
    });
  });
}
