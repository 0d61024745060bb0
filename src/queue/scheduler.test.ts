import { describe, expect, it } from 'vitest';
import type { JobPriority } from './job-queue.js';
import { DelayHeap, Fifo, type Schedulable, Scheduler } from './scheduler.js';

let seq = 0;
function job(
  id: string,
  options: { group?: string; priority?: JobPriority; runAtMs?: number } = {},
): Schedulable {
  seq += 1;
  return {
    id,
    seq,
    group: options.group ?? null,
    priority: options.priority ?? 'normal',
    runAtMs: options.runAtMs ?? 0,
  };
}

/** Takes every runnable job, in order. */
function drain(scheduler: Scheduler<Schedulable>): string[] {
  const taken: string[] = [];
  for (let entry = scheduler.next(); entry !== undefined; entry = scheduler.next()) taken.push(entry.id);
  return taken;
}

describe('Scheduler', () => {
  it('runs ungrouped jobs first in, first out, and refuses a duplicate id', () => {
    const scheduler = new Scheduler();
    for (const id of ['a', 'b', 'c']) expect(scheduler.add(job(id), 0)).toBe(true);
    expect(scheduler.add(job('b'), 0)).toBe(false);
    expect(scheduler.size).toBe(3);
    expect(drain(scheduler)).toEqual(['a', 'b', 'c']);
  });

  it('takes a waiting first-lane job before any normal one', () => {
    const scheduler = new Scheduler();
    scheduler.add(job('g1'), 0);
    scheduler.add(job('g2'), 0);
    scheduler.add(job('d1', { priority: 'first' }), 0);
    scheduler.add(job('d2', { priority: 'first' }), 0);
    expect(drain(scheduler)).toEqual(['d1', 'd2', 'g1', 'g2']);
  });

  it('runs a group one job at a time, in order, the next only once the head finished', () => {
    const scheduler = new Scheduler();
    const [first, second, third] = [
      job('1', { group: 'c' }),
      job('2', { group: 'c' }),
      job('3', { group: 'c' }),
    ];
    for (const entry of [first!, second!, third!]) scheduler.add(entry, 0);
    scheduler.add(job('other', { group: 'd' }), 0);
    expect(drain(scheduler)).toEqual(['1', 'other']);
    scheduler.finish(first!, 0);
    expect(drain(scheduler)).toEqual(['2']);
    scheduler.finish(second!, 0);
    scheduler.finish(third!, 0);
    expect(drain(scheduler)).toEqual(['3']);
    expect(scheduler.size).toBe(1);
  });

  it('keeps a group waiting while its head waits for a retry', () => {
    const scheduler = new Scheduler();
    const head = job('head', { group: 'c' });
    scheduler.add(head, 0);
    scheduler.add(job('behind', { group: 'c' }), 0);
    expect(drain(scheduler)).toEqual(['head']);
    scheduler.retry(head, 1000, 0);
    expect(drain(scheduler)).toEqual([]);
    expect(scheduler.nextDueAtMs()).toBe(1000);
    scheduler.releaseDue(999);
    expect(drain(scheduler)).toEqual([]);
    scheduler.releaseDue(1000);
    expect(drain(scheduler)).toEqual(['head']);
    scheduler.finish(head, 1000);
    expect(drain(scheduler)).toEqual(['behind']);
  });

  it('releases delayed jobs by due time, then by order of addition, into their lanes', () => {
    const scheduler = new Scheduler();
    scheduler.add(job('late', { runAtMs: 300 }), 0);
    scheduler.add(job('tie-1', { runAtMs: 200 }), 0);
    scheduler.add(job('tie-2', { runAtMs: 200, priority: 'first' }), 0);
    scheduler.add(job('soon', { runAtMs: 100 }), 0);
    expect(scheduler.delayedCount).toBe(4);
    expect(scheduler.nextDueAtMs()).toBe(100);
    scheduler.releaseDue(250);
    expect(scheduler.delayedCount).toBe(1);
    expect(drain(scheduler)).toEqual(['tie-2', 'soon', 'tie-1']);
    scheduler.releaseDue(300);
    expect(drain(scheduler)).toEqual(['late']);
    expect(scheduler.nextDueAtMs()).toBeNull();
  });

  it('runs a job added already due at once, and one due later only after its time', () => {
    const scheduler = new Scheduler();
    scheduler.add(job('due', { runAtMs: 50 }), 100);
    scheduler.add(job('later', { runAtMs: 150 }), 100);
    expect(drain(scheduler)).toEqual(['due']);
    scheduler.releaseDue(150);
    expect(drain(scheduler)).toEqual(['later']);
  });
});

describe('Fifo and DelayHeap', () => {
  it('keep their order over many items', () => {
    const fifo = new Fifo<number>();
    for (let n = 0; n < 5000; n++) fifo.push(n);
    const out: number[] = [];
    for (let n = 0; n < 3000; n++) out.push(fifo.shift()!);
    for (let n = 5000; n < 6000; n++) fifo.push(n);
    while (fifo.size > 0) out.push(fifo.shift()!);
    expect(out).toEqual(Array.from({ length: 6000 }, (_, n) => n));
    expect(fifo.shift()).toBeUndefined();

    const heap = new DelayHeap<Schedulable>();
    const times = Array.from({ length: 500 }, (_, n) => (n * 7919) % 101);
    for (const [n, runAtMs] of times.entries())
      heap.push({ id: String(n), seq: n, group: null, priority: 'normal', runAtMs });
    const popped: Array<[number, number]> = [];
    for (let entry = heap.pop(); entry !== undefined; entry = heap.pop())
      popped.push([entry.runAtMs, entry.seq]);
    const sorted = [...popped].sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    expect(popped).toEqual(sorted);
    expect(popped).toHaveLength(500);
  });
});
