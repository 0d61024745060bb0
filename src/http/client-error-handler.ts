/**
 * The answers Node writes straight to the socket, for requests Fastify never routes: HTTP it
 * could not parse, headers too large, a request too slow to arrive (`clientErrorHandler`), and
 * the CONNECT method (`connectMethodHandler`). Same `detail` body as every other error.
 */
import { type IncomingMessage, STATUS_CODES } from 'node:http';
import { Socket } from 'node:net';
import type { Duplex } from 'node:stream';

/**
 * Fastify's `clientErrorHandler`: HTTP the server could not parse, headers too large, or a request
 * that did not arrive within `requestTimeout` (a slow body). Same `detail` body as every error.
 */
export function clientErrorHandler(error: NodeJS.ErrnoException, socket: Duplex): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  const statusCode =
    error.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : error.code === 'HPE_HEADER_OVERFLOW' ? 431 : 400;
  const reason = STATUS_CODES[statusCode] ?? 'Bad Request';
  const body = JSON.stringify({ detail: reason });
  // Node's own rule: answer only when no response has started on this socket. A request whose
  // body turns out malformed after the route already answered (a 401 before the body was read)
  // must not get a second answer appended to the first.
  const inFlight = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } | null })._httpMessage;
  if (socket.writable && inFlight?.headersSent !== true) {
    socket.write(
      `HTTP/1.1 ${statusCode} ${reason}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
        `Content-Type: application/json; charset=utf-8\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy(error);
}

/** How long a refused CONNECT client may keep its half of the socket open. */
const CONNECT_LINGER_MS = 5000;

/**
 * The HTTP server's `connect` event: Node hands a CONNECT request's socket over to this listener
 * (without one, it drops the connection unanswered). No route takes CONNECT, so it is answered
 * 405 with a `detail` like every other error; the rest of what the client sends is discarded.
 */
export function connectMethodHandler(_request: IncomingMessage, socket: Duplex): void {
  const body = JSON.stringify({ detail: 'Method Not Allowed' });
  socket.on('error', () => undefined);
  if (socket instanceof Socket) socket.setTimeout(CONNECT_LINGER_MS, () => socket.destroy());
  socket.resume();
  socket.end(
    `HTTP/1.1 405 Method Not Allowed\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
      `Content-Type: application/json; charset=utf-8\r\nConnection: close\r\n\r\n${body}`,
  );
}
