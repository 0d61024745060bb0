import { randomBytes } from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import { describe, expect, it } from 'vitest';
import { createSigner } from './sign.js';

const secret = `whsec_${randomBytes(24).toString('base64')}`;

describe('createSigner', () => {
  it('gives an unsigned delivery its id and timestamp, and no signature', () => {
    const now = new Date();
    expect(createSigner(null)('msg_1', now, '{}')).toEqual({
      'webhook-id': 'msg_1',
      'webhook-timestamp': String(Math.floor(now.getTime() / 1000)),
    });
  });

  it('produces headers that the Standard Webhooks library verifies', () => {
    const body = JSON.stringify({ task_id: 't-1', generated_response: 'héllo' });
    const now = new Date();
    const headers = createSigner(secret)('t-1', now, body);
    expect(headers['webhook-id']).toBe('t-1');
    expect(headers['webhook-timestamp']).toBe(String(Math.floor(now.getTime() / 1000)));
    expect(headers['webhook-signature']).toMatch(/^v1,[A-Za-z0-9+/]+=*$/);
    expect(new Webhook(secret).verify(body, headers)).toEqual(JSON.parse(body));
  });

  it('fails verification for a changed body, another secret or another id', () => {
    const body = '{"a":1}';
    const headers = createSigner(secret)('t-2', new Date(), body);
    const webhook = new Webhook(secret);
    expect(() => webhook.verify('{"a":2}', headers)).toThrow();
    expect(() => webhook.verify(body, { ...headers, 'webhook-id': 't-3' })).toThrow();
    const other = new Webhook(`whsec_${randomBytes(24).toString('base64')}`);
    expect(() => other.verify(body, headers)).toThrow();
  });
});
