import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { nodeVersionProblem, REQUIRED_NODE } from './node-version.js';

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
