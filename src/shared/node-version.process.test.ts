/**
 * The service's entry point run by an older Node: one line and exit 1, before the app loads.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { nodeVersionProblem } from './node-version.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const MAIN = fileURLToPath(new URL('../main.ts', import.meta.url));

/** Runs `src/main.ts` with `node` (a path), pretending to be `fakeVersion` when given. */
function runMain(
  node: string,
  fakeVersion?: string,
): { status: number | null; stderr: string; stdout: string } {
  const fake =
    fakeVersion === undefined
      ? []
      : [
          '--import',
          `data:text/javascript,Object.defineProperty(process.versions,'node',{value:${JSON.stringify(fakeVersion)}})`,
        ];
  const result = spawnSync(node, [...fake, '--import', 'tsx', MAIN, 'all'], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '' },
    encoding: 'utf8',
    timeout: 30_000,
  });
  return { status: result.status, stderr: result.stderr, stdout: result.stdout };
}

/** Another Node on this machine older than the required one, such as a distribution's /usr/bin/node. */
function olderNode(): { path: string; version: string } | null {
  for (const path of ['/usr/bin/node', '/usr/local/bin/node']) {
    if (path === process.execPath) continue;
    try {
      const version = execFileSync(path, ['-p', 'process.versions.node'], { encoding: 'utf8' }).trim();
      if (nodeVersionProblem(version) !== null) return { path, version };
    } catch {
      // Not there, or not runnable.
    }
  }
  return null;
}

describe('main on an older Node', () => {
  it('prints one line naming the required version and exits 1 before loading the app', () => {
    const result = runMain(process.execPath, '20.18.1');
    expect(result.status).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr.trimEnd().split('\n')).toEqual([nodeVersionProblem('20.18.1')]);
  });

  const older = olderNode();
  it.skipIf(older === null)(`does the same on this machine's own Node ${older?.version ?? ''}`, () => {
    const result = runMain(older!.path);
    expect(result.status).toBe(1);
    expect(result.stderr.trimEnd().split('\n')).toEqual([nodeVersionProblem(older!.version)]);
  });
});
