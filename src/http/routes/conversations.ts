/**
 * GET /conversations/:conversation_id/messages and DELETE /conversations/:conversation_id
 * (SPEC §3). The id arrives URL-encoded — often a whole callback URL, `/` as `%2F` — and is
 * decoded by the router. History is namespaced: a token sees only its own conversations.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { conversationKey, type Store } from '../../store/store.js';
import { withBackendDeadline } from '../backend-deadline.js';
import { unauthorizedResponse, unavailableResponse } from '../error-responses.js';
import {
  type ConversationIdParams,
  conversationIdParamsSchema,
  conversationMessagesSchema,
} from '../schemas.js';
import type { SecurityDoc } from './docs.js';

export interface ConversationRouteOptions {
  store: Store;
  /** The OpenAPI `security` of protected routes (nothing when tokens are off). */
  security: SecurityDoc;
}

/** More than any history holds (HISTORY_MAX_MESSAGES bounds what a prompt uses, not what is listed). */
export const HISTORY_LIST_LIMIT = 10_000;

type ConversationParams = { Params: ConversationIdParams };

export function registerConversationRoutes(app: FastifyInstance, options: ConversationRouteOptions): void {
  const { store } = options;

  app.get<ConversationParams>(
    '/conversations/:conversation_id/messages',
    {
      schema: {
        summary: "A conversation's stored history, oldest first",
        tags: ['conversations'],
        ...options.security,
        params: conversationIdParamsSchema,
        response: {
          200: { description: 'The history (empty when unknown).', ...conversationMessagesSchema },
          401: unauthorizedResponse,
          503: unavailableResponse,
        },
      },
    },
    async (request: FastifyRequest<ConversationParams>) => {
      const conversationId = request.params.conversation_id;
      const messages = await withBackendDeadline(
        store.getHistory(conversationKey(request.namespace, conversationId), HISTORY_LIST_LIMIT),
      );
      return {
        conversation_id: conversationId,
        messages: messages.map((message) => ({
          role: message.role,
          content: message.content,
          at: message.at,
        })),
      };
    },
  );

  app.delete<ConversationParams>(
    '/conversations/:conversation_id',
    {
      schema: {
        summary: "Erase a conversation's history",
        tags: ['conversations'],
        ...options.security,
        params: conversationIdParamsSchema,
        response: {
          204: { description: 'Erased (or there was nothing to erase).', type: 'null' },
          401: unauthorizedResponse,
          503: unavailableResponse,
        },
      },
    },
    async (request: FastifyRequest<ConversationParams>, reply: FastifyReply) => {
      const conversationId = request.params.conversation_id;
      const erased = await withBackendDeadline(
        store.deleteHistory(conversationKey(request.namespace, conversationId)),
      );
      request.log.info({ erased }, 'conversation erased');
      return reply.code(204).send();
    },
  );
}
