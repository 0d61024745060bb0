/**
 * Builds the public HTTP API (SPEC §3) from its dependencies. It never listens: `app.ts` starts
 * it, tests call `inject()`. The API validates, stores and enqueues; it never calls the LLM.
 */
import rateLimit from '@fastify/rate-limit';
import Fastify, {
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  LogController,
} from 'fastify';
import type { Config } from '../config.js';
import { createSsrfPolicy } from '../delivery/ssrf/allow-list.js';
import type { DestinationsApi } from '../destinations/destinations-api.js';
import type { JobQueue } from '../queue/job-queue.js';
import { ERROR_CODES, HttpError } from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';
import type { Metrics } from '../shared/metrics.js';
import { VERSION } from '../shared/version.js';
import type { Store } from '../store/store.js';
import { registerAuth } from './auth.js';
import { clientErrorHandler, connectMethodHandler } from './client-error-handler.js';
import { frameworkErrorHandler, registerErrorHandling } from './error-handler.js';
import { isHttpUrl } from './inspect-http-url.js';
import { parseJsonBody } from './json-body.js';
import { registerCallbackRoutes } from './routes/callback.js';
import { registerConversationRoutes } from './routes/conversations.js';
import { registerDestinationRoutes } from './routes/destinations.js';
import { registerDocs, type SecurityDoc, securityDoc } from './routes/docs.js';
import { registerHealthRoutes } from './routes/health.js';
import { registerTaskRoutes } from './routes/tasks.js';
import { registerWebhookRoute } from './routes/webhook.js';

export interface ServerDeps {
  config: Readonly<Config>;
  /** The pino logger; Fastify logs through it (one line per request, no headers or bodies). */
  logger: Logger;
  store: Store;
  /** The generation queue, where accepted tasks go. */
  queue: JobQueue;
  /** The delivery queue, where redeliveries go. */
  deliveries: JobQueue;
  /** The destinations' breakers (GET /destinations). */
  destinations: DestinationsApi;
  metrics: Metrics;
  /** ioredis client for shared rate-limit counters in redis mode; absent = in-process counters. */
  rateLimitRedis?: unknown;
  /** Limits on slow clients; each defaults to the constant of the same name below. */
  timeouts?: ServerTimeouts;
  /**
   * `api` (default): the whole public API. `operations`: only `/healthz`, `/readyz` and
   * `/metrics`, for a worker process, which serves no public API.
   */
  routes?: 'api' | 'operations';
}

/** How long a client may take over a request before the server answers 408 and closes the socket. */
export interface ServerTimeouts {
  /** The whole request, headers and body (default `REQUEST_TIMEOUT_MS`). */
  requestTimeoutMs?: number;
  /** The request line and headers (default `HEADERS_TIMEOUT_MS`); at most `requestTimeoutMs`. */
  headersTimeoutMs?: number;
  /** A socket with no traffic at all (default `CONNECTION_TIMEOUT_MS`). */
  connectionTimeoutMs?: number;
  /** How often incomplete requests are checked against the two deadlines above (default `TIMEOUT_CHECK_INTERVAL_MS`). */
  checkIntervalMs?: number;
}

/** A socket idle this long is closed. */
export const CONNECTION_TIMEOUT_MS = 120_000;
/** A request (headers and body) must arrive within this time: a slow body cannot hold a socket. */
export const REQUEST_TIMEOUT_MS = 30_000;
/** The headers must arrive within this time: a client trickling header bytes (slowloris) is cut off. */
export const HEADERS_TIMEOUT_MS = 10_000;
/**
 * Node checks the two deadlines above on a timer (30 s by default), so a deadline is only as
 * precise as this interval; the check walks only the sockets with an incomplete request.
 */
const TIMEOUT_CHECK_INTERVAL_MS = 1000;
const KEEP_ALIVE_TIMEOUT_MS = 72_000;
/**
 * Path parameters hold URL-encoded conversation ids: a callback URL of up to 2048 characters is
 * at most three times as long once encoded.
 */
const MAX_PARAM_LENGTH = 8192;
/** Probes and scrapes are logged at debug, so they do not drown the request log. */
const QUIET_ROUTES = new Set(['/healthz', '/readyz', '/metrics']);

const SHUTTING_DOWN = 'Service unavailable: the server is shutting down';

