/**
 * The 422 types are a closed list (`VALIDATION_ERROR_TYPES`): the README and the OpenAPI document
 * name exactly those, and every one of them is what some request is answered with.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { buildTestServer } from '../../test/support/http-harness.js';
import { issuesFromAjv, VALIDATION_ERROR_TYPES } from './validation-errors.js';

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
    type: 'literal_error',
    loc: ['body', 'options', 'model'],
    payload: JSON.stringify({ message: 'hi', callback_url: URL_OK, options: { model: 'not/allowed' } }),
  },
  {
    type: 'greater_than_equal',
    loc: ['body', 'options', 'max_tokens'],
    payload: JSON.stringify({ message: 'hi', callback_url: URL_OK, options: { max_tokens: 0 } }),
  },
  {
    type: 'less_than_equal',
    loc: ['body', 'options', 'temperature'],
    payload: JSON.stringify({ message: 'hi', callback_url: URL_OK, options: { temperature: 2.5 } }),
  },
  {
    type: 'int_type',
    loc: ['body', 'options', 'max_tokens'],
    payload: JSON.stringify({ message: 'hi', callback_url: URL_OK, options: { max_tokens: 1.5 } }),
  },
  {
    type: 'float_type',
    loc: ['body', 'options', 'temperature'],
    payload: JSON.stringify({ message: 'hi', callback_url: URL_OK, options: { temperature: 'warm' } }),
  },
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

describe('issuesFromAjv', () => {
  it('keeps one issue per field, the one pydantic would report, in field order', () => {
    const data = { message: '', callback_url: 'x'.repeat(3000) };
    const issues = issuesFromAjv(
      [
        { keyword: 'maxLength', instancePath: '/callback_url', params: { limit: 2048 } },
        { keyword: 'format', instancePath: '/callback_url', params: { format: 'uri' } },
        { keyword: 'pattern', instancePath: '/message', params: { pattern: '\\S' } },
        { keyword: 'minLength', instancePath: '/message', params: { limit: 1 } },
      ],
      'body',
      data,
      ['message', 'callback_url'],
    );
    expect(issues.map((issue) => [issue.type, issue.loc])).toEqual([
      ['string_too_short', ['body', 'message']],
      ['string_too_long', ['body', 'callback_url']],
    ]);
  });

  it('locates path parameters and nested fields', () => {
    const issues = issuesFromAjv(
      [{ keyword: 'type', instancePath: '/a~1b/0', params: { type: 'string' } }],
      'params',
      { 'a/b': [3] },
    );
    expect(issues).toEqual([
      { type: 'string_type', loc: ['path', 'a/b', 0], msg: 'Input should be a valid string', input: 3 },
    ]);
  });
});
