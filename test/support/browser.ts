/**
 * A real browser for the console's tests: Debian's `chromium` driven by playwright-core, one per
 * test file. Every page records the requests it makes and what its console reports, so a test
 * can assert that nothing left 127.0.0.1 and that no error or CSP violation was logged.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, expect } from 'vitest';

export const CHROMIUM_PATH = '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Where the tests leave their screenshots (git-ignored). */
export const SCREENSHOT_DIR = fileURLToPath(new URL('../../test-output/screenshots/', import.meta.url));

export interface WatchedPage {
  page: Page;
  context: BrowserContext;
  /** Every URL the page asked for. */
  requests: string[];
  /** Console errors and warnings, page errors and CSP violations, as text. */
  problems: string[];
  /** Lets console errors for HTTP responses with this status through (a refused token: 401). */
  allowHttpStatus(status: number): void;
  /** Fails the test on a request that left 127.0.0.1 or on any problem not allowed. */
  assertClean(): void;
  screenshot(name: string): Promise<void>;
  close(): Promise<void>;
}

export function useBrowser(): { open(options?: { width?: number; height?: number }): Promise<WatchedPage> } {
  let browser: Browser | undefined;
  beforeAll(async () => {
    browser = await chromium.launch({ executablePath: CHROMIUM_PATH, headless: true, args: CHROMIUM_ARGS });
  });
  afterAll(async () => {
    await browser?.close();
  });

  return {
    async open({ width = 1280, height = 900 } = {}) {
      if (browser === undefined) throw new Error('the browser is not running');
      const context = await browser.newContext({ viewport: { width, height } });
      const requests: string[] = [];
      const problems: string[] = [];
      const allowed = new Set<number>();
      context.on('request', (request) => requests.push(request.url()));
      const page = await context.newPage();
      // Reported from the page itself too, in case a violation is not logged to the console.
      await page.addInitScript({
        content: `document.addEventListener('securitypolicyviolation', (event) => {
          console.error('CSP violation: ' + event.violatedDirective + ' ' + event.blockedURI);
        });`,
      });
      page.on('console', (message) => {
        const type = message.type();
        if (type !== 'error' && type !== 'warning') return;
        const text = message.text();
        const status = /the server responded with a status of (\d{3})/.exec(text)?.[1];
        if (status !== undefined && allowed.has(Number(status))) return;
        problems.push(`${type}: ${text}`);
      });
      page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
      return {
        page,
        context,
        requests,
        problems,
        allowHttpStatus: (status) => allowed.add(status),
        assertClean() {
          const outside = requests.filter((url) => new URL(url).hostname !== '127.0.0.1');
          expect(outside, 'requests that left 127.0.0.1').toEqual([]);
          expect(problems, 'console errors and CSP violations').toEqual([]);
        },
        async screenshot(name) {
          mkdirSync(SCREENSHOT_DIR, { recursive: true });
          await page.screenshot({ path: join(SCREENSHOT_DIR, `${name}.png`), fullPage: true });
        },
        close: () => context.close(),
      };
    },
  };
}
