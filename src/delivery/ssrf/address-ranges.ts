/**
 * The address ranges a callback may never reach (SPEC §6), in IPv4, IPv6 and the IPv6 forms that
 * carry an IPv4 address, and the parsing of one address. Pure: no I/O, no policy.
 */
import { BlockList, isIP } from 'node:net';

export type Family = 'ipv4' | 'ipv6';
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

export interface ParsedAddress {
  address: string;
  family: Family;
}

/** Strips brackets and a zone id (`fe80::1%eth0`); `null` when what is left is not an IP address. */
export function parseAddress(text: string): ParsedAddress | null {
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
export function embeddedIpv4(address: string): Embedded | null {
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
export function classify(parsed: ParsedAddress): string | null {
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
