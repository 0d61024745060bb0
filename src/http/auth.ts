/**
 * Bearer-token authentication (SPEC §6) and the client namespace derived from the token. The
 * namespace keeps one token's tasks, conversations and idempotency keys out of another's reach;
 * it is a digest of the token, so the token itself is never stored or logged.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

declare module 'fastify' {
  interface FastifyRequest {
    /** The client namespace: '' when tokens are off (or on an open route without a valid token). */
    namespace: string;
  }
}

/**
 * Routes reachable without a token: probes, the docs, the demo callback receiver and the
 * console's page and files (which hold no data: the page asks for a token and sends it to the API).
 */
const OPEN_ROUTES = new Set(['/healthz', '/readyz', '/openapi.json', '/callback']);
const OPEN_PREFIXES = ['/docs', '/redoc', '/console'];

function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

/** The namespace of a client: '' without a token, else a short sha256 hex of the token. */
export function namespaceOf(token: string | null): string {
  return token === null ? '' : sha256(token).toString('hex').slice(0, 16);
}

/** Whether a route pattern (`routeOptions.url`) needs a token when tokens are on. */
export function isOpenRoute(routeUrl: string | undefined): boolean {
  if (routeUrl === undefined) return false;
  return OPEN_ROUTES.has(routeUrl) || OPEN_PREFIXES.some((prefix) => routeUrl.startsWith(prefix));
}

export interface Authenticator {
  /** `true` when at least one token is configured. */
  readonly enabled: boolean;
  /** The namespace of a valid `Authorization: Bearer <token>` header, or `null`. */
  authenticate(authorization: string | undefined): string | null;
}

export function createAuthenticator(tokens: readonly string[]): Authenticator {
  const digests = tokens.map((token) => ({ digest: sha256(token), namespace: namespaceOf(token) }));
  return {
    enabled: digests.length > 0,
    authenticate(authorization) {
      const match = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(authorization ?? '');
      if (!match) return null;
      // Both sides are hashed to the same length before a constant-time comparison, and every
      // configured token is compared, so the time taken says nothing about which bytes (or
      // which token) matched.
      const presented = sha256(match[1]!);
      let namespace: string | null = null;
      for (const entry of digests) {
        if (timingSafeEqual(presented, entry.digest)) namespace = entry.namespace;
      }
      return namespace;
    },
  };
}

/**
 * Decorates every request with `namespace` and, when tokens are configured, answers 401 on
 * every route but the open ones. Register before the routes so this runs before their hooks
 * (the rate limit keys on the namespace).
 */
export function registerAuth(app: FastifyInstance, tokens: readonly string[]): void {
  const authenticator = createAuthenticator(tokens);
  app.decorateRequest('namespace', '');
  if (!authenticator.enabled) return;
  app.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
    const namespace = authenticator.authenticate(request.headers.authorization);
    if (namespace !== null) {
      request.namespace = namespace;
      return;
    }
    if (isOpenRoute(request.routeOptions.url)) return;
    const detail = request.headers.authorization === undefined ? 'Not authenticated' : 'Invalid token';
    return reply.code(401).header('www-authenticate', 'Bearer').send({ detail });
  });
}
