/**
 * The shape of the codebase: each third-party library behind its one boundary file, the redis
 * mode loaded lazily, and deployment files that parse and say what the README says.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { nodeVersionProblem } from '../src/shared/node-version.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    // Tests, their support modules and the contract suites (test code beside their seams) are not
    // the service's source.
    const isTest = ['.test.ts', '.test-support.ts', '.contract.ts'].some((end) => entry.name.endsWith(end));
    return entry.name.endsWith('.ts') && !isTest ? [path] : [];
  });
}

const files = sourceFiles(join(ROOT, 'src')).map((path) => ({
  path: relative(ROOT, path),
  text: readFileSync(path, 'utf8'),
}));

const importers = (pattern: RegExp): string[] =>
  files.filter((file) => pattern.test(file.text)).map((file) => file.path);

/**
 * The folders of `src/` and which of them each may import (SPEC-independent: the architecture of
 * the README). `main → service → http, jobs, outbound, backends`; `http → queue, store,
 * delivery`; `jobs → queue, store, llm, delivery`; `outbound → llm, delivery`; the queue and
 * store drivers → `backends/*`; everything → `shared`, and `shared` → nothing of ours.
 * `config` is read by the composition side; it asks `delivery` only whether an allow-list entry
 * is well-formed. `http` enqueues through `jobs/catalog.ts` alone, a leaf. `dev` (mock LLM, demo,
 * test harness) may use anything, and nothing of the service uses `dev`.
 */
const ALLOWED_ARROWS: Record<string, readonly string[]> = {
  // main loads tracing's SDK (dynamically, only when on) before it builds the service.
  main: ['service', 'tracing', 'config', 'shared'],
  service: [
    'http',
    'jobs',
    'outbound',
    'backends',
    'destinations',
    'delivery',
    'tracing',
    'config',
    'shared',
  ],
  // config asks tracing whether OTEL_* turns it on (tracing-config.ts, which imports nothing).
  config: ['delivery', 'tracing', 'shared'],
  backends: ['queue', 'store', 'destinations', 'limits', 'config', 'shared'],
  // The routes enqueue through the job catalog, a leaf, never through the worker's code.
  http: ['queue', 'store', 'destinations', 'delivery', 'config', 'shared', 'src/jobs/catalog.ts'],
  jobs: ['queue', 'store', 'destinations', 'limits', 'llm', 'delivery', 'tracing', 'config', 'shared'],
  outbound: ['llm', 'delivery', 'config', 'shared'],
  queue: ['backends', 'shared'],
  store: ['backends', 'shared'],
  limits: ['backends', 'shared'],
  destinations: ['limits', 'backends', 'shared'],
  llm: ['shared'],
  delivery: ['shared'],
  // Spans on @opentelemetry/api; the queue wrapper knows the seam's types only.
  tracing: ['queue', 'shared'],
  shared: [],
  dev: ['*'],
};

/** The folder (or top-level module) of `src/` a source file belongs to. */
function areaOf(path: string): string {
  const [, first = ''] = path.split('/');
  return first.replace(/\.ts$/, '');
}

