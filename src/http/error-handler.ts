/**
 * Every error becomes a JSON body with `detail` (SPEC §3): validation errors in FastAPI's shape
 * (`{"detail": [{type, loc, msg, input, ctx?}], "body": ...}`), a backend outage as 503, 404 and
 * 405 for unknown routes and methods. A 5xx never carries a message or stack; it is logged.
 */
import { type IncomingMessage, STATUS_CODES } from 'node:http';
import { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { BackendUnavailableError, HttpError } from '../shared/errors.js';
import { inspectHttpUrl } from './inspect-http-url.js';
import { RequestValidationError, type ValidationIssue } from './validation-errors.js';

/** The deadline for any single store or queue call made while answering a request. */
export const BACKEND_TIMEOUT_MS = 2000;

/**
 * Settles like `promise`, or rejects with `BackendUnavailableError` after `timeoutMs`: a backend
 * that stops answering (a Redis that is reconnecting queues commands forever) must become a
 * prompt 503, never a request that hangs.
 */
export async function withBackendDeadline<T>(
  promise: Promise<T>,
  timeoutMs = BACKEND_TIMEOUT_MS,
): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new BackendUnavailableError(`Backend did not answer within ${timeoutMs} ms`)),
      timeoutMs,
    );
  });
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * One time budget for every backend call made while answering one request: however many calls
 * a route makes, the answer (a 503 at worst) comes within `totalMs`.
 */
export function createBackendBudget(totalMs = BACKEND_TIMEOUT_MS): <T>(promise: Promise<T>) => Promise<T> {
  const endsAt = Date.now() + totalMs;
  return (promise) => withBackendDeadline(promise, Math.max(1, endsAt - Date.now()));
}

/** What Ajv reports (the subset read here). */
interface AjvIssue {
  keyword: string;
  instancePath: string;
  params: Record<string, unknown>;
}

const LOCATION_OF: Record<string, string> = {
  body: 'body',
  params: 'path',
  querystring: 'query',
  headers: 'header',
};

/** Which Ajv error of one field pydantic would report: type before presence before length before format. */
const KEYWORD_RANK: Record<string, number> = {
  type: 0,
  required: 1,
  minLength: 2,
  pattern: 3,
  maxLength: 4,
  format: 5,
};

function characters(count: number): string {
  return count === 1 ? 'character' : 'characters';
}

function issueFromAjv(error: AjvIssue, location: string, data: unknown): ValidationIssue | null {
  const path = error.instancePath
    .split('/')
    .slice(1)
    .map((segment) => segment.replaceAll('~1', '/').replaceAll('~0', '~'))
    .map((segment) => (/^\d+$/.test(segment) ? Number(segment) : segment));
  let input: unknown = data;
  for (const segment of path) {
    input =
      input !== null && typeof input === 'object' ? (input as Record<string, unknown>)[segment] : undefined;
  }
  const loc: Array<string | number> = [location, ...path];
  switch (error.keyword) {
    case 'required':
      return {
        type: 'missing',
        loc: [...loc, String(error.params.missingProperty)],
        msg: 'Field required',
        input: input ?? null,
      };
    case 'type':
      if (path.length === 0 && (input === null || input === undefined)) {
        return { type: 'missing', loc, msg: 'Field required', input: null };
      }
      if (error.params.type === 'object') {
        return { type: 'dict_type', loc, msg: 'Input should be a valid dictionary', input };
      }
      if (error.params.type === 'string') {
        return { type: 'string_type', loc, msg: 'Input should be a valid string', input };
      }
      break;
    case 'minLength':
    case 'pattern': {
      // A whitespace-only text is as good as empty (pydantic strips before counting).
      const minLength = error.keyword === 'minLength' ? Number(error.params.limit) : 1;
      return {
        type: 'string_too_short',
        loc,
        msg: `String should have at least ${minLength} ${characters(minLength)}`,
        input,
        ctx: { min_length: minLength },
      };
    }
    case 'maxLength': {
      const maxLength = Number(error.params.limit);
      return {
        type: 'string_too_long',
        loc,
        msg: `String should have at most ${maxLength} ${characters(maxLength)}`,
        input,
        ctx: { max_length: maxLength },
      };
    }
    case 'format': {
      if (error.params.format !== 'uri' || typeof input !== 'string') break;
      const problem = inspectHttpUrl(input);
      if (problem === null) break;
      if (problem.type === 'url_scheme') {
        return {
          type: 'url_scheme',
          loc,
          msg: "URL scheme should be 'http' or 'https'",
          input,
          ctx: { expected_schemes: "'http' or 'https'" },
        };
      }
      return {
        type: 'url_parsing',
        loc,
        msg: `Input should be a valid URL, ${problem.error}`,
        input,
        ctx: { error: problem.error },
      };
    }
  }
  return { type: 'value_error', loc, msg: 'Value error, invalid value', input };
}

