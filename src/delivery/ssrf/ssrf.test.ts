import type { LookupAddress } from 'node:dns';
import type { LookupFunction } from 'node:net';
import { describe, expect, it } from 'vitest';
import { createSsrfPolicy, invalidAllowedHosts, isBlockedAddress, type SsrfPolicy } from './allow-list.js';
import { checkCallbackUrl } from './callback-url.js';
import { type BaseLookup, CALLBACK_FORBIDDEN_CODE, createGuardedLookup } from './guarded-lookup.js';

const strict = createSsrfPolicy({ callbackAllowPrivate: false, callbackAllowedHosts: [] });

/** `true` when the URL cannot even be parsed, or when the early check refuses it. */
function refused(text: string, policy: SsrfPolicy = strict): boolean {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return true;
  }
  return !checkCallbackUrl(url, policy).allowed;
}

describe('checkCallbackUrl', () => {
  const refusedUrls = [
    'http://127.0.0.1/',
    'http://127.255.255.254:8080/x',
    'http://0x7f000001/',
    'http://2130706433/',
    'http://127.1/',
    'http://017700000001/',
    'http://localhost/',
    'http://LOCALHOST:3000/',
    'http://localhost./',
    'http://api.localhost/',
    'http://0.0.0.0/',
    'http://0/',
    'http://10.0.0.5/',
    'http://172.16.0.1/',
    'http://172.31.255.255/',
    'http://192.168.1.1/',
    'http://169.254.169.254/latest/meta-data/',
    'http://100.64.0.1/',
    'http://100.127.255.255/',
    'http://192.0.0.8/',
    'http://192.0.2.10/',
    'http://198.51.100.7/',
    'http://203.0.113.9/',
    'http://198.18.0.1/',
    'http://198.19.255.255/',
    'http://224.0.0.1/',
    'http://239.255.255.250/',
    'http://240.0.0.1/',
    'http://255.255.255.255/',
    'http://[::1]/',
    'http://[::]/',
    'http://[0:0:0:0:0:0:0:1]/',
    'http://[::ffff:169.254.169.254]/',
    'http://[::ffff:127.0.0.1]/',
    'http://[::ffff:a00:5]/',
    'http://[::127.0.0.1]/',
    'http://[::ffff:0:10.0.0.1]/',
    'http://[64:ff9b::10.0.0.1]/',
    'http://[64:ff9b:1::1]/',
    'http://[2002:7f00:1::]/',
    'http://[2002:a9fe:a9fe::1]/',
    'http://[2001:0:4136:e378:8000:63bf:f5ff:fffe]/',
    'http://[fe80::1]/',
    'http://[fe80::1%25eth0]/',
    'http://[fc00::1]/',
    'http://[fd12:3456:789a::1]/',
    'http://[fec0::1]/',
    'http://[ff02::1]/',
    'http://[2001:db8::1]/',
    'http://[3fff::1]/',
    'http://[100::1]/',
    'http://[2001:2::1]/',
    'http://[4000::1]/',
    'ftp://example.com/',
  ];
  it.each(refusedUrls)('refuses %s', (url) => {
    expect(refused(url)).toBe(true);
  });

  const allowedUrls = [
    'http://93.184.216.34/',
    'https://example.com/',
    'https://example.com:8443/hook?x=1',
    'http://8.8.8.8/',
    'http://1.1.1.1/',
    'http://172.32.0.1/',
    'http://100.128.0.1/',
    'http://169.255.0.1/',
    'http://[2606:4700:4700::1111]/',
    'http://[::ffff:93.184.216.34]/',
    'http://[64:ff9b::8.8.8.8]/',
    'http://[2002:5db8:d822::1]/',
    'http://localhost.example.com/',
    'http://internal.corp/',
  ];
  it.each(allowedUrls)('allows %s', (url) => {
    expect(refused(url)).toBe(false);
  });

  it('says why a target is refused', () => {
    const result = checkCallbackUrl(new URL('http://[::ffff:169.254.169.254]/'), strict);
    expect(result).toEqual({ allowed: false, reason: expect.stringMatching(/link-local/) });
    const local = checkCallbackUrl(new URL('http://localhost:8000/'), strict);
    expect(local).toEqual({ allowed: false, reason: expect.stringMatching(/localhost/) });
  });

  it('lets allow-listed names, addresses and ranges through', () => {
    const policy = createSsrfPolicy({
      callbackAllowPrivate: false,
      callbackAllowedHosts: ['localhost', '127.0.0.1', '10.1.0.0/16', 'fd00::/8', 'Hooks.Internal.'],
    });
    expect(refused('http://localhost:9000/', policy)).toBe(false);
    expect(refused('http://127.0.0.1:9000/', policy)).toBe(false);
    expect(refused('http://[::ffff:127.0.0.1]/', policy)).toBe(false);
    expect(refused('http://10.1.2.3/', policy)).toBe(false);
    expect(refused('http://[fd00::5]/', policy)).toBe(false);
    expect(refused('http://hooks.internal/', policy)).toBe(false);
    // Only what is listed.
    expect(refused('http://127.0.0.2/', policy)).toBe(true);
    expect(refused('http://10.2.0.1/', policy)).toBe(true);
    expect(refused('http://[fe80::1]/', policy)).toBe(true);
    expect(refused('http://api.localhost/', policy)).toBe(true);
  });

  it('lets names under a wildcard entry through, but not the bare domain', () => {
    const policy = createSsrfPolicy({ callbackAllowPrivate: false, callbackAllowedHosts: ['*.svc.local'] });
    expect(refused('http://hooks.svc.local/', policy)).toBe(false);
    expect(refused('http://a.b.svc.local/', policy)).toBe(false);
    expect(isBlockedAddress('10.0.0.1', policy)).toBe(true);
    expect(checkCallbackUrl(new URL('http://svc.local/'), policy).allowed).toBe(true); // names pass early anyway
  });

  it('lets everything through with allowPrivate', () => {
    const open = createSsrfPolicy({ callbackAllowPrivate: true, callbackAllowedHosts: [] });
    for (const url of [
      'http://127.0.0.1/',
      'http://localhost/',
      'http://[::1]/',
      'http://169.254.169.254/',
    ]) {
      expect(refused(url, open)).toBe(false);
    }
  });
});

