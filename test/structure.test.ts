/**
 * The shape of the codebase: each third-party library behind its one boundary file, the redis
 * mode loaded lazily, and deployment files that parse and say what the README says.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { nodeVersionProblem } from '../src/shared/node-version.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts') ? [path] : [];
  });
}

const files = sourceFiles(join(ROOT, 'src')).map((path) => ({
  path: relative(ROOT, path),
  text: readFileSync(path, 'utf8'),
}));

const importers = (pattern: RegExp): string[] =>
  files.filter((file) => pattern.test(file.text)).map((file) => file.path);

describe('boundaries', () => {
  it.each([
    ['bullmq', /from 'bullmq'/, ['src/queue/bullmq-job-queue.ts']],
    [
      'better-sqlite3',
      /from 'better-sqlite3'/,
      ['src/store/sqlite-checkpointer.ts', 'src/store/sqlite-database.ts'],
    ],
    ['openai', /from 'openai'/, ['src/llm/llm-client.ts']],
    ['prom-client', /from 'prom-client'/, ['src/shared/metrics.ts']],
    ['standardwebhooks', /from 'standardwebhooks'/, ['src/delivery/sign.ts']],
  ])('only its boundary file imports %s', (_name, pattern, expected) => {
    expect(importers(pattern)).toEqual(expected);
  });

  it('loads the redis-mode drivers only with a dynamic import', () => {
    const redisModules =
      /from '[./]+(queue\/bullmq-job-queue|store\/redis-store|shared\/redis-connection)\.js'/;
    const staticImporters = importers(redisModules).filter(
      (path) => !['src/queue/bullmq-job-queue.ts', 'src/store/redis-store.ts'].includes(path),
    );
    expect(staticImporters).toEqual([]);
    const backends = files.find((file) => file.path === 'src/backends.ts')!.text;
    expect(backends).toContain("await import('./queue/bullmq-job-queue.js')");
  });

  it('reads process.env only in the configuration module (and the dev-only mock LLM)', () => {
    expect(importers(/process\.env\b/).sort()).toEqual([
      'src/config.ts',
      'src/dev/demo.ts',
      'src/dev/mock-llm.ts',
    ]);
  });
});

describe('deployment files', () => {
  it('has a compose file with redis, api and worker, health checks and the .env file', () => {
    const compose = parse(readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8')) as {
      services: Record<
        string,
        { command?: string[]; env_file?: string; healthcheck?: unknown; environment?: Record<string, string> }
      >;
    };
    expect(Object.keys(compose.services).sort()).toEqual(['api', 'redis', 'worker']);
    for (const service of Object.values(compose.services)) expect(service.healthcheck).toBeDefined();
    expect(compose.services.api!.command).toEqual(['api']);
    expect(compose.services.worker!.command).toEqual(['worker']);
    for (const role of ['api', 'worker']) {
      expect(compose.services[role]!.env_file).toBe('.env');
      expect(compose.services[role]!.environment!.REDIS_URL).toMatch(/^redis:\/\/redis:6379$/);
    }
  });

  it('builds in stages and runs as a non-root user with production dependencies only', () => {
    const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
    expect(dockerfile.match(/^FROM /gm)!.length).toBeGreaterThanOrEqual(2);
    expect(dockerfile).toMatch(/npm prune --omit=dev/);
    expect(dockerfile).toMatch(/^USER node$/m);
    expect(dockerfile).toMatch(/^ENTRYPOINT \["node", "dist\/main.js"\]$/m);
  });

  it('names one shipped Node line everywhere: .nvmrc, the pinned runtime, both Docker stages', () => {
    const line = readFileSync(join(ROOT, '.nvmrc'), 'utf8').trim();
    const useNode = readFileSync(join(ROOT, 'scripts/use-node.sh'), 'utf8');
    expect(useNode).toMatch(new RegExp(`^LLM_WEBHOOK_NODE_${line}=${line}\\.\\d+\\.\\d+$`, 'm'));
    const bases = readFileSync(join(ROOT, 'Dockerfile'), 'utf8').match(/^FROM \S+/gm)!;
    expect(bases).toEqual(bases.map(() => `FROM node:${line}-bookworm-slim`));
    expect(readFileSync(join(ROOT, '.ci/run'), 'utf8')).toMatch(
      new RegExp(`^source scripts/use-node\\.sh ${line}$`, 'm'),
    );
  });

  it('pins an oldest-line runtime that engines.node accepts', () => {
    const { engines } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
      engines: { node: string };
    };
    const oldest = /^LLM_WEBHOOK_NODE_22=(\S+)$/m.exec(
      readFileSync(join(ROOT, 'scripts/use-node.sh'), 'utf8'),
    )![1]!;
    expect(nodeVersionProblem(oldest, engines.node)).toBeNull();
  });
});
