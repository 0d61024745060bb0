/**
 * A callback's destination (SPEC §9): its origin as scheme, host and port, the port always
 * written (`https://example.com:443`), so one receiver has one name however its URLs are spelt.
 */
export function destinationOf(callbackUrl: string): string {
  try {
    const url = new URL(callbackUrl);
    const port = url.port !== '' ? url.port : url.protocol === 'https:' ? '443' : '80';
    return `${url.protocol}//${url.hostname}:${port}`;
  } catch {
    return '';
  }
}
