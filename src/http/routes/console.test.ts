import { describe, expect, it } from 'vitest';
import { buildTestServer } from '../../../test/support/http-harness.js';

describe('GET /console', () => {
  it('serves the page and its files from the service, under default-src self, with no token', async () => {
    const { app } = await buildTestServer({ API_TOKENS: 'console-token-0123456789' });
    const page = await app.inject({ method: 'GET', url: '/console' });
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toMatch(/^text\/html/);
    expect(page.headers['content-security-policy']).toBe("default-src 'self'");
    // No inline script or style: every script and stylesheet is a same-origin file.
    expect(page.body).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
    expect(page.body).not.toMatch(/<style|style=/);
    const refs = [...page.body.matchAll(/(?:src|href)="([^"]+)"/g)].map((match) => match[1]!);
    expect(refs.sort()).toEqual(['/console/app.css', '/console/app.js', '/console/favicon.svg']);
    for (const ref of refs) {
      const file = await app.inject({ method: 'GET', url: ref });
      expect(file.statusCode, ref).toBe(200);
      expect(file.body).not.toMatch(/https?:\/\/(?!www\.w3\.org)/);
    }
    const script = await app.inject({
      method: 'GET',
      url: '/console/app.js',
      headers: { 'accept-encoding': 'gzip' },
    });
    expect(script.headers['content-encoding']).toBe('gzip');
    expect(script.headers['content-type']).toMatch(/javascript/);
    expect((await app.inject({ method: 'GET', url: '/console/nope.js' })).statusCode).toBe(404);
    // The data behind it still needs the token.
    expect((await app.inject({ method: 'GET', url: '/tasks' })).statusCode).toBe(401);
  });
});
