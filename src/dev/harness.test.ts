import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { freePort, waitFor } from './harness.js';

describe('waitFor', () => {
  it('resolves with the first value that is not false, null or undefined, sync or async', async () => {
    let calls = 0;
    expect(await waitFor(() => (++calls >= 3 ? 'ready' : undefined), 'three calls')).toBe('ready');
    expect(calls).toBe(3);
    expect(await waitFor(async () => 0, 'a zero')).toBe(0);
    expect(await waitFor(() => true, 'true')).toBe(true);
  });

  it('rejects naming what it waited for once the timeout has passed', async () => {
    let seen = 0;
    await expect(
      waitFor(
        () => {
          seen += 1;
          return false;
        },
        () => `a miracle after ${seen} checks`,
        { timeoutMs: 50, intervalMs: 5 },
      ),
    ).rejects.toThrow(/^timed out after 50 ms waiting for a miracle after \d+ checks$/);
    expect(seen).toBeGreaterThan(1);
  });

  it('rejects at once with what the check throws', async () => {
    const failure = new Error('broken');
    await expect(waitFor(() => Promise.reject(failure), 'anything', { timeoutMs: 60_000 })).rejects.toBe(
      failure,
    );
  });
});

describe('freePort', () => {
  it('answers a port a server can listen on', async () => {
    const port = await freePort();
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', resolve);
    });
    await new Promise((resolve) => server.close(resolve));
  });
});