export async function buildServer(deps: ServerDeps): Promise<FastifyInstance> {
  const { config, logger, store, queue, metrics } = deps;
  const requestTimeoutMs = deps.timeouts?.requestTimeoutMs ?? REQUEST_TIMEOUT_MS;
  const headersTimeoutMs = Math.min(deps.timeouts?.headersTimeoutMs ?? HEADERS_TIMEOUT_MS, requestTimeoutMs);

  const app = Fastify({
    // Typed as Fastify's logger so the instance keeps the default type parameters.
    loggerInstance: logger as FastifyBaseLogger,
    // One line per request is written by the onResponse hook below, without headers or bodies.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: config.bodyLimitBytes,
    connectionTimeout: deps.timeouts?.connectionTimeoutMs ?? CONNECTION_TIMEOUT_MS,
    requestTimeout: requestTimeoutMs,
    // Passed to http.createServer, which reads the checking interval only at construction.
    http: {
      headersTimeout: headersTimeoutMs,
      requestTimeout: requestTimeoutMs,
      connectionsCheckingInterval: deps.timeouts?.checkIntervalMs ?? TIMEOUT_CHECK_INTERVAL_MS,
    },
    keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
    // Requests that arrive while closing get our 503 (below), with a `detail` like every error.
    return503OnClosing: false,
    trustProxy: config.trustProxy,
    routerOptions: { maxParamLength: MAX_PARAM_LENGTH },
    frameworkErrors: frameworkErrorHandler,
    clientErrorHandler,
    ajv: {
      // Every problem of a body at once, as FastAPI reports them; no silent coercion of a number
      // into a string; unknown fields kept (and ignored).
      customOptions: { allErrors: true, coerceTypes: false, removeAdditional: false },
      onCreate: (ajv) => {
        ajv.addFormat('uri', { type: 'string', validate: isHttpUrl });
      },
    },
  });

  app.server.on('connect', connectMethodHandler);

  // Only JSON bodies are accepted: anything else (text/plain included) is a 415.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) =>
    parseJsonBody(request, body as string, done),
  );

  registerErrorHandling(app, { bodyLimitBytes: config.bodyLimitBytes });
  let closing = false;
  app.addHook('preClose', (done) => {
    closing = true;
    done();
  });
  // A plain callback, not an async hook: it runs on every request and costs no promise there.
  app.addHook('onRequest', (_request: FastifyRequest, reply: FastifyReply, done) => {
    if (!closing) {
      done();
      return;
    }
    // A request on a kept-alive connection after close began: refused, and the connection ends.
    reply.code(503).header('connection', 'close').send({ detail: SHUTTING_DOWN });
  });
  registerAuth(app, config.apiTokens);

  app.addHook('onResponse', async (request: FastifyRequest, reply: FastifyReply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    const statusCode = reply.statusCode;
    const elapsedMs = reply.elapsedTime;
    metrics.httpRequestDuration.observe(
      { method: request.method, route, status_code: String(statusCode) },
      elapsedMs / 1000,
    );
    const line = {
      method: request.method,
      url: request.url.split('?', 1)[0],
      status: statusCode,
      ms: Math.round(elapsedMs * 10) / 10,
    };
    if (QUIET_ROUTES.has(route) && statusCode < 400) request.log.debug(line, 'request');
    else request.log.info(line, 'request');
  });

  const security = securityDoc(config.apiTokens.length > 0);
  if (deps.routes !== 'operations') await registerApiRoutes(app, deps, security);
  registerHealthRoutes(app, { store, queue, metrics, security });

  await app.ready();
  return app;
}

/** The public API: docs, the rate limit, and the webhook, callback, task and conversation routes. */
async function registerApiRoutes(
  app: FastifyInstance,
  deps: ServerDeps,
  security: SecurityDoc,
): Promise<void> {
  const { config, store, queue, metrics } = deps;
  const ssrfPolicy = createSsrfPolicy(config);
  await registerDocs(app, { version: VERSION, bearerAuth: config.apiTokens.length > 0 });

  const limit = config.rateLimit;
  if (limit !== null) {
    await app.register(rateLimit, {
      global: false,
      max: limit.max,
      timeWindow: limit.windowMs,
      enableDraftSpec: true,
      // Per client: the token's namespace when tokens are on (set by the auth hook, which runs
      // first), else the address — X-Forwarded-For only counts with TRUST_PROXY.
      keyGenerator: (request: FastifyRequest) =>
        request.namespace === '' ? `ip:${request.ip}` : `ns:${request.namespace}`,
      errorResponseBuilder: () =>
        new HttpError(429, `Rate limit exceeded: ${limit.label}`, ERROR_CODES.rateLimited),
      // A counter backend that fails must not turn every request into a 500; the store and
      // queue calls behind the route answer 503 on their own when Redis is really gone.
      skipOnError: true,
      // One key per client and route; no hash tag, so a Redis Cluster spreads them over its slots.
      nameSpace: `${config.queuePrefix.replace(/[{}]/g, '')}:rate-limit:`,
      ...(deps.rateLimitRedis === undefined ? {} : { redis: deps.rateLimitRedis }),
    });
  }
  const routeConfig = limit === null ? {} : { rateLimit: { max: limit.max, timeWindow: limit.windowMs } };

  registerWebhookRoute(app, {
    store,
    queue,
    metrics,
    ssrfPolicy,
    messageMaxChars: config.messageMaxChars,
    routeConfig,
    security,
  });
  registerCallbackRoutes(app, { routeConfig });
  registerTaskRoutes(app, { store, deliveries: deps.deliveries, security });
  registerConversationRoutes(app, { store, security });
  registerDestinationRoutes(app, { destinations: deps.destinations, security });
}
