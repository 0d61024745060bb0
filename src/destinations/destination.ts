/** A callback URL's destination: its origin with the port always written (`https://host:443`). */
export function destinationOf(callbackUrl: string): string {
  const url = new URL(callbackUrl);
  const port = url.port !== '' ? url.port : url.protocol === 'https:' ? '443' : '80';
  return `${url.protocol}//${url.hostname}:${port}`;
}
