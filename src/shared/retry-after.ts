/**
 * The `Retry-After` header of an HTTP answer (RFC 9110 §10.2.3), as LLM providers and callback
 * receivers send it.
 */

/** Longest wait a `Retry-After` header may ask for; anything beyond is treated as this. */
const MAX_RETRY_AFTER_MS = 24 * 3_600_000;

/**
 * Parses a `Retry-After` header (delay in seconds, or an HTTP-date) into milliseconds from
 * `nowMs`; `null` when absent or unreadable. A date in the past is 0.
 */
export function retryAfterToMs(header: string | null | undefined, nowMs: number = Date.now()): number | null {
  if (header === null || header === undefined) return null;
  const text = header.trim();
  if (text === '') return null;
  if (/^\d+(\.\d+)?$/.test(text)) return Math.min(Math.round(Number(text) * 1000), MAX_RETRY_AFTER_MS);
  // Only the date forms: `Date.parse` alone also accepts texts such as "1" or "soon 2025".
  if (!/^[A-Za-z]{3,9},? /.test(text)) return null;
  const at = Date.parse(text);
  if (Number.isNaN(at)) return null;
  return Math.min(Math.max(at - nowMs, 0), MAX_RETRY_AFTER_MS);
}
