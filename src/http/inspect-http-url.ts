/**
 * The callback URL check of the server's Ajv (`format: 'uri'`): an absolute http or https URL
 * with a host, and, when it is not one, what is wrong with it in pydantic's terms, for the 422.
 */

/**
 * What is wrong with a callback URL, in pydantic's terms, or `null` for an absolute http(s)
 * URL with a host. The texts after "Input should be a valid URL, " follow the WHATWG/`url`
 * crate errors pydantic reports.
 */
export function inspectHttpUrl(
  text: string,
): null | { type: 'url_parsing'; error: string } | { type: 'url_scheme' } {
  const trimmed = text.trim();
  if (trimmed === '') return { type: 'url_parsing', error: 'input is empty' };
  let url: URL | null = null;
  try {
    url = new URL(trimmed);
  } catch {
    // classified below
  }
  const scheme = /^([a-zA-Z][a-zA-Z0-9+.-]*):/.exec(trimmed)?.[1]?.toLowerCase();
  if (scheme === undefined) return { type: 'url_parsing', error: 'relative URL without a base' };
  if (url !== null) {
    if (url.protocol !== 'http:' && url.protocol !== 'https:') return { type: 'url_scheme' };
    return url.hostname === '' ? { type: 'url_parsing', error: 'empty host' } : null;
  }
  if (scheme !== 'http' && scheme !== 'https') return { type: 'url_scheme' };
  const authority = /^[a-zA-Z]+:[/\\]*([^/\\?#]*)/.exec(trimmed)?.[1] ?? '';
  const host = authority.slice(authority.lastIndexOf('@') + 1);
  if (host === '' || host.startsWith(':')) return { type: 'url_parsing', error: 'empty host' };
  if (host.startsWith('[')) return { type: 'url_parsing', error: 'invalid IPv6 address' };
  if (/:[^:]*$/.test(host) && !/:\d{0,5}$/.test(host))
    return { type: 'url_parsing', error: 'invalid port number' };
  if (/:\d+$/.test(host) && Number(host.slice(host.lastIndexOf(':') + 1)) > 65535) {
    return { type: 'url_parsing', error: 'invalid port number' };
  }
  return { type: 'url_parsing', error: 'invalid domain character' };
}

/** The `format: 'uri'` check of the server's Ajv. */
export function isHttpUrl(text: string): boolean {
  return inspectHttpUrl(text) === null;
}
