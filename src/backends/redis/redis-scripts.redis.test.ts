import { createHash } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RedisServer, startRedisServer } from '../../../test/support/redis-server.js';
import { bindScripts } from './redis-scripts.js';

let server: RedisServer;
let client: Redis;

beforeAll(async () => {
  server = await startRedisServer();
  client = new Redis(server.url, { enableAutoPipelining: true });
});

afterAll(async () => {
  client?.disconnect();
  await server?.stop();
});

const SCRIPTS = {
  appendTwice: {
    keys: 1,
    lua: "redis.call('RPUSH', KEYS[1], ARGV[1], ARGV[1]); return redis.call('LLEN', KEYS[1])",
  },
  fail: { keys: 0, lua: "return redis.error_reply('ERR no luck')" },
};

describe('bindScripts', () => {
  it('runs each script with its keys and arguments, before and after Redis forgets it', async () => {
    const scripts = bindScripts(client, SCRIPTS);
    expect(await scripts.appendTwice('list', 'a')).toBe(2);
    expect(await client.script('EXISTS', ...[SCRIPTS.appendTwice.lua].map(sha1))).toEqual([1]);
    await client.script('FLUSH');
    expect(await scripts.appendTwice('list', 'b')).toBe(4);
    expect(await client.lrange('list', 0, -1)).toEqual(['a', 'a', 'b', 'b']);
  });

  it("leaves the client's pipelines bare and its replies' errors as they are", async () => {
    bindScripts(client, SCRIPTS);
    expect(Object.keys((client as unknown as { scriptsSet: object }).scriptsSet)).toEqual([]);
    await expect(bindScripts(client, SCRIPTS).fail()).rejects.toThrow('no luck');
  });
});

function sha1(text: string): string {
  return createHash('sha1').update(text).digest('hex');
}
