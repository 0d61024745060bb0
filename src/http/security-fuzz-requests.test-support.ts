/** The fuzz run's requests: junk methods, paths, headers and framing, as raw HTTP/1.1 bytes. */
import { pickBody, type Random } from './security-fuzz-bodies.test-support.js';

export const TOKEN = 'fuzz-token-0123456789';

export interface FuzzRequest {
  kind: string;
  method: string;
  path: string;
  headers: Array<[string, string]>;
  body: Buffer | null;
  /** Content-Length: the body's (default), omitted, or a wrong number. */
  contentLength?: 'none' | 'short' | 'long';
}

const UUID = '3b241101-e2bb-4255-8caf-4136c566a962';
const STANDARD_METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD', 'TRACE'];
const JUNK_METHODS = [
  'FOO',
  'get',
  'P0ST',
  'CONNECT',
  'PROPFIND',
  'M-SEARCH',
  'G\tET',
  '',
  'X'.repeat(300),
  'PÖST',
];

const KNOWN_PATHS = [
  '/webhook',
  '/callback',
  '/healthz',
  '/readyz',
  '/metrics',
  '/docs',
  '/docs/',
  '/docs/static/index.html',
  '/docs/json',
  '/redoc',
  '/redoc/redoc.standalone.js',
  '/openapi.json',
  `/tasks/${UUID}`,
  `/tasks/${UUID}/redeliver`,
  '/tasks/not-a-uuid',
  '/conversations/customer-42/messages',
  '/conversations/customer-42',
  `/conversations/${encodeURIComponent('https://example.com/callback')}/messages`,
  '/',
];

const JUNK_PATHS = [
  '/%',
  '/%zz',
  '/%00',
  '/webhook%00',
  '/tasks/%00',
  '/tasks/%ff%fe/redeliver',
  '/conversations/%E0%A4%A/messages',
  '/conversations/%00/messages',
  '/conversations/%2e%2e%2f%2e%2e/messages',
  '/..',
  '/../../etc/passwd',
  '/docs/static/../../../../etc/passwd',
  '/docs/static/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd',
  '/docs/static/..%2f..%2f..%2f..%2fetc%2fpasswd',
  '/docs/static/%00',
  '//webhook',
  '/webhook/',
  '/WEBHOOK',
  '/webhook;jsessionid=1',
  '/webhook?__proto__[polluted]=1&constructor[prototype][polluted]=1',
  '/tasks/x?a=1&a=2&a[]=3',
  '/healthz?%zz=%',
  '*',
  'http://127.0.0.1/webhook',
  'webhook',
  '/conversations/é/messages',
  '/a b',
  '/tasks/\u0000',
];

function longPath(random: Random): string {
  switch (random.int(4)) {
    case 0:
      return `/${'a'.repeat(5000)}`;
    case 1:
      return `/tasks/${'x'.repeat(9000)}`; // over the router's parameter limit
    case 2:
      return `/conversations/${'%41'.repeat(3000)}/messages`;
    default:
      return `/${'../'.repeat(20_000)}`; // over Node's header size limit
  }
}

function pickPath(random: Random): string {
  const roll = random.next();
  if (roll < 0.55) return random.pick(KNOWN_PATHS);
  if (roll < 0.85) return random.pick(JUNK_PATHS);
  if (roll < 0.92) return longPath(random);
  return `/${random.text(random.int(60))}`;
}

const CONTENT_TYPES = [
  'application/json',
  'application/json',
  'application/json',
  'application/json; charset=utf-8',
  'APPLICATION/JSON',
  'application/json; charset=utf-16',
  'application/json; charset=latin1',
  'application/jsonx',
  'application/vnd.api+json',
  'text/plain',
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=xyz',
  'application/octet-stream',
  '',
  ';;;',
  'application/json; boundary="',
  '\u00e9/\u00e9',
];

const IDEMPOTENCY_KEYS = [
  '',
  ' ',
  'k'.repeat(256),
  'k'.repeat(255),
  'has space',
  'caf\u00e9',
  'key\u0001',
  'ok-key-1',
  '\u00ff\u00fe',
];

