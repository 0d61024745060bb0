/**
 * Picks where the worker's outbound calls run (`OUTBOUND_THREAD`): on a thread of their own
 * (`outbound-client.ts`) or in the worker's event loop. The composition root calls this alone.
 */
import type { LookupFunction } from 'node:net';
import type { Logger } from '../shared/logger.js';
import { createOutboundCalls, type Outbound, type OutboundSettings } from './outbound-calls.js';
import { createOutboundClient } from './outbound-client.js';

export interface CreateOutboundOptions {
  settings: OutboundSettings;
  /** Run the calls on a thread of their own. */
  thread: boolean;
  logger: Logger;
  /** The resolver behind the callback SSRF guard; a test seam, which keeps the calls in-process. */
  lookup?: LookupFunction;
}

export function createOutbound(options: CreateOutboundOptions): Outbound {
  // The thread cannot use a resolver passed in by a test: that one lives in this thread.
  if (options.thread && options.lookup === undefined) {
    return createOutboundClient({ settings: options.settings, logger: options.logger });
  }
  return createOutboundCalls(options.settings, options.lookup);
}
