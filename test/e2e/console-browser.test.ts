/**
 * The operator console in a real browser (chromium through playwright-core) against the real
 * service: each view loads; tasks filter by status; a failed task is redelivered and its new
 * attempt appears; a conversation is erased; tokens are asked for, kept in sessionStorage and a
 * wrong one refused; in redis mode any API process shows the deployment's figures. Every page
 * makes requests to 127.0.0.1 only and logs no error or CSP violation.
 */
import { describe, expect, it } from 'vitest';
import { useBrowser } from '../support/browser.js';
import { startCallbackReceiver } from '../support/callback-receiver.js';
import { useDeployment } from '../support/deployment.js';
import { postWebhook } from '../support/in-process-app.js';

const { receiver, env, tempDir, freshRun, start } = useDeployment();
const browser = useBrowser();

const TOKEN_A = 'console-token-a-0123456789';
const TOKEN_B = 'console-token-b-0123456789';

async function accept(base: string, body: Record<string, unknown>, headers: Record<string, string> = {}) {
  const { status, json } = await postWebhook(base, { message: 'Hello there', ...body }, headers);
  expect(status, JSON.stringify(json)).toBe(200);
  return json.task_id as string;
}

async function taskStatus(
  base: string,
  taskId: string,
  headers: Record<string, string> = {},
): Promise<string> {
  const response = await fetch(`${base}/tasks/${taskId}`, { headers });
  return ((await response.json()) as { status: string }).status;
}

