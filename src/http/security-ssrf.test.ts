/**
 * The callback SSRF guard end to end (SPEC §6), through the whole service in-process: literal
 * private targets refused at `POST /webhook`; a name whose DNS answer is private refused at
 * delivery, recorded, not retried, and never connected to; the allow-list and
 * `CALLBACK_ALLOW_PRIVATE` letting private targets through.
 */
import { lookup as systemLookup } from 'node:dns';
import { once } from 'node:events';
import { type AddressInfo, createServer, type LookupFunction, type Server } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postWebhook, startTestApp, useUpstreams, waitForTask } from '../../test/support/in-process-app.js';

const { llm, receiver } = useUpstreams();
/** A plain TCP listener that only counts connections: nothing may ever reach it. */
let trap: Server;
let trapConnections = 0;

beforeAll(async () => {
  trap = createServer((socket) => {
    trapConnections += 1;
    socket.destroy();
  });
  trap.listen(0, '127.0.0.1');
  await once(trap, 'listening');
});

afterAll(async () => {
  await new Promise((resolve) => trap.close(resolve));
});

const trapPort = (): number => (trap.address() as AddressInfo).port;
const receiverPort = (): number => Number(new URL(receiver.url).port);

/** A resolver that answers `answers[name]` for the names it knows and asks the system for the rest. */
function fakeDns(answers: Record<string, string>): LookupFunction & { asked: string[] } {
  const asked: string[] = [];
  const lookup: LookupFunction = (hostname, options, callback) => {
    const address = answers[hostname];
    if (address === undefined) {
      systemLookup(hostname, options, callback);
      return;
    }
    asked.push(hostname);
    const family = address.includes(':') ? 6 : 4;
    if (options.all) callback(null, [{ address, family }]);
    else callback(null, address, family);
  };
  return Object.assign(lookup, { asked });
}

async function start(env: Record<string, string> = {}, lookup?: LookupFunction): Promise<string> {
  const app = await startTestApp(
    {
      API_KEY: 'test-key',
      LLM_BASE_URL: llm.url,
      LLM_RETRY_SCHEDULE: '50ms',
      CALLBACK_RETRY_SCHEDULE: '50ms,50ms,50ms',
      CALLBACK_TIMEOUT_MS: '5000',
      ...env,
    },
    lookup === undefined ? {} : { overrides: { lookup } },
  );
  return app.url;
}

/** Literal and `localhost` targets, in the forms a URL can spell them. */
const FORBIDDEN_TARGETS = [
  'http://169.254.169.254/latest/meta-data/',
  'http://localhost:9/',
  'https://169.254.169.254:443/latest/api/token',
  'http://[::ffff:169.254.169.254]/',
  'http://[::ffff:a9fe:a9fe]/',
  'http://169.254.169.254./',
  'http://0xa9fea9fe/',
  'http://2852039166/',
  'http://0251.0376.0251.0376/',
  'http://127.0.0.1/',
  'http://127.1/',
  'http://0x7f.0.0.1/',
  'http://0177.0.0.1/',
  'http://2130706433/',
  'http://\uff11\uff12\uff17.\uff10.\uff10.\uff11/',
  'http://user:pass@127.0.0.1:8000/',
  'http://[::1]:8000/',
  'http://[0:0:0:0:0:0:0:1]/',
  'http://[::ffff:127.0.0.1]/',
  'http://[::]/',
  'http://0.0.0.0:8000/',
  'http://0/',
  'http://10.0.0.1/',
  'http://172.16.5.4/',
  'http://192.168.0.1/',
  'http://100.64.0.1/',
  'http://[fd00::1]/',
  'http://[fe80::1]/',
  'http://224.0.0.251/',
  'http://255.255.255.255/',
  'http://LOCALHOST/',
  'http://localhost./',
  'http://api.localhost/',
];

describe('callback targets refused at POST /webhook', () => {
  it(`answers 422 callback_url_forbidden for ${FORBIDDEN_TARGETS.length} literal and localhost forms`, async () => {
    const base = await start();
    const accepted: string[] = [];
    for (const target of FORBIDDEN_TARGETS) {
      const { status, json } = await postWebhook(base, { message: 'hi', callback_url: target });
      if (status !== 422) {
        accepted.push(`${target} → ${status}`);
        continue;
      }
      expect(json.detail, target).toEqual([
        expect.objectContaining({
          type: 'callback_url_forbidden',
          loc: ['body', 'callback_url'],
          input: target,
        }),
      ]);
    }
    expect(accepted).toEqual([]);
    console.log(`ssrf: ${FORBIDDEN_TARGETS.length} literal/localhost callback targets refused with 422`);
    // Nothing was queued, so nothing reached the LLM.
    expect(llm.requests).toHaveLength(0);
  });
});

