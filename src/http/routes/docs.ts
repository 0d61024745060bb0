/**
 * The API documentation (SPEC §3): the OpenAPI 3.1 document built from the route schemas,
 * Swagger UI at /docs and ReDoc at /redoc. Every asset is served by this service, so the pages
 * work with no internet access.
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance, FastifyReply } from 'fastify';

export interface DocsOptions {
  version: string;
  /** Documents the bearer scheme when API tokens are configured. */
  bearerAuth: boolean;
}

const REDOC_BUNDLE_PATH = createRequire(import.meta.url).resolve('redoc/bundles/redoc.standalone.js');
let redocBundle: Promise<Buffer> | null = null;

const REDOC_PAGE = `<!DOCTYPE html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <title>llm-webhook API</title>
    <style>body { margin: 0; padding: 0; }</style>
  </head>
  <body>
    <redoc spec-url="/openapi.json"></redoc>
    <script src="/redoc/redoc.standalone.js"></script>
  </body>
</html>
`;

/** Our name in the Swagger UI top bar, in place of the framework's logo. */
export const DOCS_LOGO_SVG = `<svg xmlns="http://www.w3.org/2000/svg" width="240" height="40" viewBox="0 0 240 40">
<rect x="2" y="8" width="24" height="24" rx="6" fill="#4f9d69"/>
<path d="M8 20h12M16 15l5 5-5 5" stroke="#fff" stroke-width="2.5" fill="none" stroke-linecap="round"/>
<text x="36" y="28" font-family="system-ui, sans-serif" font-size="22" font-weight="600" fill="#fff">llm-webhook</text>
</svg>`;

/** Spread into a protected route's schema: its OpenAPI `security` requirement. */
export type SecurityDoc = { security?: Array<Record<string, string[]>> };

/** The `security` of protected routes: the bearer scheme, or nothing when tokens are off. */
export function securityDoc(bearerAuth: boolean): SecurityDoc {
  return bearerAuth ? { security: [{ bearerAuth: [] }] } : {};
}

/**
 * Registers the OpenAPI generator and the docs routes. Must be awaited before any other route
 * is added: the generator collects routes as they are registered.
 */
export async function registerDocs(app: FastifyInstance, options: DocsOptions): Promise<void> {
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'llm-webhook',
        version: options.version,
        description:
          'Webhook messages in, LLM replies POSTed to callback URLs, with per-conversation memory. ' +
          'POST /webhook answers at once with a task id; the reply is delivered to `callback_url`.',
      },
      ...(options.bearerAuth
        ? { components: { securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer' } } } }
        : {}),
    },
  });
  await app.register(swaggerUi, {
    routePrefix: '/docs',
    uiConfig: { deepLinking: true, validatorUrl: null },
    logo: { type: 'image/svg+xml', content: DOCS_LOGO_SVG, href: '/docs' },
    theme: {
      title: 'llm-webhook API',
      favicon: [
        { filename: 'favicon.svg', rel: 'icon', type: 'image/svg+xml', sizes: 'any', content: DOCS_LOGO_SVG },
      ],
    },
  });

  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  app.get('/redoc', { schema: { hide: true } }, async (_request, reply: FastifyReply) =>
    reply.type('text/html; charset=utf-8').send(REDOC_PAGE),
  );

  app.get('/redoc/redoc.standalone.js', { schema: { hide: true } }, async (_request, reply: FastifyReply) => {
    redocBundle ??= readFile(REDOC_BUNDLE_PATH);
    const bundle = await redocBundle.catch((error: unknown) => {
      redocBundle = null;
      throw error;
    });
    return reply
      .type('application/javascript; charset=utf-8')
      .header('cache-control', 'public, max-age=86400')
      .send(bundle);
  });
}
