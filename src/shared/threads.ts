/**
 * Starts a worker thread from a module beside the caller: the built `.js` file, or, when the
 * service runs from its TypeScript source (tests, `npm run dev`), the `.ts` file through tsx,
 * which a worker thread does not inherit from its parent.
 */
import { Worker, type WorkerOptions } from 'node:worker_threads';

/** `callerUrl` is the caller's `import.meta.url`; `name` the module's path without extension, such as `./outbound-worker`. */
export function startThread(callerUrl: string, name: string, options: WorkerOptions = {}): Worker {
  const sourceRun = callerUrl.endsWith('.ts');
  const entry = new URL(`${name}${sourceRun ? '.ts' : '.js'}`, callerUrl);
  if (!sourceRun) return new Worker(entry, options);
  const boot = `import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${JSON.stringify(entry.href)}); })`;
  return new Worker(boot, { ...options, eval: true });
}
