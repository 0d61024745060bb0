import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { nodeVersionProblem, REQUIRED_NODE } from './node-version.js';

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

describe('nodeVersionProblem', () => {
  it('reads the requirement from engines.node in package.json', () => {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
      engines: { node: string };
    };
    expect(REQUIRED_NODE).toBe(pkg.engines.node);
    expect(REQUIRED_NODE).toMatch(/^>=\d+\.\d+\.\d+$/);
  });

  it('accepts this Node, the minimum itself and anything newer', () => {
    expect(nodeVersionProblem(process.versions.node)).toBeNull();
    expect(nodeVersionProblem('22.19.0', '>=22.19.0')).toBeNull();
    expect(nodeVersionProblem('22.19.1', '>=22.19.0')).toBeNull();
    expect(nodeVersionProblem('22.20.0', '>=22.19.0')).toBeNull();
    expect(nodeVersionProblem('v26.0.0', '>=22.19.0')).toBeNull();
  });

  it('refuses an older one with one line naming both versions', () => {
    for (const old of ['22.18.9', '22.3.0', '20.20.2', '18.0.0', 'v21.99.99']) {
      const problem = nodeVersionProblem(old, '>=22.19.0');
      expect(problem).toContain('Node.js >=22.19.0');
      expect(problem).toContain(`this is v${old.replace(/^v/, '')}`);
      expect(problem).not.toContain('\n');
    }
  });

  it('refuses an engines range in a form it cannot check', () => {
    expect(() => nodeVersionProblem('24.0.0', '^22.19.0 || >=24')).toThrow(/engines\.node/);
  });
});

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
