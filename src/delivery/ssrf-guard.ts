/**
 * The callback SSRF guard (SPEC §6). Owns the list of address ranges a callback may never reach
 * and the three places they are enforced:
 *
 * - `checkCallbackUrl`: the early check at `POST /webhook`, on literal addresses and `localhost`;
 * - `createGuardedLookup`: the `lookup` of the callback HTTP agent, so every connection to a
 *   named host is checked against the addresses it actually resolved to (a DNS answer that
 *   changes between the early check and the connection cannot slip through);
 * - `isBlockedAddress`: the pure check both are built on, also used by the sender for literal
 *   addresses, which Node connects to without calling `lookup`.
 */
import { lookup as dnsLookup, type LookupAddress, type LookupAllOptions, type LookupOptions } from 'node:dns';
import { BlockList, isIP, type LookupFunction } from 'node:net';
import { AppError } from '../shared/errors.js';

/** Which callback targets are let through. Build it with `createSsrfPolicy`. */
export interface SsrfPolicy {
  /** `true` turns the guard off (local development only). */
  allowPrivate: boolean;
  /**
   * Host names (case-insensitive; `*.example.com` for any name under it), IP addresses and CIDR
   * ranges let through.
   */
  allowedHosts: readonly string[];
}

/** The `code` of the error a guarded lookup fails with. */
export const CALLBACK_FORBIDDEN_CODE = 'ERR_CALLBACK_FORBIDDEN';

/** A callback target refused by the policy; its `code` is `ERR_CALLBACK_FORBIDDEN`. */
export class CallbackForbiddenError extends AppError {
  constructor(
    message: string,
    readonly hostname: string,
    readonly address?: string,
  ) {
    super(CALLBACK_FORBIDDEN_CODE, message);
  }
}

type Family = 'ipv4' | 'ipv6';
type Range = readonly [address: string, prefix: number];

const IPV4_RANGES: ReadonlyArray<readonly [label: string, ranges: readonly Range[]]> = [
  ['unspecified', [['0.0.0.0', 8]]],
  ['loopback', [['127.0.0.0', 8]]],
  [
    'private',
    [
      ['10.0.0.0', 8],
      ['172.16.0.0', 12],
      ['192.168.0.0', 16],
    ],
  ],
  ['link-local', [['169.254.0.0', 16]]],
  ['shared (CGNAT)', [['100.64.0.0', 10]]],
  ['IETF protocol assignment', [['192.0.0.0', 24]]],
  [
    'documentation',
    [
      ['192.0.2.0', 24],
      ['198.51.100.0', 24],
      ['203.0.113.0', 24],
    ],
  ],
  ['benchmarking', [['198.18.0.0', 15]]],
  ['6to4 relay anycast', [['192.88.99.0', 24]]],
  ['multicast', [['224.0.0.0', 4]]],
  // 240.0.0.0/4 holds the limited broadcast address 255.255.255.255 too.
  ['reserved', [['240.0.0.0', 4]]],
];

const IPV6_RANGES: ReadonlyArray<readonly [label: string, ranges: readonly Range[]]> = [
  ['unspecified', [['::', 128]]],
  ['loopback', [['::1', 128]]],
  ['unique-local', [['fc00::', 7]]],
  ['link-local', [['fe80::', 10]]],
  ['site-local', [['fec0::', 10]]],
  ['multicast', [['ff00::', 8]]],
  [
    'documentation',
    [
      ['2001:db8::', 32],
      ['3fff::', 20],
    ],
  ],
  ['benchmarking', [['2001:2::', 48]]],
  [
    'ORCHID',
    [
      ['2001:10::', 28],
      ['2001:20::', 28],
    ],
  ],
  ['discard-only', [['100::', 64]]],
  ['local-use NAT64', [['64:ff9b:1::', 48]]],
  ['segment routing', [['5f00::', 16]]],
];

function buildLists(family: Family, table: typeof IPV4_RANGES): ReadonlyArray<readonly [string, BlockList]> {
  return table.map(([label, ranges]) => {
    const list = new BlockList();
    for (const [address, prefix] of ranges) list.addSubnet(address, prefix, family);
    return [label, list] as const;
  });
}

const IPV4_LISTS = buildLists('ipv4', IPV4_RANGES);
const IPV6_LISTS = buildLists('ipv6', IPV6_RANGES);
/** Global unicast; IPv6 outside it is not reachable on the public internet. */
const IPV6_GLOBAL_UNICAST = new BlockList();
IPV6_GLOBAL_UNICAST.addSubnet('2000::', 3, 'ipv6');