/** Every import of ours in `text` (static, dynamic and `export ... from`), resolved to a path under src/. */
function importsOf(path: string, text: string): string[] {
  const specifiers = [...text.matchAll(/(?:from|import\()\s*'(\.{1,2}\/[^']+)'/g)].map((match) => match[1]!);
  return specifiers.map((specifier) => join(dirname(path), specifier).replace(/\.js$/, '.ts'));
}

/** Wrong arrows in `graph` (file → files it imports), as `from → to` lines. */
function wrongArrows(graph: ReadonlyMap<string, readonly string[]>): string[] {
  const wrong: string[] = [];
  for (const [from, targets] of graph) {
    const allowed = ALLOWED_ARROWS[areaOf(from)];
    for (const to of targets) {
      const area = areaOf(to);
      if (
        area === areaOf(from) ||
        allowed?.includes('*') ||
        allowed?.includes(area) ||
        allowed?.includes(to)
      ) {
        continue;
      }
      wrong.push(`${from} → ${to}`);
    }
  }
  return wrong;
}

/** Import cycles in `graph`, each as the files around it. */
function cyclesIn(graph: ReadonlyMap<string, readonly string[]>): string[][] {
  const cycles: string[][] = [];
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (file: string): void => {
    if (state.get(file) === 'done') return;
    if (state.get(file) === 'open') {
      cycles.push(stack.slice(stack.indexOf(file)));
      return;
    }
    state.set(file, 'open');
    stack.push(file);
    for (const next of graph.get(file) ?? []) visit(next);
    stack.pop();
    state.set(file, 'done');
  };
  for (const file of graph.keys()) visit(file);
  return cycles;
}

const importGraph = new Map(files.map((file) => [file.path, importsOf(file.path, file.text)] as const));

describe('import arrows', () => {
  it('go only where the architecture allows', () => {
    expect(Object.keys(ALLOWED_ARROWS).sort()).toEqual(
      [...new Set(files.map((file) => areaOf(file.path)))].sort(),
    );
    expect(wrongArrows(importGraph)).toEqual([]);
  });

  it('form no cycle', () => {
    expect(cyclesIn(importGraph)).toEqual([]);
  });

  it('are checked: a wrong arrow and a cycle are caught', () => {
    const bad = new Map([
      ['src/shared/logger.ts', ['src/config.ts']],
      ['src/delivery/sign.ts', ['src/jobs/catalog.ts']],
      ['src/http/routes/webhook.ts', ['src/jobs/catalog.ts', 'src/jobs/generate-reply.ts']],
      ['src/jobs/catalog.ts', ['src/jobs/generate-reply.ts']],
      ['src/jobs/generate-reply.ts', ['src/jobs/catalog.ts']],
    ]);
    expect(wrongArrows(bad)).toEqual([
      'src/shared/logger.ts → src/config.ts',
      'src/delivery/sign.ts → src/jobs/catalog.ts',
      'src/http/routes/webhook.ts → src/jobs/generate-reply.ts',
    ]);
    expect(cyclesIn(bad)).toEqual([['src/jobs/catalog.ts', 'src/jobs/generate-reply.ts']]);
  });
});

describe('boundaries', () => {
  it.each([
    ['bullmq', /from 'bullmq'/, ['src/queue/bullmq/bullmq-job-queue.ts']],
    [
      'better-sqlite3',
      /from 'better-sqlite3'/,
      ['src/backends/sqlite/sqlite-checkpointer.ts', 'src/backends/sqlite/sqlite-database.ts'],
    ],
    ['openai', /from 'openai'/, ['src/llm/llm-client.ts']],
    ['gpt-tokenizer', /from 'gpt-tokenizer|import\('gpt-tokenizer/, ['src/llm/token-count.ts']],
    ['prom-client', /from 'prom-client'/, ['src/shared/metrics.ts']],
    ['standardwebhooks', /from 'standardwebhooks'/, ['src/delivery/sign.ts']],
    ['the OpenTelemetry SDK', /from '@opentelemetry\/sdk-/, ['src/tracing/start-tracing.ts']],
    ['@fastify/otel', /from '@fastify\/otel'/, ['src/tracing/start-tracing.ts']],
  ])('only its boundary file imports %s', (_name, pattern, expected) => {
    expect(importers(pattern)).toEqual(expected);
  });

  it('loads the redis-mode drivers only with a dynamic import', () => {
    const redisModules =
      /from '[./]+(queue\/bullmq\/[\w-]+|store\/redis-store|backends\/redis\/redis-connection)\.js'/;
    // The redis drivers themselves (`bullmq/`, and `redis-*.ts` beside each seam) import each other.
    const staticImporters = importers(redisModules).filter(
      (path) => !path.startsWith('src/queue/bullmq/') && !/\/redis-[\w-]+\.ts$/.test(path),
    );
    expect(staticImporters).toEqual([]);
    const backends = files.find((file) => file.path === 'src/backends/create-backends.ts')!.text;
    expect(backends).toContain("await import('../queue/bullmq/bullmq-job-queue.js')");
  });

  it('loads the tracing SDK only with a dynamic import, from the composition root', () => {
    expect(importers(/from '[./]+(tracing\/)?start-tracing\.js'/)).toEqual([]);
    const main = files.find((file) => file.path === 'src/main.ts')!.text;
    expect(main).toContain("await import('./tracing/start-tracing.js')");
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
