/**
 * The 422 types are a closed list (`VALIDATION_ERROR_TYPES`): the README and the OpenAPI document
 * name exactly those, and every one of them is what some request is answered with.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { buildTestServer } from '../../test/support/http-harness.js';
import { issuesFromAjv } from './error-handler.js';
import { VALIDATION_ERROR_TYPES } from './validation-errors.js';

const URL_OK = 'https://example.com/callback';

/** A request for each type, with where the issue is reported. */
const PRODUCERS: ReadonlyArray<{ type: string; loc: Array<string | number>; payload: string }> = [
  { type: 'missing', loc: ['body', 'message'], payload: JSON.stringify({ callback_url: URL_OK }) },
  {
    type: 'string_type',
    loc: ['body', 'message'],
    payload: JSON.stringify({ message: 7, callback_url: URL_OK }),
  },
  { type: 'dict_type', loc: ['body'], payload: '[1]' },
  {
    type: 'string_too_short',
    loc: ['body', 'message'],
    payload: JSON.stringify({ message: '  ', callback_url: URL_OK }),
  },
  {
    type: 'string_too_long',
    loc: ['body', 'message'],
    payload: JSON.stringify({ message: 'x'.repeat(51), callback_url: URL_OK }),
  },
  {
    type: 'too_long',
    loc: ['body', 'metadata'],
    payload: JSON.stringify({ message: 'hi', callback_url: URL_OK, metadata: { pad: 'x'.repeat(5000) } }),
  },
  {
    type: 'url_parsing',
    loc: ['body', 'callback_url'],
    payload: JSON.stringify({ message: 'hi', callback_url: 'web/callback' }),
  },
  {
    type: 'url_scheme',
    loc: ['body', 'callback_url'],
    payload: JSON.stringify({ message: 'hi', callback_url: 'ftp://example.com/x' }),
  },
  { type: 'json_invalid', loc: ['body', 1], payload: '{,' },
  {
    type: 'callback_url_forbidden',
    loc: ['body', 'callback_url'],
    payload: JSON.stringify({ message: 'hi', callback_url: 'http://127.0.0.1/hook' }),
  },
];

function readmeTypes(): string[] {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  const table = readme.slice(readme.indexOf('| 422 `type` | when |'));
  const rows = table.slice(0, table.indexOf('\n\n')).split('\n').slice(2);
  return rows.map((row) => /^\| `([a-z_]+)` \|/.exec(row)?.[1] ?? `unparsed: ${row}`);
}

describe('422 types', () => {
  it('are listed in the README, exactly', () => {
    expect(readmeTypes()).toEqual([...VALIDATION_ERROR_TYPES]);
  });

  it('are listed in the OpenAPI document, exactly', async () => {
    const { app } = await buildTestServer({});
    const document = (await app.inject({ method: 'GET', url: '/openapi.json' })).json() as {
      paths: Record<string, { post?: { responses: Record<string, unknown> } }>;
    };
    const response = document.paths['/webhook']?.post?.responses['422'] as {
      content: {
        'application/json': {
          schema: { properties: { detail: { items: { properties: { type: unknown } } } } };
        };
      };
    };
    const typeSchema = response.content['application/json'].schema.properties.detail.items.properties.type;
    expect(typeSchema).toEqual({ type: 'string', enum: [...VALIDATION_ERROR_TYPES] });
  });

  it('are each the answer to some request, and no request gets another', async () => {
    const { app } = await buildTestServer({ MESSAGE_MAX_CHARS: '50', CALLBACK_ALLOWED_HOSTS: '' });
    const seen = new Set<string>();
    for (const producer of PRODUCERS) {
      const response = await app.inject({
        method: 'POST',
        url: '/webhook',
        headers: { 'content-type': 'application/json' },
        payload: producer.payload,
      });
      expect(response.statusCode, producer.type).toBe(422);
      const detail = (response.json() as { detail: Array<{ type: string; loc: unknown[] }> }).detail;
      expect(detail, producer.type).toContainEqual(
        expect.objectContaining({ type: producer.type, loc: producer.loc }),
      );
      for (const issue of detail) seen.add(issue.type);
    }
    // A rule with no pydantic name of its own; no schema of ours uses one today.
    const [fallback] = issuesFromAjv([{ keyword: 'enum', instancePath: '/message', params: {} }], 'body', {});
    seen.add(fallback!.type);
    expect([...seen].sort()).toEqual([...VALIDATION_ERROR_TYPES].sort());
  });
});
