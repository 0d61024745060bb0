/** What the benchmarks read of a Redis through `redis-cli`: its commands run and CPU time so far. */
import { execFileSync } from 'node:child_process';

/** What `redis-cli` prints for one command against the Redis at `url`. */
export function redisCli(url: string, ...args: string[]): string {
  return execFileSync('redis-cli', ['-u', url, ...args]).toString();
}

/** Commands run (those called by scripts included) and CPU time (user + system), since start or `CONFIG RESETSTAT`. */
export function redisStats(url: string): { commands: number; cpuMs: number } {
  let commands = 0;
  for (const match of redisCli(url, 'INFO', 'commandstats').matchAll(/calls=(\d+)/g))
    commands += Number(match[1]);
  const cpu = redisCli(url, 'INFO', 'cpu');
  const seconds = (name: string): number => Number(new RegExp(`${name}:([\\d.]+)`).exec(cpu)?.[1] ?? 0);
  return { commands, cpuMs: (seconds('used_cpu_user') + seconds('used_cpu_sys')) * 1000 };
}
