/**
 * GET /console and its files (SPEC §12): the operator console, served by the service itself.
 * The page runs under `Content-Security-Policy: default-src 'self'` (no inline script or style,
 * nothing from another origin); it reads the public JSON API with the operator's token, so the
 * page and its files need none themselves.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { type ConsoleAsset, loadConsoleAssets } from '../console-assets.js';

export const CONSOLE_CSP = "default-src 'self'";

function send(request: FastifyRequest, reply: FastifyReply, file: ConsoleAsset, cacheControl: string) {
  const acceptsGzip = /\bgzip\b/.test(String(request.headers['accept-encoding'] ?? ''));
  reply
    .type(file.contentType)
    .header('cache-control', cacheControl)
    .header('vary', 'accept-encoding')
    .header('x-content-type-options', 'nosniff')
    .header('content-security-policy', CONSOLE_CSP)
    .header('referrer-policy', 'no-referrer');
  if (acceptsGzip) return reply.header('content-encoding', 'gzip').send(file.gzipped);
  return reply.send(file.body);
}

export async function registerConsoleRoutes(app: FastifyInstance): Promise<void> {
  const assets = await loadConsoleAssets();
  const page = assets.get('index.html')!;

  app.get('/console', { schema: { hide: true } }, async (request, reply) =>
    send(request, reply, page, 'no-cache'),
  );
  app.get('/console/', { schema: { hide: true } }, async (_request, reply) =>
    reply.redirect('/console', 301),
  );

  app.get<{ Params: { file: string } }>(
    '/console/:file',
    { schema: { hide: true } },
    async (request: FastifyRequest<{ Params: { file: string } }>, reply: FastifyReply) => {
      const file = request.params.file === 'index.html' ? undefined : assets.get(request.params.file);
      if (file === undefined) return reply.code(404).send({ detail: 'Not Found' });
      return send(request, reply, file, 'no-cache');
    },
  );
}
