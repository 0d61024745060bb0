/**
 * The `lookup` of the callback HTTP agent (SPEC §6): every connection to a named host is checked
 * against the addresses it actually resolved to, so a DNS answer that changes between the early
 * check and the connection (DNS rebinding) cannot slip through.
 */
import { lookup as dnsLookup, type LookupAddress, type LookupAllOptions, type LookupOptions } from 'node:dns';
import type { LookupFunction } from 'node:net';
import { AppError, ERROR_CODES } from '../../shared/errors.js';
import { blockedReason, isAllowedHost, normaliseHostname, type SsrfPolicy } from './allow-list.js';

/** The `code` of the error a guarded lookup fails with. */
export const CALLBACK_FORBIDDEN_CODE = ERROR_CODES.callbackForbidden;

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
      if (!policy.allowPrivate && !isAllowedHost(normaliseHostname(hostname), policy)) {
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
