/**
 * The operator console's files (SPEC §12): `src/console/` holds its sources (browser modules using
 * Preact, htm and uPlot from npm, and a stylesheet importing simple.css); esbuild bundles them
 * into `app.js` and `app.css`, with no network. `npm run build` writes the bundle to
 * `dist/console/` (`writeConsoleBundle`); the service built from there reads those files, and
 * one run from source (tsx, the tests) bundles them in memory at start-up instead. Each file is
 * kept gzipped too, for clients that accept it.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

export interface ConsoleAsset {
  contentType: string;
  body: Buffer;
  gzipped: Buffer;
}

/** The console's files by name, as served under `/console/`. */
export type ConsoleAssets = ReadonlyMap<string, ConsoleAsset>;

/** `src/console/` when run from source, `dist/console/` when built. */
const CONSOLE_DIR = fileURLToPath(new URL('../console/', import.meta.url));
const FROM_SOURCE = import.meta.url.endsWith('.ts');

const STATIC_FILES = { 'index.html': 'text/html; charset=utf-8', 'favicon.svg': 'image/svg+xml' } as const;
const BUNDLED_FILES = {
  'app.js': 'text/javascript; charset=utf-8',
  'app.css': 'text/css; charset=utf-8',
} as const;

/** Bundles the sources in `sourceDir` (default `src/console/`): `app.js` and `app.css`. */
export async function bundleConsole(sourceDir = CONSOLE_DIR): Promise<Map<string, Buffer>> {
  // esbuild is a development dependency: loaded only to bundle, never by a built service.
  const esbuild = await import('esbuild');
  const result = await esbuild.build({
    entryPoints: [
      { in: join(sourceDir, 'main.js'), out: 'app' },
      { in: join(sourceDir, 'app.css'), out: 'app' },
    ],
    bundle: true,
    minify: true,
    format: 'esm',
    target: ['es2022'],
    outdir: 'out',
    write: false,
    legalComments: 'none',
    logLevel: 'silent',
  });
  const files = new Map<string, Buffer>();
  for (const file of result.outputFiles) {
    const name = file.path.split('/').pop() ?? '';
    files.set(name, Buffer.from(file.contents));
  }
  for (const name of Object.keys(BUNDLED_FILES)) {
    if (!files.has(name)) throw new Error(`console bundle: ${name} missing`);
  }
  return files;
}

/** Writes the bundle of `sourceDir` and its static files to `outDir` (the build: `src/console` → `dist/console`). */
export async function writeConsoleBundle(outDir: string, sourceDir: string): Promise<void> {
  mkdirSync(outDir, { recursive: true });
  for (const [name, body] of await bundleConsole(sourceDir)) writeFileSync(join(outDir, name), body);
  for (const name of Object.keys(STATIC_FILES))
    writeFileSync(join(outDir, name), readFileSync(join(sourceDir, name)));
}

function asset(contentType: string, body: Buffer): ConsoleAsset {
  return { contentType, body, gzipped: gzipSync(body, { level: 9 }) };
}

let loaded: Promise<ConsoleAssets> | null = null;

/**
 * The console's files: read from `dist/console/`, or bundled when run from source; once per
 * process (every server built in it shares them).
 */
export function loadConsoleAssets(): Promise<ConsoleAssets> {
  loaded ??= readConsoleAssets().catch((error: unknown) => {
    loaded = null;
    throw error;
  });
  return loaded;
}

async function readConsoleAssets(): Promise<ConsoleAssets> {
  const assets = new Map<string, ConsoleAsset>();
  const bundled = FROM_SOURCE ? await bundleConsole() : null;
  for (const [name, contentType] of Object.entries(BUNDLED_FILES)) {
    const body = bundled?.get(name) ?? readFileSync(join(CONSOLE_DIR, name));
    assets.set(name, asset(contentType, body));
  }
  for (const [name, contentType] of Object.entries(STATIC_FILES)) {
    assets.set(name, asset(contentType, readFileSync(join(CONSOLE_DIR, name))));
  }
  return assets;
}
