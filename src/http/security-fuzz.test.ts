/**
 * Hostile input (SPEC §6: bad input of any kind gets a 4xx with a JSON `detail`; nothing makes
 * the process crash, hang or grow without bound). A seeded, reproducible fuzz run of raw HTTP/1.1
 * requests over real sockets against the real server: junk methods, paths, content types,
 * bodies and headers. Set `FUZZ_SEED` to replay another run; the seed is printed.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openSqliteDatabase, type SqliteDatabase } from '../backends/sqlite/sqlite-database.js';
import { loadConfig } from '../config.js';
import { createSqliteJobQueue } from '../queue/sqlite-job-queue.js';
import { createLogger } from '../shared/logger.js';
import { createMetrics } from '../shared/metrics.js';
import { createSqliteStore } from '../store/sqlite-store.js';
import { buildServer } from './server.js';

const SEED = Number(process.env.FUZZ_SEED ?? 0x5eed_f00d);
const REQUESTS = 2400;
const CONCURRENCY = 8;
const BODY_LIMIT_BYTES = 262_144;
const TOKEN = 'fuzz-token-0123456789';
/** A request with no answer by then counts as a hang. */
const ANSWER_DEADLINE_MS = 20_000;

/** mulberry32: a tiny, fast, seedable PRNG; the same seed gives the same run. */
function createRandom(seed: number) {
  let state = seed >>> 0;
  const next = (): number => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
  const int = (max: number): number => Math.floor(next() * max);
  const pick = <T>(items: readonly T[]): T => items[int(items.length)]!;
  const chance = (p: number): boolean => next() < p;
  const text = (length: number, alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789 -_.~%/?#&=+'): string => {
    let out = '';
    for (let i = 0; i < length; i++) out += alphabet[int(alphabet.length)];
    return out;
  };
  const bytes = (length: number): Buffer => {
    const out = Buffer.alloc(length);
    for (let i = 0; i < length; i++) out[i] = int(256);
    return out;
  };
  return { next, int, pick, chance, text, bytes };
}

type Random = ReturnType<typeof createRandom>;

