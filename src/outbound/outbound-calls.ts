/**
 * The worker's outbound calls, LLM completions and callback deliveries, as one object, and the
 * settings they are made with: only what those calls need (no API tokens, no webhook secret),
 * as plain data, so the same `createOutboundCalls` runs in the worker's event loop or on the
 * outbound thread (`outbound-worker.ts`).
 */
import type { LookupFunction } from 'node:net';
import type { Config } from '../config.js';
import { type CallbackSender, createCallbackSender } from '../delivery/send-callback.js';
import { createSsrfPolicy } from '../delivery/ssrf/allow-list.js';
import { createLlmClient, type LlmClient, type LlmClientOptions } from '../llm/llm-client.js';

/** What the outbound calls are made with: plain data, so it can cross to the thread. */
export interface OutboundSettings {
  llm: LlmClientOptions;
  callbacks: {
    timeoutMs: number;
    userAgent: string;
    allowPrivate: boolean;
    allowedHosts: readonly string[];
  };
}

/** The outbound calls of a worker, wherever they run. */
export interface Outbound {
  llm: LlmClient;
  sender: CallbackSender;
  /**
   * Lets calls in flight finish for at most `timeoutMs` (default: as long as they take), then
   * cuts off the rest (they end as retryable failures) and closes the connection pools.
   */
  close(timeoutMs?: number): Promise<void>;
}

/** The part of the configuration the outbound calls need. */
export function outboundSettings(config: Readonly<Config>, userAgent: string): OutboundSettings {
  return {
    llm: { baseUrl: config.llmBaseUrl, apiKey: config.apiKey, timeoutMs: config.llmTimeoutMs },
    callbacks: {
      timeoutMs: config.callbackTimeoutMs,
      userAgent,
      allowPrivate: config.callbackAllowPrivate,
      allowedHosts: config.callbackAllowedHosts,
    },
  };
}

/** The LLM client and callback sender in the calling thread. `lookup` is a test seam (fake DNS). */
export function createOutboundCalls(settings: OutboundSettings, lookup?: LookupFunction): Outbound {
  const llm = createLlmClient(settings.llm);
  const sender = createCallbackSender({
    timeoutMs: settings.callbacks.timeoutMs,
    userAgent: settings.callbacks.userAgent,
    policy: createSsrfPolicy({
      callbackAllowPrivate: settings.callbacks.allowPrivate,
      callbackAllowedHosts: settings.callbacks.allowedHosts,
    }),
    ...(lookup === undefined ? {} : { lookup }),
  });
  return {
    llm,
    sender,
    async close(timeoutMs) {
      await sender.close(timeoutMs);
      llm.close?.();
    },
  };
}
