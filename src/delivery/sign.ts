/**
 * Standard Webhooks headers (SPEC §5): the one file that imports `standardwebhooks`.
 */
import { Webhook } from 'standardwebhooks';

/** The `webhook-*` headers of one delivery of `body`. */
export type Signer = (msgId: string, timestamp: Date, body: string) => Record<string, string>;

/**
 * The headers of every delivery: `webhook-id` (the message id, equal on every retry, so a
 * receiver can drop duplicates whether or not it verifies signatures) and `webhook-timestamp`
 * (unix seconds of the attempt). With a `secret` (`whsec_` + base64) also `webhook-signature`
 * (`v1,` + base64 HMAC-SHA256 over `id.timestamp.body`); with `null`, deliveries are unsigned.
 */
export function createSigner(secret: string | null): Signer {
  const webhook = secret === null ? null : new Webhook(secret);
  return (msgId, timestamp, body) => {
    const headers: Record<string, string> = {
      'webhook-id': msgId,
      'webhook-timestamp': String(Math.floor(timestamp.getTime() / 1000)),
    };
    if (webhook !== null) headers['webhook-signature'] = webhook.sign(msgId, timestamp, body);
    return headers;
  };
}