interface FuzzRequest {
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

function validBody(random: Random): Record<string, unknown> {
  return {
    message: random.text(1 + random.int(200)),
    callback_url: random.pick(['https://example.com/callback', 'http://hooks.example.org:8080/x?y=1']),
    ...(random.chance(0.5) ? { conversation_id: random.text(1 + random.int(40)) } : {}),
    ...(random.chance(0.3) ? { metadata: { ticket: random.int(10_000), tags: ['a', 'b'] } } : {}),
  };
}

const WRONG_VALUES: readonly unknown[] = [
  null,
  true,
  0,
  -1.5e308,
  '',
  '   ',
  '\u0000',
  [],
  ['x'],
  {},
  { nested: { deeper: [1, 2, 3] } },
  'ftp://example.com/',
  'not a url',
  'javascript:alert(1)',
  'http://169.254.169.254/latest/meta-data/',
  'http://[::ffff:127.0.0.1]/',
  'http://localhost:9/',
  `https://example.com/${'p'.repeat(3000)}`,
  'x'.repeat(40_000),
  '\ud800',
];

function nested(depth: number, open: string, close: string, inner = '1'): string {
  return `${open.repeat(depth)}${inner}${close.repeat(depth)}`;
}

/** A body: JSON text or raw bytes. */
function pickBody(random: Random): { kind: string; body: Buffer } {
  const json = (value: unknown) => Buffer.from(JSON.stringify(value), 'utf8');
  const roll = random.int(16);
  switch (roll) {
    case 0:
    case 1:
      return { kind: 'valid', body: json(validBody(random)) };
    case 2: {
      const full = JSON.stringify(validBody(random));
      return { kind: 'truncated', body: Buffer.from(full.slice(0, random.int(full.length)), 'utf8') };
    }
    case 3: {
      const shapes = [
        nested(10_000, '[', ']'),
        nested(10_000, '{"a":', '}'),
        `{"message":"x","callback_url":"https://example.com/","metadata":${nested(10_000, '{"a":', '}')}}`,
        nested(100_000, '[', ']'),
        nested(10_000, '[', '', ''),
      ];
      return { kind: 'deep', body: Buffer.from(random.pick(shapes), 'utf8') };
    }
    case 4: {
      const target = random.pick([
        BODY_LIMIT_BYTES - 64,
        BODY_LIMIT_BYTES,
        BODY_LIMIT_BYTES + 1,
        3 * BODY_LIMIT_BYTES,
      ]);
      const base = JSON.stringify({ message: '', callback_url: 'https://example.com/' });
      const fill = Math.max(0, target - base.length);
      return {
        kind: 'huge',
        body: Buffer.from(
          JSON.stringify({ message: 'm'.repeat(fill), callback_url: 'https://example.com/' }),
          'utf8',
        ),
      };
    }
    case 5: {
      const invalid = [
        Buffer.from([0xff, 0xfe, 0xfd]),
        Buffer.from([0xc0, 0xaf]),
        Buffer.from([0xed, 0xa0, 0x80]),
        Buffer.from([0x80]),
        random.bytes(4),
      ];
      return {
        kind: 'invalid-utf8',
        body: Buffer.concat([
          Buffer.from('{"message":"'),
          random.pick(invalid),
          Buffer.from('","callback_url":"https://example.com/', 'utf8'),
          random.pick(invalid),
          Buffer.from('"}'),
        ]),
      };
    }
    case 6: {
      const poison = [
        '{"__proto__":{"polluted":1},"message":"x","callback_url":"https://example.com/"}',
        '{"constructor":{"prototype":{"polluted":1}},"message":"x","callback_url":"https://example.com/"}',
        '{"message":"x","callback_url":"https://example.com/","metadata":{"__proto__":{"polluted":1}}}',
        '{"message":"x","callback_url":"https://example.com/","metadata":{"constructor":{"prototype":{"polluted":1}}}}',
        '{"prototype":{"polluted":1},"message":"x","callback_url":"https://example.com/"}',
        '{"message":"x","callback_url":"https://example.com/","metadata":{"a":[{"__proto__":{"polluted":1}}]}}',
        '{"generated_response":"x","__proto__":{"polluted":1}}',
        '{"message":"x","callback_url":"https://example.com/","constructor":{"name":"y"}}',
      ];
      return { kind: 'proto-keys', body: Buffer.from(random.pick(poison), 'utf8') };
    }
    case 7:
    case 8: {
      const body = validBody(random);
      const field = random.pick(['message', 'callback_url', 'conversation_id', 'metadata']);
      body[field] = random.pick(WRONG_VALUES);
      if (random.chance(0.2)) delete body[random.pick(['message', 'callback_url'])];
      return { kind: 'wrong-type', body: json(body) };
    }
    case 9:
      return {
        kind: 'not-object',
        body: Buffer.from(
          random.pick(['[]', '[1,2]', '42', '-0', 'null', '"text"', 'true', '1e999', '""']),
          'utf8',
        ),
      };
    case 10:
      return {
        kind: 'odd-json',
        body: Buffer.from(
          random.pick([
            '',
            '   ',
            '\ufeff{"message":"x","callback_url":"https://example.com/"}',
            '{"message":"x","message":"y","callback_url":"https://example.com/"}',
            '{"message":"\\u0000","callback_url":"https://example.com/"}',
            '{"message":"\\ud800","callback_url":"https://example.com/"}',
            '{"message":NaN,"callback_url":"https://example.com/"}',
            "{'message':'x'}",
            '{"message":"x",}',
            '{"a":1}garbage',
            '{"metadata":{"a":"'.concat(
              'b'.repeat(5000),
              '"},"message":"x","callback_url":"https://example.com/"}',
            ),
          ]),
          'utf8',
        ),
      };
    case 11:
      return { kind: 'random-bytes', body: random.bytes(random.int(2000)) };
    default:
      return { kind: 'random-json', body: json(randomJson(random, 4)) };
  }
}

function randomJson(random: Random, depth: number): unknown {
  const roll = random.int(depth <= 0 ? 5 : 8);
  switch (roll) {
    case 0:
      return null;
    case 1:
      return random.chance(0.5);
    case 2:
      return random.next() * 1e6 - 5e5;
    case 3:
    case 4:
      return random.text(random.int(30));
    case 5:
      return Array.from({ length: random.int(5) }, () => randomJson(random, depth - 1));
    default: {
      const keys = [
        'message',
        'callback_url',
        'conversation_id',
        'metadata',
        'generated_response',
        'x',
        'toString',
      ];
      const out: Record<string, unknown> = {};
      for (let i = random.int(5); i > 0; i--) out[random.pick(keys)] = randomJson(random, depth - 1);
      return out;
    }
  }
}

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

function buildRequest(random: Random): FuzzRequest {
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

function encodeRequest(request: FuzzRequest): Buffer {
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

interface Answer {
  /** 0 when the server closed the connection without an answer. */
  status: number;
  headers: Record<string, string>;
  body: string;
}

function decodeChunked(raw: Buffer): Buffer {
  const parts: Buffer[] = [];
  let offset = 0;
  for (;;) {
    const lineEnd = raw.indexOf('\r\n', offset);
    if (lineEnd === -1) break;
    const size = parseInt(raw.subarray(offset, lineEnd).toString('latin1'), 16);
    if (!Number.isFinite(size) || size === 0) break;
    parts.push(raw.subarray(lineEnd + 2, lineEnd + 2 + size));
    offset = lineEnd + 2 + size + 2;
  }
  return Buffer.concat(parts);
}

function parseAnswer(raw: Buffer): Answer {
  const headEnd = raw.indexOf('\r\n\r\n');
  if (raw.length === 0 || headEnd === -1) return { status: 0, headers: {}, body: raw.toString('latin1') };
  const [statusLine = '', ...headerLines] = raw.subarray(0, headEnd).toString('latin1').split('\r\n');
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1] ?? 0);
  const headers: Record<string, string> = {};
  for (const line of headerLines) {
    const colon = line.indexOf(':');
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  const rest = raw.subarray(headEnd + 4);
  const body = headers['transfer-encoding']?.includes('chunked') ? decodeChunked(rest) : rest;
  return { status, headers, body: body.toString('utf8') };
}

function send(port: number, payload: Buffer): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const socket = connect(port, '127.0.0.1', () => {
      // No half-close: a Node server aborts a request whose client has ended its side. The
      // server may answer (413, 400) and close before reading everything: a failed write is
      // expected then, and the answer already received still counts.
      socket.write(payload);
    });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer within ${ANSWER_DEADLINE_MS} ms`));
    }, ANSWER_DEADLINE_MS);
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(parseAnswer(Buffer.concat(chunks)));
    });
  });
}

/** `global.gc`, made available without a command-line flag. */
function exposeGc(): () => void {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

function heapUsedAfterGc(gc: () => void): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

describe('hostile input', () => {
  let dir: string;
  let db: SqliteDatabase;
  let app: FastifyInstance;
  let port: number;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'llm-webhook-fuzz-'));
    const config = loadConfig({
      RATE_LIMIT: 'off',
      LOG_LEVEL: 'silent',
      API_TOKENS: TOKEN,
      BODY_LIMIT_BYTES: String(BODY_LIMIT_BYTES),
    });
    db = openSqliteDatabase({ path: join(dir, 'fuzz.db') });
    const store = createSqliteStore(db, {
      historyMaxMessages: 20,
      historyTtlSeconds: 3600,
      taskRetentionSeconds: 3600,
    });
    const queue = createSqliteJobQueue(db, {});
    app = await buildServer({
      config,
      logger: createLogger('silent'),
      store,
      queue,
      metrics: createMetrics({ queueCounts: () => queue.counts() }),
      // A request that promises more body than it sends is answered 408 promptly.
      timeouts: { requestTimeoutMs: 3000, headersTimeoutMs: 3000, checkIntervalMs: 250 },
    });
    port = Number(new URL(await app.listen({ host: '127.0.0.1', port: 0 })).port);
    return async () => {
      await app.close();
      await queue.close({ timeoutMs: 1000 });
      await store.close();
      db.close();
    };
  });

  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers CONNECT with a 405 and a JSON detail instead of dropping the connection', async () => {
    const answer = await send(
      port,
      Buffer.from('CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\n\r\n'),
    );
    expect(answer.status).toBe(405);
    expect(JSON.parse(answer.body)).toEqual({ detail: 'Method Not Allowed' });
  });

  it('sends one answer per request when the body turns out malformed after the route answered', async () => {
    // The 401 goes out before the body is read; the body's framing error that follows must not
    // append a raw 400 to the same response stream.
    const request = Buffer.from(
      'POST /webhook HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n' +
        'Transfer-Encoding: gzip\r\nConnection: close\r\n\r\n{"message":"x"}',
    );
    const raw = await new Promise<string>((resolve, reject) => {
      let received = '';
      const socket = connect(port, '127.0.0.1', () => socket.write(request));
      socket.on('data', (chunk: Buffer) => {
        received += chunk.toString('latin1');
      });
      socket.on('error', () => undefined);
      socket.on('close', () => resolve(received));
      setTimeout(() => reject(new Error('no close')), ANSWER_DEADLINE_MS).unref();
    });
    expect(raw.match(/HTTP\/1\.1 \d{3} /g)).toHaveLength(1);
  });

  it(`answers ${REQUESTS} generated requests with < 500, a JSON detail on every 4xx, and stays well`, async () => {
    const random = createRandom(SEED);
    const requests = Array.from({ length: REQUESTS }, () => buildRequest(random));
    const gc = exposeGc();
    const histogram = new Map<number, number>();
    const byKind = new Map<string, number>();
    const problems: string[] = [];
    let sent = 0;
    let baselineHeap = 0;
    let closedWithoutAnswer = 0;

    const check = (request: FuzzRequest, answer: Answer): void => {
      histogram.set(answer.status, (histogram.get(answer.status) ?? 0) + 1);
      const label = `#${request.kind} ${request.method} ${request.path.slice(0, 80)}`;
      if (answer.status >= 500) problems.push(`${answer.status} for ${label}: ${answer.body.slice(0, 200)}`);
      if (answer.status === 0) {
        closedWithoutAnswer += 1;
        // A server that answers 413 and closes while the client is still sending may reset the
        // connection before the client reads the answer; anything else must be answered.
        if ((request.body?.length ?? 0) <= BODY_LIMIT_BYTES) problems.push(`no answer for ${label}`);
        return;
      }
      if (answer.body.includes('root:x:0:0')) problems.push(`file contents leaked for ${label}`);
      if (answer.status >= 400 && request.method !== 'HEAD') {
        try {
          const json = JSON.parse(answer.body) as Record<string, unknown>;
          if (!('detail' in json)) problems.push(`${answer.status} without detail for ${label}`);
        } catch {
          problems.push(`${answer.status} body is not JSON for ${label}: ${answer.body.slice(0, 120)}`);
        }
        if (answer.body.includes('    at ')) problems.push(`stack trace in ${answer.status} for ${label}`);
      }
    };

