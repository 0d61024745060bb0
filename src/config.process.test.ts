/** `.env` loading, seen from a fresh process whose working directory holds the file. */
import { describe, expect, it } from 'vitest';

describe('.env loading', () => {
  it('reads .env from the working directory, and the environment wins over it', async () => {
    const { execFileSync } = await import('node:child_process');
    const { mkdtempSync, writeFileSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const dir = mkdtempSync(join(tmpdir(), 'llm-webhook-env-'));
    try {
      writeFileSync(join(dir, '.env'), 'PORT=9123\nLLM_MODEL=from-dotenv\nRATE_LIMIT=7/hour\n');
      const configModule = new URL('./config.ts', import.meta.url).href;
      const script = `import { loadConfig } from ${JSON.stringify(configModule)};
        const c = loadConfig(); console.log(JSON.stringify([c.port, c.llmModel, c.rateLimit.max]));`;
      const output = execFileSync(
        process.execPath,
        [
          '--import',
          new URL('../node_modules/tsx/dist/loader.mjs', import.meta.url).href,
          '--input-type=module',
          '-e',
          script,
        ],
        {
          cwd: dir,
          env: { PATH: process.env.PATH ?? '', LLM_MODEL: 'from-environment' },
          encoding: 'utf8',
        },
      );
      expect(JSON.parse(output)).toEqual([9123, 'from-environment', 7]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
