/**
 * Prints the functions with the most self time in V8 CPU profiles (`node --cpu-prof`), and the
 * same rolled up by package or source file:
 *
 *   npx tsx bench/profile-summary.ts <file.cpuprofile|directory> [top=25]
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

function profilesIn(path: string): string[] {
  if (!statSync(path).isDirectory()) return [path];
  return readdirSync(path)
    .filter((name) => name.endsWith('.cpuprofile'))
    .map((name) => join(path, name));
}

/** `node_modules/<pkg>` (scoped too), a source file of this project, or a Node internal. */
function owner(url: string): string {
  if (url === '') return '(native/V8)';
  const modules = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (modules) return modules[1]!;
  if (url.startsWith('node:')) return url;
  const project = /\/(dist|src)\/(.+)$/.exec(url);
  if (project) return `${project[1]}/${project[2]}`;
  return url;
}

function summarise(file: string, top: number): string {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const selfUs = new Map<number, number>();
  for (let index = 0; index < profile.samples.length; index += 1) {
    const id = profile.samples[index]!;
    selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[index] ?? 0));
  }
  const totalUs = profile.endTime - profile.startTime;
  const byFunction = new Map<string, number>();
  const byOwner = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const node = byId.get(id);
    if (node === undefined) continue;
    const { functionName, url, lineNumber } = node.callFrame;
    const where =
      url === '' ? '' : ` ${url.replace(/^.*\/(node_modules|dist|src)\//, '$1/')}:${lineNumber + 1}`;
    const key = `${functionName || '(anonymous)'}${where}`;
    byFunction.set(key, (byFunction.get(key) ?? 0) + us);
    if (functionName === '(idle)') continue;
    const group = owner(url);
    byOwner.set(group, (byOwner.get(group) ?? 0) + us);
  }
  const idleUs = [...byFunction]
    .filter(([key]) => key.startsWith('(idle)'))
    .reduce((sum, [, us]) => sum + us, 0);
  const busyUs = totalUs - idleUs;
  const lines = [
    `${file}: ${(totalUs / 1e6).toFixed(1)} s profiled, ${(busyUs / 1e6).toFixed(1)} s busy (${((100 * busyUs) / totalUs).toFixed(0)}%)`,
    '  self time by function (% of busy):',
  ];
  const rank = (map: Map<string, number>): Array<[string, number]> =>
    [...map].filter(([key]) => !key.startsWith('(idle)')).sort((a, b) => b[1] - a[1]);
  for (const [key, us] of rank(byFunction).slice(0, top)) {
    lines.push(`    ${((100 * us) / busyUs).toFixed(1).padStart(5)}%  ${key}`);
  }
  lines.push('  self time by package or file (% of busy):');
  for (const [key, us] of rank(byOwner).slice(0, top)) {
    lines.push(`    ${((100 * us) / busyUs).toFixed(1).padStart(5)}%  ${key}`);
  }
  return lines.join('\n');
}

const [target, topText] = process.argv.slice(2);
if (target === undefined) {
  process.stderr.write('usage: tsx bench/profile-summary.ts <file.cpuprofile|directory> [top]\n');
  process.exit(2);
}
for (const file of profilesIn(target)) {
  process.stdout.write(`${summarise(file, Number(topText ?? 25))}\n\n`);
}
