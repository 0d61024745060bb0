/**
 * Secrets never reach a log line, and message texts only at debug (SPEC §6). The whole service
 * runs in-process with its log captured, through full tasks: a signed delivery, an LLM 401
 * whose answer echoes the key (whole and masked), a callback that keeps failing, a callback
 * refused by the SSRF guard, and requests with good and bad Authorization headers.
 */
import type { LookupFunction } from 'node:net';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CallbackReceiver, startCallbackReceiver } from '../../test/support/callback-receiver.js';
import { postWebhook, startInProcessApp, waitForTask } from '../../test/support/in-process-app.js';
import { type MockLlm, startMockLlm } from '../dev/mock-llm.js';
import { redactApiKey } from '../llm/llm-client.js';
import type { LogLevel } from '../shared/logger.js';
import { createLogger } from '../shared/logger.js';

const API_KEY = 'Zq7vKEYxW2pLm9Rt5vNb8YhG';
const TOKEN_A = 'TkA4nQ8wEr2ZpV6sLd1Xc9Bm';
const TOKEN_B = 'TkB7mJ3hYf5UaK0oPi4Wq8Ne';
const SECRET_BYTES = 'WhS3cRet-Gv9Lq2Tz7Kp4Xm8';
const SECRET_PAYLOAD = Buffer.from(SECRET_BYTES).toString('base64');
const WEBHOOK_SECRET = `whsec_${SECRET_PAYLOAD}`;

/** Every form a secret could leak in: whole, base64, and any 8-character piece of it. */
function leakForms(): string[] {
  const forms = new Set<string>([WEBHOOK_SECRET, SECRET_PAYLOAD]);
  for (const secret of [API_KEY, TOKEN_A, TOKEN_B, SECRET_BYTES]) {
    forms.add(secret);
    forms.add(Buffer.from(secret).toString('base64'));
    forms.add(Buffer.from(`Bearer ${secret}`).toString('base64'));
    for (let i = 0; i + 8 <= secret.length; i++) forms.add(secret.slice(i, i + 8));
  }
  for (let i = 0; i + 12 <= SECRET_PAYLOAD.length; i++) forms.add(SECRET_PAYLOAD.slice(i, i + 12));
  return [...forms];
}

let llm: MockLlm;
let receiver: CallbackReceiver;

beforeAll(async () => {
  // The mock checks the key, so a wrong or missing Authorization to the LLM would show.
  llm = await startMockLlm({ apiKey: API_KEY });
  receiver = await startCallbackReceiver();
});

afterAll(async () => {
  await llm.close();
  await receiver.close();
});

/** `refused.example.test` resolves to a private address, so its delivery is refused before connecting. */
const fakeDns: LookupFunction = (hostname, options, callback) => {
  if (options.all) callback(null, [{ address: '10.0.0.5', family: 4 }]);
  else callback(null, '10.0.0.5', 4);
  expect(hostname).toBe('refused.example.test');
};

interface Run {
  raw: string;
  lines: Array<Record<string, unknown>>;
  messages: string[];
}

