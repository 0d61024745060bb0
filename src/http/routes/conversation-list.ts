/** GET /conversations: the client's conversations, most recently active first (SPEC §12). */
import type { FastifyInstance } from 'fastify';
import type { Store } from '../../store/store.js';
import { withBackendDeadline } from '../backend-deadline.js';
import {
  errorResponse,
  unauthorizedResponse,
  unavailableResponse,
  validationErrorSchema,
} from '../error-responses.js';
import { checkCursor, parseLimit } from '../list-params.js';
import {
  type ConversationListQuery,
  conversationListQuerySchema,
  conversationListSchema,
} from '../list-schemas.js';
import type { SecurityDoc } from './docs.js';

export function registerConversationListRoute(
  app: FastifyInstance,
  options: { store: Store; security: SecurityDoc },
): void {
  app.get<{ Querystring: ConversationListQuery }>(
    '/conversations',
    {
      schema: {
        summary: "The client's conversations with stored history, most recently active first",
        tags: ['conversations'],
        ...options.security,
        querystring: conversationListQuerySchema,
        response: {
          200: { description: 'One page of conversations.', ...conversationListSchema },
          400: errorResponse('A cursor this listing did not write.', 'Invalid cursor'),
          401: unauthorizedResponse,
          422: { description: 'A query parameter out of its range.', ...validationErrorSchema },
          503: unavailableResponse,
        },
      },
    },
    async (request) => {
      const page = await withBackendDeadline(
        options.store.listConversations(
          request.namespace,
          parseLimit(request.query.limit),
          checkCursor('conversations', request.query.cursor),
        ),
      );
      return {
        conversations: page.conversations.map((conversation) => ({
          conversation_id: conversation.conversationId,
          messages: conversation.messages,
          last_activity_at: conversation.lastActivityAt,
        })),
        next_cursor: page.nextCursor,
      };
    },
  );
}
