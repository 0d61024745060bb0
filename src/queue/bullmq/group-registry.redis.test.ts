import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RedisServer, startRedisServer } from '../../../test/support/redis-server.js';
import { createGroupRegistry, type GroupRegistry, type RegisteredJob } from './group-registry.js';

let server: RedisServer;
let client: Redis;

beforeAll(async () => {
  server = await startRedisServer();
  client = new Redis(server.url);
});

afterAll(async () => {
  client?.disconnect();
  await server?.stop();
});

function openRegistry(): { registry: GroupRegistry; base: string } {
  const base = `t-${randomUUID()}:jobs`;
  return { registry: createGroupRegistry(client, base), base };
}

function newJob(id: string, group: string | null, runAtMs = Date.now()): RegisteredJob {
  return {
    id,
    name: 'generate',
    taskId: `task-${id}`,
    group,
    priority: 'normal',
    bullId: `j${randomUUID()}`,
    runAtMs,
  };
}

describe('group registry', () => {
  it('registers a job once, and only a group head or an ungrouped job goes to BullMQ at once', async () => {
    const { registry } = openRegistry();
    const now = Date.now();
    expect(await registry.enqueue(newJob('a', 'g'), now)).toBe('add');
    expect(await registry.enqueue(newJob('b', 'g'), now)).toBe('waiting');
    expect(await registry.enqueue(newJob('a', 'g'), now)).toBe('duplicate');
    expect(await registry.enqueue(newJob('c', null), now)).toBe('add');
    expect((await registry.countUnfinished(Date.now())).total).toBe(3);
  });

  it('counts the runs of a job, and refuses a copy under another BullMQ id', async () => {
    const { registry } = openRegistry();
    const job = newJob('a', 'g');
    await registry.enqueue(job, Date.now());
    expect(await registry.start('a', `j${randomUUID()}`)).toBe(0);
    expect(await registry.start('a', job.bullId)).toBe(1);
    expect(await registry.start('a', job.bullId)).toBe(2);
    expect(await registry.start('missing', job.bullId)).toBe(0);
  });

  it('hands over to the next job of the group when the head finishes, and forgets an empty group', async () => {
    const { registry, base } = openRegistry();
    const head = newJob('a', 'g');
    const next = newJob('b', 'g');
    await registry.enqueue(head, Date.now());
    await registry.enqueue(next, Date.now());
    expect(await registry.finish(head, `j${randomUUID()}`, Date.now())).toBeNull();
    expect(await registry.finish(head, head.bullId, Date.now())).toEqual(next);
    expect(await client.zscore(`${base}:lw:pending`, 'b')).not.toBeNull();
    expect((await registry.countUnfinished(Date.now())).total).toBe(1);
    expect(await registry.finish(next, next.bullId, Date.now())).toBeNull();
    expect(await client.smembers(`${base}:lw:groups`)).toEqual([]);
    expect((await registry.countUnfinished(Date.now())).total).toBe(0);
  });

  it('returns old pending jobs missing from BullMQ, and settles those BullMQ has', async () => {
    const { registry, base } = openRegistry();
    const old = Date.now() - 60_000;
    const missing = newJob('missing', null, old);
    const inBull = newJob('in-bull', null, old);
    await registry.enqueue(missing, old);
    await registry.enqueue(inBull, old);
    await registry.enqueue(newJob('young', null), Date.now());
    // BullMQ keeps a job as a hash at `<prefix>:<queue>:<bullId>`.
    await client.hset(`${base}:${inBull.bullId}`, 'name', 'generate');
    expect(await registry.sweepPending(Date.now())).toEqual([missing]);
    expect(await client.zrange(`${base}:lw:pending`, 0, -1)).toEqual(['missing', 'young']);
  });

  it('returns group heads that are neither in BullMQ nor pending, and drops ended heads', async () => {
    const { registry, base } = openRegistry();
    const lost = newJob('lost', 'g1');
    await registry.enqueue(lost, Date.now());
    await registry.enqueue(newJob('behind', 'g1'), Date.now());
    await registry.start('lost', lost.bullId);
    await registry.enqueue(newJob('pending', 'g2'), Date.now());
    await registry.enqueue(newJob('gone', 'g3'), Date.now());
    await client.hdel(`${base}:lw:jobs`, 'gone');
    let cursor = '0';
    const found: RegisteredJob[] = [];
    do {
      const step = await registry.sweepGroups(cursor);
      cursor = step.cursor;
      found.push(...step.missing);
    } while (cursor !== '0');
    expect(found).toEqual([lost]);
    expect((await client.smembers(`${base}:lw:groups`)).sort()).toEqual(['g1', 'g2']);
  });
});