const AUTHORIZATIONS = [
  'Bearer',
  'Bearer ',
  `Bearer  ${TOKEN}`,
  `bearer ${TOKEN}`,
  `Bearer ${TOKEN} extra`,
  `Bearer ${TOKEN}x`,
  `Basic ${Buffer.from(`user:${TOKEN}`).toString('base64')}`,
  `Bearer ${'t'.repeat(8000)}`,
  'Bearer \u00e9\u00e9',
  'Bearer\t\t',
  TOKEN,
];

export function buildRequest(random: Random): FuzzRequest {
  // A good share aims at the routes that parse bodies, so the body generators reach validation.
  const aimed = random.chance(0.35);
  const method = aimed
    ? 'POST'
    : random.chance(0.93)
      ? random.pick(STANDARD_METHODS)
      : random.pick(JUNK_METHODS);
  const path = aimed ? (random.chance(0.8) ? '/webhook' : '/callback') : pickPath(random);
  const headers: Array<[string, string]> = [];
  const authRoll = random.next();
  if (authRoll < 0.65) headers.push(['Authorization', `Bearer ${TOKEN}`]);
  else if (authRoll < 0.85) headers.push(['Authorization', random.pick(AUTHORIZATIONS)]);
  if (random.chance(0.03)) headers.push(['Authorization', random.pick(AUTHORIZATIONS)]);

  let kind = 'no-body';
  let body: Buffer | null = null;
  if (method !== 'GET' && method !== 'HEAD' ? random.chance(0.9) : random.chance(0.1)) {
    const picked = pickBody(random);
    kind = picked.kind;
    body = picked.body;
    const contentType = random.chance(0.85) ? 'application/json' : random.pick(CONTENT_TYPES);
    if (contentType !== '' || random.chance(0.5)) headers.push(['Content-Type', contentType]);
  }
  if (random.chance(0.15)) headers.push(['Idempotency-Key', random.pick(IDEMPOTENCY_KEYS)]);
  if (random.chance(0.02)) headers.push(['Idempotency-Key', 'second-key']);
  if (random.chance(0.05))
    headers.push(['X-Forwarded-For', random.pick(['1.2.3.4', 'garbage', '::1, 10.0.0.1'])]);
  if (random.chance(0.03)) headers.push(['X-Junk', 'v'.repeat(20_000)]);
  if (random.chance(0.03)) headers.push(['Accept', random.pick(['*/*', 'text/html', 'application/xml', ''])]);
  if (random.chance(0.02)) headers.push(['Transfer-Encoding', 'gzip']);
  const lengthRoll = random.next();
  const contentLength =
    body === null
      ? undefined
      : lengthRoll < 0.02
        ? 'none'
        : lengthRoll < 0.03
          ? 'short'
          : lengthRoll < 0.035
            ? 'long'
            : undefined;
  return { kind, method, path, headers, body, ...(contentLength === undefined ? {} : { contentLength }) };
}

export function encodeRequest(request: FuzzRequest): Buffer {
  const lines = [`${request.method} ${request.path} HTTP/1.1`, 'Host: 127.0.0.1', 'Connection: close'];
  for (const [name, value] of request.headers) lines.push(`${name}: ${value}`);
  const body = request.body;
  if (body !== null) {
    if (request.contentLength === 'none') lines.push('Transfer-Encoding: chunked');
    else if (request.contentLength === 'short') lines.push(`Content-Length: ${Math.max(0, body.length - 5)}`);
    else if (request.contentLength === 'long') lines.push(`Content-Length: ${body.length + 5}`);
    else lines.push(`Content-Length: ${body.length}`);
  }
  const head = Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'utf8');
  if (body === null) return head;
  if (request.contentLength === 'none') {
    return Buffer.concat([
      head,
      Buffer.from(`${body.length.toString(16)}\r\n`),
      body,
      Buffer.from('\r\n0\r\n\r\n'),
    ]);
  }
  return Buffer.concat([head, body]);
}