    let next = 0;
    const worker = async (): Promise<void> => {
      for (;;) {
        const index = next++;
        if (index >= requests.length) return;
        if (index === 300) baselineHeap = heapUsedAfterGc(gc);
        const request = requests[index]!;
        byKind.set(request.kind, (byKind.get(request.kind) ?? 0) + 1);
        const answer = await send(port, encodeRequest(request));
        sent += 1;
        check(request, answer);
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    const finalHeap = heapUsedAfterGc(gc);

    const sortedHistogram = Object.fromEntries([...histogram.entries()].sort(([a], [b]) => a - b));
    const fiveHundreds = [...histogram.entries()]
      .filter(([status]) => status >= 500)
      .reduce((sum, [, n]) => sum + n, 0);
    console.log(
      `fuzz: seed=${SEED} requests sent=${sent} status histogram=${JSON.stringify(sortedHistogram)} ` +
        `5xx seen=${fiveHundreds} closed without answer=${closedWithoutAnswer} ` +
        `bodies=${JSON.stringify(Object.fromEntries(byKind))} ` +
        `heapUsed MB before=${(baselineHeap / 1e6).toFixed(1)} after=${(finalHeap / 1e6).toFixed(1)}`,
    );

    expect(sent).toBe(REQUESTS);
    expect(problems).toEqual([]);
    expect(fiveHundreds).toBe(0);
    // What the server keeps per request must not grow with the number of requests.
    expect(finalHeap - baselineHeap).toBeLessThan(40 * 1024 * 1024);
    // No parsed body reached an object's prototype.
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.keys(Object.prototype)).toEqual([]);

    const health = await fetch(`http://127.0.0.1:${port}/healthz`);
    expect(health.status).toBe(200);
  }, 240_000);
});
