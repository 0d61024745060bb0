import { beforeAll, describe, expect, it } from 'vitest';
import { createTestServer, type TestServer } from '../../../test/support/http-harness.js';
import { VERSION } from '../../shared/version.js';

let app: TestServer['app'];

beforeAll(async () => {
  const server = await createTestServer({ API_TOKENS: 'token-a' });
  app = server.app;
  return server.close;
});

/** Every `src`/`href` of a page (and `url(...)` in inline CSS). */
function references(html: string): string[] {
  return [...html.matchAll(/(?:src|href)\s*=\s*["']([^"']+)["']|url\(\s*["']?([^"')]+)/gi)].map(
    (match) => (match[1] ?? match[2])!,
  );
}

describe('docs', () => {
  it('serves the OpenAPI 3.1 document with every route, its schemas and examples', async () => {
    const response = await app.inject({ method: 'GET', url: '/openapi.json' });
    expect(response.statusCode).toBe(200);
    const document = response.json() as {
      openapi: string;
      info: { title: string; version: string };
      paths: Record<
        string,
        Record<string, { requestBody?: unknown; responses: Record<string, unknown>; security?: unknown }>
      >;
      components: { securitySchemes?: unknown };
    };
    expect(document.openapi).toBe('3.1.0');
    expect(document.info).toMatchObject({ title: 'llm-webhook', version: VERSION });
    expect(Object.keys(document.paths).sort()).toEqual([
      '/callback',
      '/conversations/{conversation_id}',
      '/conversations/{conversation_id}/messages',
      '/destinations',
      '/destinations/{destination}/reset',
      '/healthz',
      '/metrics',
      '/readyz',
      '/tasks/{task_id}',
      '/tasks/{task_id}/redeliver',
      '/webhook',
    ]);
    const webhook = document.paths['/webhook']!.post!;
    expect(Object.keys(webhook.responses).sort()).toEqual(
      ['200', '400', '401', '409', '413', '415', '422', '429', '503'].sort(),
    );
    expect(JSON.stringify(webhook.requestBody)).toContain('callback_url');
    expect(JSON.stringify(webhook.responses['200'])).toContain('Processing');
    expect(JSON.stringify(webhook.responses['422'])).toContain('url_parsing');
    expect(webhook.security).toEqual([{ bearerAuth: [] }]);
    expect(document.paths['/healthz']!.get!.security).toBeUndefined();
    expect(document.components.securitySchemes).toEqual({ bearerAuth: { type: 'http', scheme: 'bearer' } });
  });

  it('serves Swagger UI, ReDoc and their assets from the service itself, with no token', async () => {
    const pages = ['/docs', '/docs/', '/redoc'];
    for (const page of pages) {
      const response = await app.inject({ method: 'GET', url: page });
      expect(response.statusCode, page).toBe(200);
      expect(response.headers['content-type']).toMatch(/^text\/html/);
      const refs = references(response.body);
      expect(refs.length, page).toBeGreaterThan(0);
      for (const ref of refs) {
        expect(ref, `${page} references ${ref}`).not.toMatch(/^(https?:)?\/\//i);
        const resolved = new URL(ref, `http://service${page}`);
        const asset = await app.inject({ method: 'GET', url: resolved.pathname });
        expect(asset.statusCode, `${page} → ${resolved.pathname}`).toBe(200);
      }
    }
    const initializer = await app.inject({ method: 'GET', url: '/docs/static/swagger-initializer.js' });
    expect(initializer.statusCode).toBe(200);
    expect(initializer.body).toContain('validatorUrl: null');
    const redoc = await app.inject({ method: 'GET', url: '/redoc' });
    expect(redoc.body).toContain('spec-url="/openapi.json"');
    const bundle = await app.inject({ method: 'GET', url: '/redoc/redoc.standalone.js' });
    expect(bundle.headers['content-type']).toMatch(/javascript/);
    expect(bundle.body.length).toBeGreaterThan(100_000);
  });
});