interface ParsedAddress {
  address: string;
  family: Family;
}

/** Strips brackets and a zone id (`fe80::1%eth0`); `null` when what is left is not an IP address. */
function parseAddress(text: string): ParsedAddress | null {
  let address = text.trim();
  if (address.startsWith('[') && address.endsWith(']')) address = address.slice(1, -1);
  const zone = address.indexOf('%');
  // BlockList matches nothing for an address with a zone id, so it must go before any check.
  if (zone !== -1) address = address.slice(0, zone);
  const version = isIP(address);
  if (version === 4) return { address, family: 'ipv4' };
  if (version === 6) return { address: address.toLowerCase(), family: 'ipv6' };
  return null;
}

/** The eight 16-bit groups of a valid IPv6 address (a dotted IPv4 tail becomes two groups). */
function ipv6Groups(address: string): number[] {
  let text = address;
  if (text.includes('.')) {
    const colon = text.lastIndexOf(':');
    const [a = 0, b = 0, c = 0, d = 0] = text
      .slice(colon + 1)
      .split('.')
      .map(Number);
    text = `${text.slice(0, colon + 1)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const parse = (part: string): number[] =>
    part === '' ? [] : part.split(':').map((group) => parseInt(group, 16));
  const [left = '', right] = text.split('::');
  if (right === undefined) return parse(left);
  const head = parse(left);
  const tail = parse(right);
  return [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
}

function ipv4FromGroups(high: number, low: number): string {
  return `${high >> 8}.${high & 0xff}.${low >> 8}.${low & 0xff}`;
}

interface Embedded {
  /** The IPv4 addresses the IPv6 address carries traffic to. */
  ipv4: string[];
  /** `true` when the IPv6 address is only a wrapper and the IPv4 inside decides alone. */
  wrapper: boolean;
  form: string;
}

/**
 * The IPv4 addresses inside the IPv6 forms that reach an IPv4 host: mapped (`::ffff:a.b.c.d`),
 * translated (`::ffff:0:a.b.c.d`), compatible (`::a.b.c.d`), NAT64 (`64:ff9b::/96`), 6to4
 * (`2002:AABB:CCDD::`) and Teredo (server, and the client address stored inverted).
 */
function embeddedIpv4(address: string): Embedded | null {
  const g = ipv6Groups(address);
  const zeros = (from: number, to: number): boolean => g.slice(from, to).every((group) => group === 0);
  const last = ipv4FromGroups(g[6]!, g[7]!);
  if (zeros(0, 5) && g[5] === 0xffff) return { ipv4: [last], wrapper: true, form: 'IPv4-mapped' };
  if (zeros(0, 4) && g[4] === 0xffff && g[5] === 0)
    return { ipv4: [last], wrapper: true, form: 'IPv4-translated' };
  if (zeros(0, 6)) return { ipv4: [last], wrapper: true, form: 'IPv4-compatible' };
  if (g[0] === 0x64 && g[1] === 0xff9b && zeros(2, 6)) return { ipv4: [last], wrapper: true, form: 'NAT64' };
  if (g[0] === 0x2002) return { ipv4: [ipv4FromGroups(g[1]!, g[2]!)], wrapper: false, form: '6to4' };
  if (g[0] === 0x2001 && g[1] === 0) {
    const client = ipv4FromGroups(~g[6]! & 0xffff, ~g[7]! & 0xffff);
    return { ipv4: [ipv4FromGroups(g[2]!, g[3]!), client], wrapper: false, form: 'Teredo' };
  }
  return null;
}

function classifyIpv4(address: string): string | null {
  for (const [label, list] of IPV4_LISTS) if (list.check(address, 'ipv4')) return label;
  return null;
}

/** Why `parsed` may not be reached (`"loopback"`, `"private"`, ...), or `null` when it may. */
function classify(parsed: ParsedAddress): string | null {
  if (parsed.family === 'ipv4') return classifyIpv4(parsed.address);
  // The exact `::` and `::1` come first: they also look like IPv4-compatible addresses.
  for (const [label, list] of IPV6_LISTS.slice(0, 2)) if (list.check(parsed.address, 'ipv6')) return label;
  const embedded = embeddedIpv4(parsed.address);
  if (embedded !== null) {
    for (const inner of embedded.ipv4) {
      const label = classifyIpv4(inner);
      if (label !== null) return `${label} (${embedded.form} ${inner})`;
    }
    if (embedded.wrapper) return null;
  }
  for (const [label, list] of IPV6_LISTS) if (list.check(parsed.address, 'ipv6')) return label;
  return IPV6_GLOBAL_UNICAST.check(parsed.address, 'ipv6') ? null : 'reserved';
}

interface CompiledAllowList {
  names: ReadonlySet<string>;
  addresses: BlockList;
  /** `checkCallbackUrl`'s verdicts by normalised host: a service sees the same few hosts again and again. */
  verdicts: Map<string, string | null>;
}

/** Hosts whose verdict is kept per policy; the cache starts afresh when full. */
const VERDICT_CACHE_SIZE = 1024;

/** Whether `host` (normalised) is an allow-listed name, exactly or under a `*.` entry. */
function isAllowedName(host: string, names: ReadonlySet<string>): boolean {
  if (names.has(host)) return true;
  for (let dot = host.indexOf('.'); dot !== -1; dot = host.indexOf('.', dot + 1)) {
    if (names.has(`*${host.slice(dot)}`)) return true;
  }
  return false;
}

function normaliseHostname(hostname: string): string {
  let host = hostname.trim().toLowerCase();
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  return host.replace(/\.+$/, '');
}

/** Adds one allow-list entry; `false` when it is neither a name, an address nor a CIDR range. */
function addAllowEntry(entry: string, names: Set<string>, addresses: BlockList): boolean {
  const slash = entry.indexOf('/');
  if (slash !== -1) {
    const network = parseAddress(entry.slice(0, slash));
    const prefixText = entry.slice(slash + 1);
    const max = network?.family === 'ipv4' ? 32 : 128;
    if (network === null || !/^\d{1,3}$/.test(prefixText) || Number(prefixText) > max) return false;
    addresses.addSubnet(network.address, Number(prefixText), network.family);
    return true;
  }
  const address = parseAddress(entry);
  if (address !== null) {
    addresses.addAddress(address.address, address.family);
    return true;
  }
  const name = normaliseHostname(entry);
  if (!/^(\*\.)?[a-z0-9_-]+(\.[a-z0-9_-]+)*$/.test(name)) return false;
  names.add(name);
  return true;
}

// Policies are plain data; their compiled form is cached per policy object.
const compiledPolicies = new WeakMap<SsrfPolicy, CompiledAllowList>();

function compile(policy: SsrfPolicy): CompiledAllowList {
  let compiled = compiledPolicies.get(policy);
  if (compiled === undefined) {
    const names = new Set<string>();
    const addresses = new BlockList();
    for (const entry of policy.allowedHosts) addAllowEntry(entry, names, addresses);
    compiled = { names, addresses, verdicts: new Map() };
    compiledPolicies.set(policy, compiled);
  }
  return compiled;
}

/**
 * The entries of `CALLBACK_ALLOWED_HOSTS` that are neither a host name (`*.` for any name under
 * a domain), an IP address nor a CIDR range. The configuration refuses to start with any.
 */
export function invalidAllowedHosts(entries: readonly string[]): string[] {
  return entries.filter((entry) => !addAllowEntry(entry, new Set(), new BlockList()));
}

/** Builds the policy from the (validated) configuration; an invalid allow-list entry is a `TypeError`. */
export function createSsrfPolicy(config: {
  callbackAllowPrivate: boolean;
  callbackAllowedHosts: readonly string[];
}): SsrfPolicy {
  const bad = invalidAllowedHosts(config.callbackAllowedHosts);
  if (bad.length > 0) throw new TypeError(`Invalid callback allow-list entries: ${bad.join(',')}`);
  return Object.freeze({
    allowPrivate: config.callbackAllowPrivate,
    allowedHosts: Object.freeze([...config.callbackAllowedHosts]),
  });
}

function isAllowedAddress(parsed: ParsedAddress, policy: SsrfPolicy): boolean {
  const { addresses } = compile(policy);
  if (addresses.check(parsed.address, parsed.family)) return true;
  if (parsed.family === 'ipv6') {
    const embedded = embeddedIpv4(parsed.address);
    if (embedded?.wrapper === true) return addresses.check(embedded.ipv4[0]!, 'ipv4');
  }
  return false;
}

/** Why `ip` is refused under `policy`, or `null` when it may be reached. Anything not an IP is refused. */
function blockedReason(ip: string, policy: SsrfPolicy): string | null {
  if (policy.allowPrivate) return null;
  const parsed = parseAddress(ip);
  if (parsed === null) return 'not an IP';
  if (isAllowedAddress(parsed, policy)) return null;
  return classify(parsed);
}

/**
 * Whether a callback may not connect to `ip` (v4 or v6, brackets and zone id tolerated) under
 * `policy`: loopback, private, link-local, CGNAT, unique-local, multicast, unspecified, reserved,
 * documentation and benchmarking ranges, and IPv6 forms carrying such an IPv4 address. Pure.
 */
export function isBlockedAddress(ip: string, policy: SsrfPolicy): boolean {
  return blockedReason(ip, policy) !== null;
}

function isLocalhostName(host: string): boolean {
  return host === 'localhost' || host.endsWith('.localhost');
}

/**
 * The early check at `POST /webhook`: refuses a host that is a blocked literal address or the
 * name `localhost` (`*.localhost` too). Other names pass here; they are checked on connection.
 */
export function checkCallbackUrl(
  url: URL,
  policy: SsrfPolicy,
): { allowed: true } | { allowed: false; reason: string } {
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    return { allowed: false, reason: `the scheme ${url.protocol.slice(0, -1)} is not http or https` };
  }
  if (policy.allowPrivate) return { allowed: true };
  const host = normaliseHostname(url.hostname);
  const { verdicts } = compile(policy);
  let reason = verdicts.get(host);
  if (reason === undefined) {
    reason = hostVerdict(host, policy);
    if (verdicts.size >= VERDICT_CACHE_SIZE) verdicts.clear();
    verdicts.set(host, reason);
  }
  return reason === null
    ? { allowed: true }
    : { allowed: false, reason: `the host ${url.hostname} is a ${reason}` };
}

/** Why a callback may not go to `host` (normalised), or `null` when it may. */
function hostVerdict(host: string, policy: SsrfPolicy): string | null {
  if (isAllowedName(host, compile(policy).names)) return null;
  if (parseAddress(host) !== null) {
    const reason = blockedReason(host, policy);
    return reason === null ? null : `${reason} address`;
  }
  return isLocalhostName(host) ? 'loopback name' : null;
}

/** The resolver a guarded lookup asks: `dns.lookup` with `all: true`, or a stand-in for tests. */
export type BaseLookup = (
  hostname: string,
  options: LookupAllOptions,
  callback: (error: NodeJS.ErrnoException | null, addresses: LookupAddress[]) => void,
) => void;

/**
 * A `lookup` for the callback agent's `connect` options. It resolves every address of the name
 * and fails with a `CallbackForbiddenError` (`code` `ERR_CALLBACK_FORBIDDEN`) when any of them is
 * blocked, unless the name itself is allow-listed. Refusing on any blocked answer, not only the
 * first, matters because Node may try each address in turn (happy eyeballs).
 */
export function createGuardedLookup(policy: SsrfPolicy, baseLookup: BaseLookup = dnsLookup): LookupFunction {
  return (hostname: string, options: LookupOptions, callback) => {
    const { all, ...rest } = options;
    baseLookup(hostname, { ...rest, all: true }, (error, addresses) => {
      if (error) {
        callback(error, all ? [] : '', undefined);
        return;
      }
      if (!policy.allowPrivate && !isAllowedName(normaliseHostname(hostname), compile(policy).names)) {
        for (const { address } of addresses) {
          const reason = blockedReason(address, policy);
          if (reason !== null) {
            const forbidden = new CallbackForbiddenError(
              `Callback target forbidden: ${hostname} resolves to ${address}, a ${reason} address`,
              hostname,
              address,
            );
            callback(forbidden, all ? [] : '', undefined);
            return;
          }
        }
      }
      if (all) {
        callback(null, addresses);
        return;
      }
      const first = addresses[0];
      if (first === undefined) {
        const notFound: NodeJS.ErrnoException = Object.assign(
          new Error(`getaddrinfo ENOTFOUND ${hostname}`),
          {
            code: 'ENOTFOUND',
          },
        );
        callback(notFound, '', undefined);
        return;
      }
      callback(null, first.address, first.family);
    });
  };
}
