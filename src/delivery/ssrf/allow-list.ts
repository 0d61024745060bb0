/**
 * Which callback targets are let through: the policy built from `CALLBACK_ALLOW_PRIVATE` and
 * `CALLBACK_ALLOWED_HOSTS` (host names, `*.` wildcards, addresses and CIDR ranges), and the pure
 * verdict on one address under it.
 */
import { BlockList } from 'node:net';
import { classify, embeddedIpv4, type ParsedAddress, parseAddress } from './address-ranges.js';

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

interface CompiledAllowList {
  names: ReadonlySet<string>;
  addresses: BlockList;
}

/** Whether `host` (normalised) is an allow-listed name, exactly or under a `*.` entry. */
function isAllowedName(host: string, names: ReadonlySet<string>): boolean {
  if (names.has(host)) return true;
  for (let dot = host.indexOf('.'); dot !== -1; dot = host.indexOf('.', dot + 1)) {
    if (names.has(`*${host.slice(dot)}`)) return true;
  }
  return false;
}

export function normaliseHostname(hostname: string): string {
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
    compiled = { names, addresses };
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
export function blockedReason(ip: string, policy: SsrfPolicy): string | null {
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

/** Whether `host` (normalised) is an allow-listed name of `policy`, exactly or under a `*.` entry. */
export function isAllowedHost(host: string, policy: SsrfPolicy): boolean {
  return isAllowedName(host, compile(policy).names);
}
