import { describe, expect, it } from 'vitest';
import { inspectHttpUrl, isHttpUrl } from './inspect-http-url.js';

describe('inspectHttpUrl', () => {
  it('accepts absolute http and https URLs with a host', () => {
    for (const url of [
      'https://example.com/callback',
      'http://web:8000/callback',
      'HTTPS://EXAMPLE.COM',
      'https://user:pw@example.com:443/a?b=c#d',
      'http://[2001:db8::1]:8080/',
      'https://пример.рф/cb',
    ]) {
      expect(inspectHttpUrl(url), url).toBeNull();
      expect(isHttpUrl(url)).toBe(true);
    }
  });

  it('names what is wrong the way pydantic does', () => {
    expect(inspectHttpUrl('')).toEqual({ type: 'url_parsing', error: 'input is empty' });
    expect(inspectHttpUrl('hйцуttp://web:8000/callback')).toEqual({
      type: 'url_parsing',
      error: 'relative URL without a base',
    });
    expect(inspectHttpUrl('/callback')).toEqual({
      type: 'url_parsing',
      error: 'relative URL without a base',
    });
    expect(inspectHttpUrl('example.com/callback')).toEqual({
      type: 'url_parsing',
      error: 'relative URL without a base',
    });
    expect(inspectHttpUrl('http://')).toEqual({ type: 'url_parsing', error: 'empty host' });
    expect(inspectHttpUrl('http://:80/cb')).toEqual({ type: 'url_parsing', error: 'empty host' });
    expect(inspectHttpUrl('http://example.com:99999/')).toEqual({
      type: 'url_parsing',
      error: 'invalid port number',
    });
    expect(inspectHttpUrl('http://example.com:8a/')).toEqual({
      type: 'url_parsing',
      error: 'invalid port number',
    });
    expect(inspectHttpUrl('http://[::1/')).toEqual({ type: 'url_parsing', error: 'invalid IPv6 address' });
    expect(inspectHttpUrl('http://exa mple.com/')).toEqual({
      type: 'url_parsing',
      error: 'invalid domain character',
    });
    for (const url of [
      'ftp://example.com/cb',
      'mailto:a@example.com',
      'file:///etc/passwd',
      'javascript:alert(1)',
    ]) {
      expect(inspectHttpUrl(url), url).toEqual({ type: 'url_scheme' });
      expect(isHttpUrl(url)).toBe(false);
    }
  });
});