/** Runs the whole scenario at `level`; returns every byte logged and the message texts used. */
async function runScenario(level: LogLevel): Promise<Run> {
  let raw = '';
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      raw += chunk.toString('utf8');
      callback();
    },
  });
  const service = await startInProcessApp(
    {
      // The fake resolver keeps LLM calls and callbacks in this thread, whatever this says.
      OUTBOUND_THREAD: 'off',
      LOG_LEVEL: level,
      API_KEY,
      API_TOKENS: `${TOKEN_A},${TOKEN_B}`,
      WEBHOOK_SECRET,
      LLM_BASE_URL: llm.url,
      LLM_RETRY_SCHEDULE: '20ms',
      CALLBACK_RETRY_SCHEDULE: '20ms',
      CALLBACK_ALLOWED_HOSTS: '127.0.0.1',
      SYSTEM_PROMPT: 'sysprompt-text-Qx81',
    },
    { logger: createLogger(level, sink), overrides: { lookup: fakeDns } },
  );
  const base = service.url;
  const asA = { authorization: `Bearer ${TOKEN_A}` };
  const asB = { authorization: `Bearer ${TOKEN_B}` };
  const tag = `${level}-${Date.now().toString(36)}`;
  const messages: string[] = [];
  const submit = async (
    headers: Record<string, string>,
    callbackPath: string,
    statuses: readonly string[],
    callbackUrl = `${receiver.url}${callbackPath}`,
  ) => {
    const message = `msgtext-${messages.length}-${tag}-Hj4`;
    messages.push(message);
    const { status, json } = await postWebhook(
      base,
      { message, callback_url: callbackUrl, metadata: { n: messages.length } },
      headers,
    );
    expect(status).toBe(200);
    const task = await waitForTask(base, json.task_id as string, statuses, headers);
    return { taskId: json.task_id as string, task };
  };

  try {
    // 1. A completed task, signed delivery, then a redelivery.
    const ok = await submit(asA, '/ok', ['completed']);
    expect(
      (await fetch(`${base}/tasks/${ok.taskId}/redeliver`, { method: 'POST', headers: asA })).status,
    ).toBe(202);

    // 2. The LLM refuses the key and echoes it back, whole and masked.
    llm.script([
      {
        status: 401,
        body: {
          error: { message: `Incorrect API key provided: ${API_KEY}. Find your key at ...`, code: 401 },
        },
      },
    ]);
    const echoed = await submit(asB, '/llm-401', ['failed']);
    expect(echoed.task.error?.type).toBe('llm_auth');
    // Nor does the key reach the task record or the client's callback.
    expect(JSON.stringify(echoed.task)).not.toContain(API_KEY);
    const failureCallback = await receiver.waitFor((entry) => entry.json?.task_id === echoed.taskId);
    expect(failureCallback.json?.error).toMatchObject({ type: 'llm_auth' });
    expect(failureCallback.body).not.toContain(API_KEY);
    llm.script([
      {
        status: 401,
        body: {
          error: {
            message: `Incorrect API key provided: ${API_KEY.slice(0, 8)}****************${API_KEY.slice(-4)}.`,
          },
        },
      },
    ]);
    const masked = await submit(asA, '/llm-401-masked', ['failed']);
    expect(masked.task.error?.message).toContain('[redacted]');

    // 3. A callback target that keeps failing, and one the SSRF guard refuses.
    receiver.script([500, 503]);
    const failing = await submit(asA, '/failing', ['failed']);
    expect(failing.task.error?.type).toBe('callback_failed');
    const refused = await submit(asB, '', ['failed'], 'http://refused.example.test/hook');
    expect(refused.task.deliveries[0]?.error).toMatch(/private/);

    // 4. Requests with bad credentials, and credentials sent where none are needed.
    for (const authorization of [
      `Bearer ${TOKEN_A}x`,
      `Basic ${Buffer.from(`u:${TOKEN_B}`).toString('base64')}`,
    ]) {
      expect((await fetch(`${base}/tasks/${ok.taskId}`, { headers: { authorization } })).status).toBe(401);
    }
    const toReceiver = await fetch(`${base}/callback`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...asB, cookie: `session=${TOKEN_B}` },
      body: JSON.stringify({ generated_response: `callback-text-${tag}`, task_id: ok.taskId }),
    });
    expect(toReceiver.status).toBe(200);
    messages.push(`callback-text-${tag}`);
    expect((await fetch(`${base}/metrics`, { headers: asA })).status).toBe(200);

    // Every delivery that was meant to reach the receiver was signed.
    const signed = receiver.received.filter((entry) => entry.json?.task_id === ok.taskId);
    expect(signed.length).toBeGreaterThanOrEqual(2);
    for (const entry of signed) expect(entry.headers['webhook-signature']).toMatch(/^v1,/);
  } finally {
    await service.close();
    llm.reset();
    receiver.reset();
  }

  const lines = raw
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as Record<string, unknown>);
  return { raw, lines, messages };
}

describe('log capture', () => {
  it('keeps every secret out of a debug log of full tasks, and message texts in debug lines only', async () => {
    const { raw, lines, messages } = await runScenario('debug');
    expect(lines.length).toBeGreaterThan(20);
    // The run logged what it should: task lines, the failures, and debug lines with the texts.
    expect(lines.some((line) => line.msg === 'callback delivered')).toBe(true);
    expect(lines.some((line) => String(line.msg).startsWith('task failed'))).toBe(true);
    expect(lines.some((line) => line.msg === 'callback refused; not retried')).toBe(true);

    const leaks = leakForms().filter((form) => raw.includes(form));
    expect(leaks).toEqual([]);
    expect(raw).not.toMatch(/Bearer\s+T/);

    for (const message of messages) {
      const carrying = lines.filter((line) => JSON.stringify(line).includes(message));
      expect(carrying.length, message).toBeGreaterThan(0);
      expect(
        carrying.filter((line) => line.level !== 'debug').map((line) => line.msg),
        message,
      ).toEqual([]);
    }
    console.log(
      `logs: ${lines.length} lines at LOG_LEVEL=debug checked against ${leakForms().length} secret forms`,
    );
  });

  it('logs no message text at all at info', async () => {
    const { raw, lines, messages } = await runScenario('info');
    expect(lines.some((line) => line.msg === 'task accepted')).toBe(true);
    expect(lines.every((line) => line.level !== 'debug')).toBe(true);
    expect(leakForms().filter((form) => raw.includes(form))).toEqual([]);
    expect(messages.filter((message) => raw.includes(message))).toEqual([]);
    expect(raw).not.toContain('sysprompt-text-Qx81');
  });
});

describe('redactApiKey', () => {
  it('removes the key whole, cut short or masked, and leaves other words alone', () => {
    const key = 'sk-or-v1-0123456789abcdef';
    expect(redactApiKey(`Incorrect API key provided: ${key}.`, key)).toBe(
      'Incorrect API key provided: [redacted].',
    );
    expect(redactApiKey(`bad key ${key.slice(0, 14)}, try again`, key)).toBe('bad key [redacted], try again');
    expect(redactApiKey('key sk-or-v1-01******cdef is invalid', key)).toBe('key [redacted] is invalid');
    expect(redactApiKey('401 Unauthorized: no auth credentials found', key)).toBe(
      '401 Unauthorized: no auth credentials found',
    );
  });
});