describe('operator console', () => {
  it('shows every view, filters tasks, redelivers a failed task and erases a conversation', async () => {
    const service = await start('all', env({ DATA_DIR: tempDir() }));
    const base = service.url;
    // The first callback is answered 410 Gone: its task ends failed at once.
    receiver.script([410]);
    const failed = await accept(base, {
      callback_url: `${receiver.url}/hook-a`,
      conversation_id: 'support-7',
    });
    await expect.poll(() => taskStatus(base, failed), { timeout: 20_000 }).toBe('failed');
    const ok = [
      await accept(base, { callback_url: `${receiver.url}/hook-b`, conversation_id: 'support-7' }),
      await accept(base, { callback_url: `${receiver.url}/hook-b`, conversation_id: 'sales-3' }),
    ];
    for (const id of ok) await expect.poll(() => taskStatus(base, id), { timeout: 20_000 }).toBe('completed');

    const view = await browser.open();
    const { page } = view;
    // A service without tokens says so on every view. Usage comes from an endpoint this service
    // may not offer: its view says so (a 404).
    view.allowHttpStatus(404);
    await page.goto(`${base}/console`);
    await expect.poll(() => page.getByTestId('total-accepted').textContent()).toBe('3');
    // The charts draw once their data has come (a moment after the totals).
    await expect.poll(() => page.locator('.chart canvas').count()).toBeGreaterThanOrEqual(3);
    await expect.poll(() => page.locator('.open-api').count()).toBe(1);
    await view.screenshot('overview');

    for (const [hash, heading] of [
      ['#/tasks', 'Tasks'],
      ['#/conversations', 'Conversations'],
      ['#/destinations', 'Destinations'],
      ['#/usage', 'Usage'],
    ] as const) {
      await page.goto(`${base}/console${hash}`);
      await page.getByRole('heading', { name: heading, exact: true }).waitFor();
      await page.locator('.open-api').waitFor();
    }
    await page.goto(`${base}/console#/tasks`);
    await expect.poll(() => page.locator('tr[data-task]').count()).toBe(3);

    // Filter by status, with the keyboard: the filter lands in the URL.
    await page.getByLabel('Status').selectOption('failed');
    await page.getByRole('button', { name: 'Apply' }).press('Enter');
    await expect.poll(() => page.url()).toContain('status=failed');
    await expect.poll(() => page.locator('tr[data-task]').count()).toBe(1);
    expect(await page.locator('tr[data-task]').getAttribute('data-task')).toBe(failed);
    // The link reloads to the same view.
    await page.reload();
    await expect.poll(() => page.locator('tr[data-task]').count()).toBe(1);

    // Open it: a failed task with one delivery; redeliver, and the new attempt appears.
    await page.locator(`tr[data-task="${failed}"] a`).click();
    await expect.poll(() => page.getByTestId('task-status').textContent()).toBe('failed');
    expect(await page.locator('li[data-delivery]').count()).toBe(1);
    await view.screenshot('task-failed');
    await page.getByRole('button', { name: 'Redeliver' }).click();
    await expect.poll(() => page.locator('li[data-delivery]').count(), { timeout: 20_000 }).toBe(2);
    await expect
      .poll(() => page.getByTestId('task-status').textContent(), { timeout: 20_000 })
      .toBe('completed');
    expect(await page.locator('li[data-delivery]').last().textContent()).toContain('HTTP 200');
    await view.screenshot('task-redelivered');

    // Erase a conversation, after a confirmation (Escape cancels it first).
    await page.goto(`${base}/console#/conversations`);
    await page.getByRole('link', { name: 'support-7' }).click();
    await expect.poll(() => page.locator('.thread .user').count()).toBe(2);
    await page.getByRole('button', { name: 'Erase conversation…' }).click();
    await page.locator('dialog[open]').waitFor();
    await page.keyboard.press('Escape');
    await page.locator('dialog[open]').waitFor({ state: 'detached' });
    const kept = await fetch(`${base}/conversations/support-7/messages`);
    expect(((await kept.json()) as { messages: unknown[] }).messages).toHaveLength(4);
    await page.getByRole('button', { name: 'Erase conversation…' }).click();
    await page.locator('dialog[open]').getByRole('button', { name: 'Erase' }).click();
    await expect.poll(() => page.url()).toMatch(/#\/conversations$/);
    await expect.poll(() => page.locator('tbody tr').count()).toBe(1);
    const history = await fetch(`${base}/conversations/support-7/messages`);
    expect(((await history.json()) as { messages: unknown[] }).messages).toEqual([]);

    // The destinations view lists the receiver's origin (reached by keyboard); the usage view
    // shows the same totals as GET /usage.
    await page.getByRole('link', { name: 'Destinations' }).focus();
    await page.keyboard.press('Enter');
    const origin = `http://127.0.0.1:${new URL(receiver.url).port}`;
    await page.locator(`tr[data-destination="${origin}"]`).waitFor();
    await page.goto(`${base}/console#/usage`);
    const usage = (await (await fetch(`${base}/usage`)).json()) as {
      total: { requests: number; total_tokens: number };
    };
    expect(usage.total.requests).toBeGreaterThan(0);
    await expect
      .poll(() => page.locator('tfoot th').allTextContents())
      .toEqual(expect.arrayContaining([String(usage.total.requests), String(usage.total.total_tokens)]));
    expect(await page.locator('tbody tr').count()).toBeGreaterThan(0);

    // Readable on a narrow screen: nothing wider than the viewport.
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto(`${base}/console#/tasks`);
    await expect.poll(() => page.locator('tr[data-task]').count()).toBe(3);
    const overflow = await page.evaluate<number>('document.documentElement.scrollWidth - window.innerWidth');
    expect(overflow).toBeLessThanOrEqual(0);
    await view.screenshot('tasks-narrow');

    view.assertClean();
    await view.close();
  });

  it('shows a destination whose breaker opened, and resets it', async () => {
    const down = await startCallbackReceiver({ status: 500 });
    try {
      const service = await start(
        'all',
        env({ DATA_DIR: tempDir(), CALLBACK_BREAKER_MIN_ATTEMPTS: '1', CALLBACK_BREAKER_COOLDOWN: '5m' }),
      );
      const base = service.url;
      const origin = `http://127.0.0.1:${new URL(down.url).port}`;
      const stateOf = async () => {
        const response = await fetch(`${base}/destinations`);
        const body = (await response.json()) as {
          destinations: Array<{ destination: string; state: string }>;
        };
        return body.destinations.find((entry) => entry.destination === origin)?.state;
      };
      await accept(base, { callback_url: `${down.url}/hook` });
      await expect.poll(stateOf, { timeout: 20_000 }).toBe('open');

      const view = await browser.open();
      const { page } = view;
      view.allowHttpStatus(404);
      await page.goto(`${base}/console#/destinations`);
      const row = page.locator(`tr[data-destination="${origin}"]`);
      await expect.poll(() => row.locator('td').nth(1).textContent()).toBe('open');
      await view.screenshot('destinations-open');
      await row.getByRole('button', { name: `Reset ${origin}` }).click();
      await page.getByText(`${origin} reset.`).waitFor();
      await expect.poll(() => row.locator('td').nth(1).textContent()).toBe('closed');
      expect(await stateOf()).toBe('closed');
      view.assertClean();
      await view.close();
    } finally {
      await down.close();
    }
  });

  it('asks for a token, refuses a wrong one, and shows only that client its data', async () => {
    const service = await start('all', env({ DATA_DIR: tempDir(), API_TOKENS: `${TOKEN_A},${TOKEN_B}` }));
    const base = service.url;
    const asB = { authorization: `Bearer ${TOKEN_B}` };
    const taskB = await accept(base, { callback_url: `${receiver.url}/b`, conversation_id: 'b-only' }, asB);
    await expect.poll(() => taskStatus(base, taskB, asB), { timeout: 20_000 }).toBe('completed');

    const view = await browser.open();
    const { page } = view;
    view.allowHttpStatus(401);
    view.allowHttpStatus(404);
    await page.goto(`${base}/console`);
    await page.getByRole('heading', { name: 'Sign in' }).waitFor();
    await page.getByLabel('API token').fill('not-a-token');
    await page.getByLabel('API token').press('Enter');
    await page.getByText('That token was refused.').waitFor();

    await page.getByLabel('API token').fill(TOKEN_A);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByText('Signed in with a token').waitFor();
    await expect.poll(() => page.getByTestId('total-accepted').textContent()).toBe('0');
    expect(await page.locator('.open-api').count()).toBe(0);
    // Evaluated in the page (a string: these tests are compiled without the DOM's types).
    const storage = await page.evaluate<{ session: string | null; local: number; cookies: string }>(
      "({ session: sessionStorage.getItem('llm-webhook-token'), local: localStorage.length, cookies: document.cookie })",
    );
    expect(storage).toEqual({ session: TOKEN_A, local: 0, cookies: '' });

    // B's task and conversation are not A's to see; A's own task is.
    await page.goto(`${base}/console#/tasks`);
    await page.getByText('No task matches.').waitFor();
    await page.goto(`${base}/console#/conversations`);
    await page.getByText('No conversation has stored history.').waitFor();
    const taskA = await accept(
      base,
      { callback_url: `${receiver.url}/a` },
      { authorization: `Bearer ${TOKEN_A}` },
    );
    await page.goto(`${base}/console#/tasks`);
    await expect
      .poll(() => page.locator('tr[data-task]').getAttribute('data-task'), { timeout: 15_000 })
      .toBe(taskA);

    view.assertClean();
    await view.close();
  });

  it('shows the deployment’s figures from any API process in redis mode', async () => {
    const run = await freshRun();
    const [api1, api2] = await Promise.all([start('api', run.env()), start('api', run.env())]);
    await start('worker', run.env(), { waitReady: false });
    const ids = [];
    for (let index = 0; index < 3; index++) {
      ids.push(
        await accept(api1.url, { callback_url: `${receiver.url}/r`, conversation_id: `redis-${index}` }),
      );
    }
    for (const id of ids)
      await expect.poll(() => taskStatus(api2.url, id), { timeout: 30_000 }).toBe('completed');

    const view = await browser.open();
    const { page } = view;
    view.allowHttpStatus(404);
    await page.goto(`${api2.url}/console`);
    await expect.poll(() => page.getByTestId('total-accepted').textContent()).toBe('3');
    await page.goto(`${api2.url}/console#/tasks?status=completed`);
    await expect.poll(() => page.locator('tr[data-task]').count()).toBe(3);
    await page.goto(`${api2.url}/console#/conversations`);
    await expect.poll(() => page.locator('tbody tr').count()).toBe(3);
    view.assertClean();
    await view.close();
  });
});
