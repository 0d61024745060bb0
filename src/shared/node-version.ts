import { readFileSync } from 'node:fs';

/**
 * The Node.js versions the service runs on: `engines.node` of package.json, in the one form it
 * takes there, `>=MAJOR.MINOR.PATCH`. main.ts checks it before it imports anything else of the app,
 * so this module uses nothing an older Node lacks.
 */
export const REQUIRED_NODE: string = (
  JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    engines: { node: string };
  }
).engines.node;

function parse(version: string): [number, number, number] | null {
  const match = /^v?(\d+)\.(\d+)\.(\d+)/.exec(version.trim());
  return match === null ? null : [Number(match[1]), Number(match[2]), Number(match[3])];
}

/**
 * `null` when `actual` (such as `process.versions.node`) satisfies `required`, else the one line
 * to print: which version is needed, which one this is, and how to get the right one.
 */
export function nodeVersionProblem(actual: string, required: string = REQUIRED_NODE): string | null {
  const minimum = parse(required.replace(/^>=\s*/, ''));
  if (!required.trim().startsWith('>=') || minimum === null) {
    throw new Error(`engines.node must read ">=MAJOR.MINOR.PATCH", not "${required}"`);
  }
  const current = parse(actual);
  if (current !== null) {
    for (let index = 0; index < 3; index++) {
      if (current[index]! > minimum[index]!) return null;
      if (current[index]! < minimum[index]!) break;
      if (index === 2) return null;
    }
  }
  return (
    `llm-webhook needs Node.js ${required.trim()} (24 is the shipped line); this is v${actual.replace(/^v/, '')}. ` +
    'Run `source scripts/use-node.sh` to get it, or see "Requirements" in README.md.'
  );
}
