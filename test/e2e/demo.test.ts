/** `npm run demo`: the whole loop with the bundled mock LLM, no key and no network. */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

describe('the demo', () => {
  it('prints a three-turn conversation whose prompts grow 1, 3, 5', async () => {
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', 'src/dev/demo.ts'], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '' },
      timeout: 60_000,
    });
    expect(stdout.match(/^POST \/webhook 200 /gm)).toHaveLength(3);
    expect(stdout).toContain('you: Hello! My name is Ada.');
    expect(stdout).toMatch(/llm: Reply #1 to "Hello! My name is Ada\." \(saw 1 messages?\)/);
    expect(stdout).toMatch(/llm: Reply #3 to "Do you remember my name\?" \(saw 5 messages\)/);
    expect(stdout).toContain('Messages the LLM saw per turn: 1, 3, 5');
  });
});