/**
 * Translates Ajv's errors (collected with `allErrors`) into pydantic's issues: one per field,
 * in the order of `fieldOrder` when given.
 */
export function issuesFromAjv(
  errors: readonly AjvIssue[],
  context: string,
  data: unknown,
  fieldOrder: readonly string[] = [],
): ValidationIssue[] {
  const location = LOCATION_OF[context] ?? context;
  const best = new Map<string, { rank: number; issue: ValidationIssue }>();
  for (const error of errors) {
    const issue = issueFromAjv(error, location, data);
    if (issue === null) continue;
    const key = JSON.stringify(issue.loc);
    const rank = KEYWORD_RANK[error.keyword] ?? 9;
    const current = best.get(key);
    if (current === undefined || rank < current.rank) best.set(key, { rank, issue });
  }
  const position = (issue: ValidationIssue): number => {
    const index = fieldOrder.indexOf(String(issue.loc[1]));
    return index === -1 ? fieldOrder.length : index;
  };
  return [...best.values()].map(({ issue }) => issue).sort((a, b) => position(a) - position(b));
}

/** The 422 body of JSON that could not be parsed. */
export function jsonInvalidIssue(reason: string, position?: number): ValidationIssue {
  return {
    type: 'json_invalid',
    loc: position === undefined ? ['body'] : ['body', position],
    msg: 'JSON decode error',
    input: {},
    ctx: { error: reason },
  };
}

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

/**
 * Fastify's `clientErrorHandler`: HTTP the server could not parse, headers too large, or a request
 * that did not arrive within `requestTimeout` (a slow body). Same `detail` body as every error.
 */
export function clientErrorHandler(error: NodeJS.ErrnoException, socket: Duplex): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  const statusCode =
    error.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : error.code === 'HPE_HEADER_OVERFLOW' ? 431 : 400;
  const reason = STATUS_CODES[statusCode] ?? 'Bad Request';
  const body = JSON.stringify({ detail: reason });
  // Node's own rule: answer only when no response has started on this socket. A request whose
  // body turns out malformed after the route already answered (a 401 before the body was read)
  // must not get a second answer appended to the first.
  const inFlight = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } | null })._httpMessage;
  if (socket.writable && inFlight?.headersSent !== true) {
    socket.write(
      `HTTP/1.1 ${statusCode} ${reason}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
        `Content-Type: application/json; charset=utf-8\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy(error);
}

/** How long a refused CONNECT client may keep its half of the socket open. */
const CONNECT_LINGER_MS = 5000;

/**
 * The HTTP server's `connect` event: Node hands a CONNECT request's socket over to this listener
 * (without one, it drops the connection unanswered). No route takes CONNECT, so it is answered
 * 405 with a `detail` like every other error; the rest of what the client sends is discarded.
 */
export function connectMethodHandler(_request: IncomingMessage, socket: Duplex): void {
  const body = JSON.stringify({ detail: 'Method Not Allowed' });
  socket.on('error', () => undefined);
  if (socket instanceof Socket) socket.setTimeout(CONNECT_LINGER_MS, () => socket.destroy());
  socket.resume();
  socket.end(
    `HTTP/1.1 405 Method Not Allowed\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
      `Content-Type: application/json; charset=utf-8\r\nConnection: close\r\n\r\n${body}`,
  );
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
