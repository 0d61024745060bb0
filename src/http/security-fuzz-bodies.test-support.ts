/** The fuzz run's seeded randomness and request bodies, from valid to poisoned (security-fuzz.test.ts). */

export const BODY_LIMIT_BYTES = 262_144;

/** mulberry32: a tiny, fast, seedable PRNG; the same seed gives the same run. */
export function createRandom(seed: number) {
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

export type Random = ReturnType<typeof createRandom>;

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
export function pickBody(random: Random): { kind: string; body: Buffer } {
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