describe('a name that resolves to a private address', () => {
  it('fails the task at delivery with the reason recorded, no retry, and no connection', async () => {
    const dns = fakeDns({ 'hooks.example.test': '127.0.0.1' });
    const base = await start({}, dns);
    const callbackUrl = `http://hooks.example.test:${trapPort()}/hook`;
    const { status, json } = await postWebhook(base, { message: 'hi', callback_url: callbackUrl });
    // A name passes the early check: only its answer at connection time can tell.
    expect(status).toBe(200);
    const taskId = json.task_id as string;

    const task = await waitForTask(base, taskId, ['completed', 'failed']);
    expect(task.status).toBe('failed');
    expect(task.error).toEqual({ type: 'callback_failed', message: expect.stringMatching(/127\.0\.0\.1/) });
    expect(task.attempts.callback).toBe(1);
    expect(task.deliveries).toHaveLength(1);
    expect(task.deliveries[0]).toEqual({
      at: expect.any(String),
      error: expect.stringMatching(/hooks\.example\.test resolves to 127\.0\.0\.1, a loopback address/),
      duration_ms: expect.any(Number),
    });
    // The reply itself was produced: only its delivery was refused.
    expect(task.generated_response).toEqual(expect.any(String));
    expect(dns.asked).toEqual(['hooks.example.test']);
    expect(trapConnections).toBe(0);
  });

  it('refuses a metadata-address answer the same way', async () => {
    const dns = fakeDns({ 'metadata.example.test': '169.254.169.254' });
    const base = await start({}, dns);
    const { json } = await postWebhook(base, {
      message: 'hi',
      callback_url: 'http://metadata.example.test/latest/meta-data/',
    });
    const task = await waitForTask(base, json.task_id as string, ['completed', 'failed']);
    expect(task.status).toBe('failed');
    expect(task.deliveries).toEqual([
      expect.objectContaining({ error: expect.stringMatching(/169\.254\.169\.254, a link-local address/) }),
    ]);
  });

  it('delivers to the same name when a CIDR of CALLBACK_ALLOWED_HOSTS holds its answer', async () => {
    const dns = fakeDns({ 'hooks.example.test': '127.0.0.1' });
    const base = await start({ CALLBACK_ALLOWED_HOSTS: '127.0.0.0/8' }, dns);
    const { json } = await postWebhook(base, {
      message: 'hi',
      callback_url: `http://hooks.example.test:${receiverPort()}/by-name`,
    });
    const task = await waitForTask(base, json.task_id as string, ['completed', 'failed']);
    expect(task.status).toBe('completed');
    expect(receiver.received.map((entry) => entry.path)).toEqual(['/by-name']);
  });
});

describe('letting a private target through', () => {
  it('accepts and delivers to a private literal inside a CIDR of CALLBACK_ALLOWED_HOSTS, and only inside it', async () => {
    const base = await start({ CALLBACK_ALLOWED_HOSTS: 'example.org,127.0.0.0/8' });
    const { status, json } = await postWebhook(base, {
      message: 'hi',
      callback_url: `http://127.0.0.1:${receiverPort()}/cidr`,
    });
    expect(status).toBe(200);
    const task = await waitForTask(base, json.task_id as string, ['completed', 'failed']);
    expect(task.status).toBe('completed');
    expect(receiver.received.map((entry) => entry.path)).toEqual(['/cidr']);

    const outside = await postWebhook(base, { message: 'hi', callback_url: 'http://10.0.0.1/' });
    expect(outside.status).toBe(422);
    const metadata = await postWebhook(base, { message: 'hi', callback_url: 'http://169.254.169.254/' });
    expect(metadata.status).toBe(422);
  });

  it('accepts and delivers to any private target with CALLBACK_ALLOW_PRIVATE=true', async () => {
    const base = await start({ CALLBACK_ALLOW_PRIVATE: 'true' });
    // Only loopback targets here: no test traffic leaves 127.0.0.1.
    for (const target of [
      `http://127.0.0.1:${receiverPort()}/open`,
      `http://localhost:${receiverPort()}/local`,
    ]) {
      const { status, json } = await postWebhook(base, { message: 'hi', callback_url: target });
      expect(status, target).toBe(200);
      const task = await waitForTask(base, json.task_id as string, ['completed', 'failed']);
      expect(task.status, target).toBe('completed');
    }
    expect(receiver.received.map((entry) => entry.path).sort()).toEqual(['/local', '/open']);
  });
});
