/**
 * Standard Webhooks signing (SPEC §5): the one file that imports `standardwebhooks`.
 */
import { Webhook } from 'standardwebhooks';

/** Signs one delivery: returns the `webhook-*` headers for `body`. */
export type Signer = (msgId: string, timestamp: Date, body: string) => Record<string, string>;

/**
 * A signer for `secret` (`whsec_` + base64), or one that adds no headers when `secret` is null.
 * The headers are `webhook-id` (the message id, equal on every retry), `webhook-timestamp` (unix
 * seconds) and `webhook-signature` (`v1,` + base64 HMAC-SHA256 over `id.timestamp.body`).
 */
export function createSigner(secret: string | null): Signer {
  if (secret === null) return () => ({});
  const webhook = new Webhook(secret);
  return (msgId, timestamp, body) => ({
    'webhook-id': msgId,
    'webhook-timestamp': String(Math.floor(timestamp.getTime() / 1000)),
    'webhook-signature': webhook.sign(msgId, timestamp, body),
  });
}