describe('isBlockedAddress', () => {
  it.each([
    ['127.0.0.1', true],
    ['10.255.255.255', true],
    ['fe80::1%eth0', true],
    ['[::1]', true],
    ['::ffff:7f00:1', true],
    ['FE80::ABCD', true],
    ['not-an-ip', true],
    ['', true],
    ['93.184.216.34', false],
    ['2a00:1450:4001:80b::200e', false],
    ['[2606:4700:4700::1111]', false],
    // Teredo with a public server and a public client (8.8.8.8 stored inverted).
    ['2001:0:4136:e378:8000:63bf:f7f7:f7f7', false],
  ] as const)('%s → %s', (ip, blocked) => {
    expect(isBlockedAddress(ip, strict)).toBe(blocked);
  });

  it('honours allow-list entries and allowPrivate', () => {
    const policy: SsrfPolicy = { allowPrivate: false, allowedHosts: ['192.168.0.0/24'] };
    expect(isBlockedAddress('192.168.0.77', policy)).toBe(false);
    expect(isBlockedAddress('192.168.1.77', policy)).toBe(true);
    expect(isBlockedAddress('10.0.0.1', { allowPrivate: true, allowedHosts: [] })).toBe(false);
  });
});

describe('invalidAllowedHosts', () => {
  it('names the entries that are neither a host name, an address nor a CIDR range', () => {
    expect(
      invalidAllowedHosts(['10.0.0.0/99', 'http://x/', 'a.*.com', 'ok.example', '*.svc.local', 'fd00::/8']),
    ).toEqual(['10.0.0.0/99', 'http://x/', 'a.*.com']);
    expect(invalidAllowedHosts(['10.0.0.0/8', '::1', 'Hooks.Internal.'])).toEqual([]);
  });

  it('is what createSsrfPolicy refuses', () => {
    expect(() =>
      createSsrfPolicy({ callbackAllowPrivate: false, callbackAllowedHosts: ['1.2.3.4/33'] }),
    ).toThrow(TypeError);
  });
});

