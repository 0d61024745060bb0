/**
 * Scenario 1, ingest: `POST /webhook` at a fixed number of connections for a fixed time, with
 * autocannon in a worker thread of its own (so the receiver on the main thread does not slow the
 * load generator, nor the other way round). Every request is a valid body with its own
 * conversation id and a callback URL on the receiver.
 */
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';

/** autocannon's `[<id>]` replacement miscounts Content-Length, so ids are set per request here. */
const SETUP_REQUEST = fileURLToPath(new URL('./ingest-request.cjs', import.meta.url));

export interface IngestFigures extends Record<string, number> {
  acceptedPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  non2xx: number;
  errors: number;
}

export interface IngestOptions {
  /** Base URL of the target (service API or baseline). */
  baseUrl: string;
  callbackUrl: string;
  connections: number;
  seconds: number;
}

export async function runIngest(options: IngestOptions): Promise<IngestFigures> {
  // Read by ingest-request.cjs in the worker thread, which inherits the environment.
  process.env.INGEST_BODY_TEMPLATE = JSON.stringify({
    message: 'Hello from the benchmark %ID%',
    callback_url: options.callbackUrl,
    conversation_id: 'ingest-%ID%',
    metadata: { bench: true },
  });
  const result = await autocannon({
    url: `${options.baseUrl}/webhook`,
    method: 'POST',
    connections: options.connections,
    duration: options.seconds,
    headers: { 'content-type': 'application/json' },
    requests: [{ setupRequest: SETUP_REQUEST }],
    workers: 1,
    timeout: 10,
  });
  return {
    acceptedPerSecond: result['2xx'] / result.duration,
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    non2xx: result.non2xx,
    errors: result.errors,
  };
}
