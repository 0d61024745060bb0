/**
 * Starts the OpenTelemetry SDK (SPEC §11). Loaded by the composition root with a dynamic import,
 * and only when an OTLP endpoint is configured, before the service is built: with tracing off
 * none of the SDK is loaded and every span call of `@opentelemetry/api` stays a no-op.
 *
 * The SDK (`NodeSDK`) reads the standard `OTEL_*` variables itself: the endpoint, the protocol
 * (`http/protobuf` or `http/json`), headers, timeout and compression, the sampler, the batch
 * processor's delays, `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES`. Traces only: metrics
 * stay on `/metrics` (Prometheus) and logs on stdout.
 *
 * Nothing is patched and no loader hook is needed. The one instrumentation, `@fastify/otel`,
 * subscribes to Fastify's `fastify.initialization` diagnostics channel and registers itself as
 * a plugin of every Fastify instance created afterwards: one SERVER span per request (continuing
 * an inbound `traceparent`) and one for its handler, no span per hook, none for the operations
 * routes. Every other span is made by hand (`spans.ts` and its neighbours).
 */
import { FastifyOtelInstrumentation } from '@fastify/otel';
import { type DiagLogger, DiagLogLevel, diag, type Span } from '@opentelemetry/api';
import { defaultResource, resourceFromAttributes } from '@opentelemetry/resources';
import { NodeSDK } from '@opentelemetry/sdk-node';
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION, ATTR_URL_PATH } from '@opentelemetry/semantic-conventions';
import type { FastifyRequest } from 'fastify';
import type { Logger } from '../shared/logger.js';
import { VERSION } from '../shared/version.js';

export interface Tracing {
  /** Exports the spans still buffered, then stops the SDK. */
  shutdown(): Promise<void>;
}

/** Probes and scrapes: no span. */
const UNTRACED_ROUTES = new Set(['/healthz', '/readyz', '/metrics']);

/** The SDK's own diagnostics (an export that failed, a bad variable) as warning lines of ours. */
function diagnosticsTo(logger: Logger): DiagLogger {
  const warn = (message: string, ...args: unknown[]): void => {
    logger.warn({ details: args.length === 0 ? undefined : args.map(String) }, `tracing: ${message}`);
  };
  const ignore = (): void => {};
  return { error: warn, warn, info: ignore, debug: ignore, verbose: ignore };
}

/** `POST /webhook`: the HTTP semantic conventions' server span name, method and route. */
function nameRequestSpan(span: Span, request: FastifyRequest): void {
  span.updateName(`${request.method} ${request.routeOptions.url ?? request.url.split('?', 1)[0]}`);
  // The path alone: a query string never reaches an attribute.
  span.setAttribute(ATTR_URL_PATH, request.url.split('?', 1)[0] ?? '');
}

export function startTracing(logger: Logger): Tracing {
  diag.setLogger(diagnosticsTo(logger), { logLevel: DiagLogLevel.WARN, suppressOverrideMessage: true });
  const fastify = new FastifyOtelInstrumentation({
    registerOnInitialization: true,
    instrumentHooks: false,
    ignorePaths: (route) => UNTRACED_ROUTES.has(route.url),
    requestHook: nameRequestSpan,
    lifecycleHook: (span, info) => {
      if (info.hookName === 'handler') span.updateName(`handler ${info.request.routeOptions.url ?? ''}`);
    },
  });
  const sdk = new NodeSDK({
    // The defaults of SPEC §11; OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win over them.
    resource: defaultResource().merge(
      resourceFromAttributes({ [ATTR_SERVICE_NAME]: 'llm-webhook', [ATTR_SERVICE_VERSION]: VERSION }),
    ),
    instrumentations: [fastify],
    metricReaders: [],
    logRecordProcessors: [],
  });
  sdk.start();
  logger.info('tracing on: exporting spans over OTLP/HTTP');
  return { shutdown: () => sdk.shutdown() };
}
