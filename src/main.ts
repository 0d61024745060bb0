#!/usr/bin/env node
/**
 * Composition root: reads the configuration, builds the app for the role given as the first
 * argument (`all` | `api` | `worker`, default `all`), and owns the process: signals and exit codes.
 */
import { setFlagsFromString } from 'node:v8';
import { loadConfig, type Role } from './config.js';
import { ConfigError } from './shared/errors.js';
import { createLogger } from './shared/logger.js';
import { nodeVersionProblem } from './shared/node-version.js';

// An older Node gets one line naming the version it needs, not an error from deep inside a
// dependency: the app (and what it imports) is loaded only after this check.
const nodeProblem = nodeVersionProblem(process.versions.node);
if (nodeProblem !== null) {
  process.stderr.write(`${nodeProblem}\n`);
  process.exit(1);
}

// V8 lets a heap grow to several times what survived the last full collection before it collects
// again; most of what thousands of calls in flight allocate is short-lived, so that headroom is
// garbage held as resident memory. A growth of 1.5x cut the peak RSS at 2,000 calls in flight by
// a fifth at no measurable cost in throughput (BENCHMARKS.md). Set before the threads start, so
// their heaps follow it too; V8 reads it at every collection.
setFlagsFromString('--heap-growing-percent=50');

const ROLES: readonly Role[] = ['all', 'api', 'worker'];
/** Longest wait at exit for the last spans to reach the collector. */
const TRACE_FLUSH_TIMEOUT_MS = 2_000;

async function main(): Promise<void> {
  const roleArg = process.argv[2] ?? 'all';
  if (!ROLES.includes(roleArg as Role)) {
    process.stderr.write(`Unknown role "${roleArg}": expected one of ${ROLES.join(', ')}\n`);
    process.exit(2);
  }
  const role = roleArg as Role;

  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig();
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    process.stderr.write(`${error.message}\n`);
    process.exit(1);
  }

  const logger = createLogger(config.logLevel, undefined, { traceIds: config.tracing });
  // Before the service is built, so its Fastify instance is instrumented; never loaded when off.
  const tracing = config.tracing ? (await import('./tracing/start-tracing.js')).startTracing(logger) : null;
  if (config.apiTokens.length === 0 && role !== 'worker') {
    logger.warn('API_TOKENS is empty: the API is open to anyone who can reach it');
  }
  if (config.apiKey === null && role !== 'api') {
    logger.warn('API_KEY is not set: every task will fail until it is');
  }

  const { createService } = await import('./service.js');
  const app = await createService(config, logger, role);
  /** Sends the spans still buffered; a collector that is down holds the exit up 2 s at most. */
  const flushTraces = async (): Promise<void> => {
    if (tracing === null) return;
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, TRACE_FLUSH_TIMEOUT_MS);
    });
    const flushed = tracing
      .shutdown()
      .catch((error: unknown) => logger.warn({ err: error }, 'tracing: flush failed'));
    await Promise.race([flushed, bound]);
    clearTimeout(timer);
  };

  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal, timeout_ms: config.shutdownTimeoutMs }, 'shutting down');
    app.close().then(
      async () => {
        await flushTraces();
        logger.info('stopped');
        process.exit(0);
      },
      (error: unknown) => {
        logger.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);

  await app.start();
}

main().catch((error: unknown) => {
  // A configuration problem found after loading (a role the settings cannot run) is one line
  // too, like those found by `loadConfig`; anything else is a bug, reported with its stack.
  const text =
    error instanceof ConfigError
      ? error.message
      : error instanceof Error
        ? (error.stack ?? error.message)
        : String(error);
  process.stderr.write(`${text}\n`);
  process.exit(1);
});
