/**
 * A bad configuration stops every role at start-up the same way (SPEC §7): one line on stderr
 * naming the variable and the form it takes, no stack trace, and a non-zero exit, before any
 * connection is made or any request is served.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { type StartServiceOptions, startService } from '../support/start-service.js';

/** Starts the service; a process that did not stop of its own is SIGKILLed after the test. */
async function startDoomed(options: StartServiceOptions) {
  const service = await startService(options);
  onTestFinished(async () => {
    await service.kill('SIGKILL');
  });
  return service;
}

// Nothing listens here: a role that got past its configuration would not stop at once.
const UNUSED_REDIS = 'redis://127.0.0.1:1';

const cases: ReadonlyArray<{ role: 'all' | 'api' | 'worker'; mode: string; env: Record<string, string> }> = [
  { role: 'all', mode: 'embedded', env: {} },
  { role: 'all', mode: 'redis', env: { REDIS_URL: UNUSED_REDIS } },
  { role: 'api', mode: 'redis', env: { REDIS_URL: UNUSED_REDIS } },
  {
    role: 'worker',
    mode: 'redis, outbound thread on',
    env: { REDIS_URL: UNUSED_REDIS, OUTBOUND_THREAD: 'on' },
  },
  {
    role: 'worker',
    mode: 'redis, outbound thread off',
    env: { REDIS_URL: UNUSED_REDIS, OUTBOUND_THREAD: 'off' },
  },
];

describe.each(cases)('role $role ($mode)', ({ role, env }) => {
  it('stops with one line naming CALLBACK_ALLOWED_HOSTS when an entry is malformed', async () => {
    const service = await startDoomed({
      role,
      env: { ...env, CALLBACK_ALLOWED_HOSTS: 'hooks.example,10.0.0.0/99' },
      waitReady: false,
    });
    const { code } = await service.exited;
    expect(code).toBe(1);
    const lines = service.stderr.join('').trimEnd().split('\n');
    expect(lines).toEqual([
      'CALLBACK_ALLOWED_HOSTS="10.0.0.0/99" is invalid: expected comma-separated host names, IP addresses or CIDR ranges such as example.com,*.svc.local,203.0.113.0/24',
    ]);
    expect(service.logs.filter((line) => line.msg === 'worker started' || line.msg === 'listening')).toEqual(
      [],
    );
  });
});

describe.each(['api', 'worker'] as const)('role %s without REDIS_URL', (role) => {
  it('stops with one line saying the role needs REDIS_URL', async () => {
    const service = await startDoomed({ role, env: {}, waitReady: false });
    const { code } = await service.exited;
    expect(code).toBe(1);
    expect(service.stderr.join('').trimEnd().split('\n')).toEqual([
      `Role "${role}" needs REDIS_URL: without it the service runs as one process (role "all")`,
    ]);
  });
});
