/**
 * The early check at `POST /webhook` (SPEC §6): a callback URL whose host is a refused literal
 * address or the name `localhost` is answered 422. Names are checked again on every connection
 * (`guarded-lookup.ts`), against the addresses they resolve to.
 */
import { parseAddress } from './address-ranges.js';
import { blockedReason, isAllowedHost, normaliseHostname, type SsrfPolicy } from './allow-list.js';

/** Hosts whose verdict is kept per policy; the cache starts afresh when full. */
const VERDICT_CACHE_SIZE = 1024;

/** Verdicts by normalised host, per policy: a service sees the same few hosts again and again. */
const verdictsByPolicy = new WeakMap<SsrfPolicy, Map<string, string | null>>();

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
  let verdicts = verdictsByPolicy.get(policy);
  if (verdicts === undefined) {
    verdicts = new Map();
    verdictsByPolicy.set(policy, verdicts);
  }
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
  if (isAllowedHost(host, policy)) return null;
  if (parseAddress(host) !== null) {
    const reason = blockedReason(host, policy);
    return reason === null ? null : `${reason} address`;
  }
  return isLocalhostName(host) ? 'loopback name' : null;
}
