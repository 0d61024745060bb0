/**
 * Secrets never logged, as a real process (SPEC §6): everything the service writes to stdout and
 * stderr, start-up and shutdown included, at LOG_LEVEL=debug, through a delivered task, an LLM
 * 401 that echoes the key, a callback that keeps failing and requests with bad credentials.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type MockLlm, startMockLlm } from '../../src/dev/mock-llm.js';
import { type CallbackReceiver, startCallbackReceiver } from '../support/callback-receiver.js';
import { postWebhook, waitForTask } from '../support/in-process-app.js';
import { startService } from '../support/start-service.js';

const API_KEY = 'Pk5rLiveKeyQw8ZxN3vHt7Ya';
const TOKEN = 'TkProc9sJd2LfW6qRz4Mx1Vb';
const SECRET_BYTES = 'PrcS3cRet-Hb7Nk1Wz5Qy9Ld';
const SECRET_PAYLOAD = Buffer.from(SECRET_BYTES).toString('base64');
const WEBHOOK_SECRET = `whsec_${SECRET_PAYLOAD}`;

let llm: MockLlm;
let receiver: CallbackReceiver;
let dir: string;

beforeAll(async () => {
  llm = await startMockLlm({ apiKey: API_KEY });
  receiver = await startCallbackReceiver();
  dir = mkdtempSync(join(tmpdir(), 'llm-webhook-e2e-logs-'));
});

afterAll(async () => {
  await llm.close();
  await receiver.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('the real process', () => {
  it('writes no secret to stdout or stderr at debug, and message texts only in debug lines', async () => {
    const service = await startService({
      env: {
        DATA_DIR: dir,
        LOG_LEVEL: 'debug',
        API_KEY,
        API_TOKENS: TOKEN,
        WEBHOOK_SECRET,
        LLM_BASE_URL: llm.url,
        LLM_RETRY_SCHEDULE: '50ms',
        CALLBACK_ALLOWED_HOSTS: '127.0.0.1',
        CALLBACK_RETRY_SCHEDULE: '50ms',
      },
    });
    const auth = { authorization: `Bearer ${TOKEN}` };
    const messages = ['proc-msgtext-ok-Ur5', 'proc-msgtext-401-Ur5', 'proc-msgtext-cbfail-Ur5'];
    try {
      const ok = await postWebhook(
        service.url,
        { message: messages[0], callback_url: `${receiver.url}/ok` },
        auth,
      );
      await waitForTask(service.url, ok.json.task_id as string, ['completed'], auth);

      llm.script([{ status: 401, body: { error: { message: `Incorrect API key provided: ${API_KEY}` } } }]);
      const refused = await postWebhook(
        service.url,
        { message: messages[1], callback_url: `${receiver.url}/401` },
        auth,
      );
      await waitForTask(service.url, refused.json.task_id as string, ['failed'], auth);

      receiver.script([500, 500]);
      const failing = await postWebhook(
        service.url,
        { message: messages[2], callback_url: `${receiver.url}/fail` },
        auth,
      );
      await waitForTask(service.url, failing.json.task_id as string, ['failed'], auth);

      for (const authorization of [
        `Bearer ${TOKEN}0`,
        `Basic ${Buffer.from(`x:${TOKEN}`).toString('base64')}`,
      ]) {
        expect((await fetch(`${service.url}/metrics`, { headers: { authorization } })).status).toBe(401);
      }
    } finally {
      const exit = await service.kill('SIGTERM');
      expect(exit.code).toBe(0);
    }

    const output = JSON.stringify(service.logs) + service.stderr.join('');
    const forms = [API_KEY, TOKEN, SECRET_BYTES, SECRET_PAYLOAD, WEBHOOK_SECRET];
    for (const secret of [API_KEY, TOKEN, SECRET_BYTES]) {
      forms.push(Buffer.from(secret).toString('base64'));
      for (let i = 0; i + 8 <= secret.length; i++) forms.push(secret.slice(i, i + 8));
    }
    expect(forms.filter((form) => output.includes(form))).toEqual([]);
    expect(service.logs.some((line) => line.msg === 'callback delivered')).toBe(true);
    expect(service.logs.some((line) => String(line.msg).startsWith('task failed'))).toBe(true);
    expect(service.logs.some((line) => line.msg === 'callback retries spent')).toBe(true);
    for (const message of messages) {
      const carrying = service.logs.filter((line) => JSON.stringify(line).includes(message));
      expect(carrying.length, message).toBeGreaterThan(0);
      expect(
        carrying.every((line) => line.level === 'debug'),
        message,
      ).toBe(true);
    }
  });
});
