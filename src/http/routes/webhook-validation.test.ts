/** POST /webhook refusing bad bodies with a 422 in FastAPI's shape. */
import { describe, expect, it } from 'vitest';
import { postWebhook, setup, VALID } from './webhook.test-support.js';

describe('POST /webhook: 422 in FastAPI shape', () => {
  it('missing fields: input is the object they are missing from', async () => {
    const { app } = await setup();
    const response = await postWebhook(app, { message: 'hi' });
    expect(response.statusCode).toBe(422);
    expect(response.json()).toEqual({
      detail: [
        { type: 'missing', loc: ['body', 'callback_url'], msg: 'Field required', input: { message: 'hi' } },
      ],
      body: { message: 'hi' },
    });
  });

  it('string_type for a non-string message and conversation_id', async () => {
    const { app } = await setup();
    const payload = { message: 5, callback_url: VALID.callback_url, conversation_id: ['x'] };
    expect((await postWebhook(app, payload)).json()).toEqual({
      detail: [
        { type: 'string_type', loc: ['body', 'message'], msg: 'Input should be a valid string', input: 5 },
        {
          type: 'string_type',
          loc: ['body', 'conversation_id'],
          msg: 'Input should be a valid string',
          input: ['x'],
        },
      ],
      body: payload,
    });
  });

  it('string_too_short for an empty or whitespace-only message and an empty conversation_id', async () => {
    const { app } = await setup();
    for (const message of ['', ' \n\t ']) {
      const payload = { ...VALID, message, conversation_id: '' };
      expect((await postWebhook(app, payload)).json()).toEqual({
        detail: [
          {
            type: 'string_too_short',
            loc: ['body', 'message'],
            msg: 'String should have at least 1 character',
            input: message,
            ctx: { min_length: 1 },
          },
          {
            type: 'string_too_short',
            loc: ['body', 'conversation_id'],
            msg: 'String should have at least 1 character',
            input: '',
            ctx: { min_length: 1 },
          },
        ],
        body: payload,
      });
    }
  });

  it('string_too_long for message, conversation_id and callback_url', async () => {
    const { app } = await setup();
    const longUrl = `https://example.com/${'a'.repeat(2048)}`;
    const payload = { message: 'x'.repeat(51), callback_url: longUrl, conversation_id: 'c'.repeat(257) };
    const response = await postWebhook(app, payload);
    expect(response.statusCode).toBe(422);
    expect(response.json()).toEqual({
      detail: [
        {
          type: 'string_too_long',
          loc: ['body', 'message'],
          msg: 'String should have at most 50 characters',
          input: payload.message,
          ctx: { max_length: 50 },
        },
        {
          type: 'string_too_long',
          loc: ['body', 'callback_url'],
          msg: 'String should have at most 2048 characters',
          input: longUrl,
          ctx: { max_length: 2048 },
        },
        {
          type: 'string_too_long',
          loc: ['body', 'conversation_id'],
          msg: 'String should have at most 256 characters',
          input: payload.conversation_id,
          ctx: { max_length: 256 },
        },
      ],
      body: payload,
    });
  });

  it('url_parsing, as in the original README', async () => {
    const { app } = await setup();
    const payload = { message: 'text', callback_url: 'hйцуttp://web:8000/callback' };
    expect((await postWebhook(app, payload)).json()).toEqual({
      detail: [
        {
          type: 'url_parsing',
          loc: ['body', 'callback_url'],
          msg: 'Input should be a valid URL, relative URL without a base',
          input: 'hйцуttp://web:8000/callback',
          ctx: { error: 'relative URL without a base' },
        },
      ],
      body: payload,
    });
  });

  it('url_scheme for a URL that is not http or https', async () => {
    const { app } = await setup();
    const payload = { message: 'text', callback_url: 'ftp://example.com/callback' };
    expect((await postWebhook(app, payload)).json()).toEqual({
      detail: [
        {
          type: 'url_scheme',
          loc: ['body', 'callback_url'],
          msg: "URL scheme should be 'http' or 'https'",
          input: 'ftp://example.com/callback',
          ctx: { expected_schemes: "'http' or 'https'" },
        },
      ],
      body: payload,
    });
  });

  it('dict_type for a body that is JSON but not an object, and for non-object metadata', async () => {
    const { app } = await setup();
    for (const payload of [[VALID], 'text', 42]) {
      const response = await app.inject({
        method: 'POST',
        url: '/webhook',
        headers: { 'content-type': 'application/json' },
        payload: JSON.stringify(payload),
      });
      expect(response.statusCode).toBe(422);
      expect(response.json()).toEqual({
        detail: [
          { type: 'dict_type', loc: ['body'], msg: 'Input should be a valid dictionary', input: payload },
        ],
        body: payload,
      });
    }
    const payload = { ...VALID, metadata: 'x' };
    expect((await postWebhook(app, payload)).json()).toEqual({
      detail: [
        {
          type: 'dict_type',
          loc: ['body', 'metadata'],
          msg: 'Input should be a valid dictionary',
          input: 'x',
        },
      ],
      body: payload,
    });
  });

  it('json_invalid for malformed JSON and for prototype-poisoning keys, with body null', async () => {
    const { app, queue } = await setup();
    for (const text of [
      '{"message": "hi",',
      '{"__proto__": {"polluted": true}, "message": "x"}',
      '{"constructor": {"prototype": {"polluted": true}}}',
    ]) {
      const response = await app.inject({
        method: 'POST',
        url: '/webhook',
        headers: { 'content-type': 'application/json' },
        payload: text,
      });
      expect(response.statusCode).toBe(422);
      const body = response.json() as { detail: Array<Record<string, unknown>>; body: unknown };
      expect(body.body).toBeNull();
      expect(body.detail).toHaveLength(1);
      expect(body.detail[0]).toMatchObject({ type: 'json_invalid', msg: 'JSON decode error', input: {} });
      expect(body.detail[0]!.loc).toEqual(expect.arrayContaining(['body']));
      expect((body.detail[0]!.ctx as { error: string }).error).toEqual(expect.any(String));
    }
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect((await queue.counts()).waiting).toBe(0);
  });

  it('json_invalid for nesting deeper than 64 levels, counting brackets in strings as text', async () => {
    const { app } = await setup();
    const post = (metadataDepth: number, text = 'x') =>
      app.inject({
        method: 'POST',
        url: '/webhook',
        headers: { 'content-type': 'application/json' },
        // The body object is one level, metadata the next: `metadataDepth` levels in metadata.
        payload: `{"message":${JSON.stringify(text)},"callback_url":"https://example.com/hook","metadata":${'{"a":'.repeat(metadataDepth - 1)}{}${'}'.repeat(metadataDepth - 1)}}`,
      });
    expect((await post(63)).statusCode).toBe(200);
    expect((await post(63, '[[[[{{{{ \\" {[')).statusCode).toBe(200);
    const deep = await post(64);
    expect(deep.statusCode).toBe(422);
    expect(deep.json()).toMatchObject({
      detail: [{ type: 'json_invalid', ctx: { error: 'JSON nested deeper than 64 levels' } }],
      body: null,
    });
  });

  it('missing at ["body"] for an empty body', async () => {
    const { app } = await setup();
    for (const headers of [{ 'content-type': 'application/json' }, {}]) {
      const response = await app.inject({ method: 'POST', url: '/webhook', headers, payload: '' });
      expect(response.statusCode).toBe(422);
      expect(response.json()).toEqual({
        detail: [{ type: 'missing', loc: ['body'], msg: 'Field required', input: null }],
        body: null,
      });
    }
  });

  it('callback_url_forbidden for literal private addresses and localhost', async () => {
    const { app } = await setup();
    for (const url of [
      'http://127.0.0.1:8000/cb',
      'http://10.1.2.3/cb',
      'http://169.254.169.254/latest/meta-data',
      'http://[::1]/cb',
      'http://[::ffff:192.168.0.1]/cb',
      'http://localhost:8000/cb',
    ]) {
      const payload = { message: 'text', callback_url: url };
      const response = await postWebhook(app, payload);
      expect(response.statusCode, url).toBe(422);
      const body = response.json() as { detail: Array<Record<string, unknown>>; body: unknown };
      expect(body.body).toEqual(payload);
      expect(body.detail).toEqual([
        {
          type: 'callback_url_forbidden',
          loc: ['body', 'callback_url'],
          msg: expect.stringMatching(/^Callback URL is not allowed: /),
          input: url,
          ctx: { reason: expect.any(String) },
        },
      ]);
    }
  });

  it('lets an allow-listed address through', async () => {
    const { app } = await setup({ CALLBACK_ALLOWED_HOSTS: '127.0.0.1' });
    expect((await postWebhook(app, { message: 'x', callback_url: 'http://127.0.0.1:9/cb' })).statusCode).toBe(
      200,
    );
  });

  it('refuses metadata over 4 KiB as JSON', async () => {
    const { app } = await setup();
    expect((await postWebhook(app, { ...VALID, metadata: { text: 'x'.repeat(4000) } })).statusCode).toBe(200);
    const payload = { ...VALID, metadata: { text: 'x'.repeat(4096) } };
    const response = await postWebhook(app, payload);
    expect(response.statusCode).toBe(422);
    expect(response.json()).toMatchObject({
      detail: [{ type: 'too_long', loc: ['body', 'metadata'], ctx: { max_length: 4096 } }],
      body: payload,
    });
  });

  it('reports every problem at once, in field order', async () => {
    const { app } = await setup();
    const response = await postWebhook(app, { metadata: [], conversation_id: 3 });
    expect(
      (response.json() as { detail: Array<{ type: string; loc: unknown[] }> }).detail.map((d) => [
        d.type,
        d.loc,
      ]),
    ).toEqual([
      ['missing', ['body', 'message']],
      ['missing', ['body', 'callback_url']],
      ['string_type', ['body', 'conversation_id']],
      ['dict_type', ['body', 'metadata']],
    ]);
  });
});