function fakeDns(answers: Record<string, string[]>): BaseLookup & { asked: string[] } {
  const asked: string[] = [];
  const lookup: BaseLookup = (hostname, options, callback) => {
    asked.push(hostname);
    expect(options.all).toBe(true);
    const addresses = answers[hostname];
    if (addresses === undefined) {
      callback(Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' }), []);
      return;
    }
    callback(
      null,
      addresses.map((address): LookupAddress => ({ address, family: address.includes(':') ? 6 : 4 })),
    );
  };
  return Object.assign(lookup, { asked });
}

function resolve(
  lookup: LookupFunction,
  hostname: string,
  all: boolean,
): Promise<{ error: NodeJS.ErrnoException | null; address: unknown }> {
  return new Promise((done) => {
    lookup(hostname, { all }, (error, address) => done({ error, address }));
  });
}

describe('createGuardedLookup', () => {
  const dns = fakeDns({
    'evil.test': ['10.0.0.5'],
    'mixed.test': ['93.184.216.34', '::1'],
    'public.test': ['93.184.216.34', '2606:4700:4700::1111'],
    'allowed.test': ['10.0.0.5'],
    'hooks.svc.local': ['10.0.0.6'],
    'svc.local': ['10.0.0.7'],
  });

  it('refuses a name whose answer is a private address', async () => {
    const { error } = await resolve(createGuardedLookup(strict, dns), 'evil.test', false);
    expect(error?.code).toBe(CALLBACK_FORBIDDEN_CODE);
    expect(error?.message).toMatch(/10\.0\.0\.5/);
    expect(dns.asked).toContain('evil.test');
  });

  it('refuses when any of the answers is blocked', async () => {
    const { error } = await resolve(createGuardedLookup(strict, dns), 'mixed.test', true);
    expect(error?.code).toBe(CALLBACK_FORBIDDEN_CODE);
  });

  it('passes public answers through in both lookup shapes', async () => {
    const lookup = createGuardedLookup(strict, dns);
    const all = await resolve(lookup, 'public.test', true);
    expect(all.error).toBeNull();
    expect(all.address).toEqual([
      { address: '93.184.216.34', family: 4 },
      { address: '2606:4700:4700::1111', family: 6 },
    ]);
    const one = await resolve(lookup, 'public.test', false);
    expect(one.error).toBeNull();
    expect(one.address).toBe('93.184.216.34');
  });

  it('passes DNS failures through', async () => {
    const { error } = await resolve(createGuardedLookup(strict, dns), 'missing.test', false);
    expect(error?.code).toBe('ENOTFOUND');
  });

  it('lets an allow-listed name or address through', async () => {
    const byName = createSsrfPolicy({ callbackAllowPrivate: false, callbackAllowedHosts: ['allowed.test'] });
    expect((await resolve(createGuardedLookup(byName, dns), 'allowed.test', false)).error).toBeNull();
    expect((await resolve(createGuardedLookup(byName, dns), 'evil.test', false)).error?.code).toBe(
      CALLBACK_FORBIDDEN_CODE,
    );
    const byWildcard = createSsrfPolicy({
      callbackAllowPrivate: false,
      callbackAllowedHosts: ['*.svc.local'],
    });
    expect((await resolve(createGuardedLookup(byWildcard, dns), 'hooks.svc.local', false)).error).toBeNull();
    expect((await resolve(createGuardedLookup(byWildcard, dns), 'svc.local', false)).error?.code).toBe(
      CALLBACK_FORBIDDEN_CODE,
    );
    const byRange = createSsrfPolicy({ callbackAllowPrivate: false, callbackAllowedHosts: ['10.0.0.0/24'] });
    expect((await resolve(createGuardedLookup(byRange, dns), 'evil.test', false)).error).toBeNull();
  });

  it('uses the system resolver by default', async () => {
    const { error } = await resolve(createGuardedLookup(strict), 'localhost', true);
    expect(error?.code).toBe(CALLBACK_FORBIDDEN_CODE);
  });
});
