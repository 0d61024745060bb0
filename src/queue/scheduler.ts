/**
 * The in-memory scheduling of the embedded queue, pure: no I/O, no timers, time passed in. It
 * keeps the seam's ordering rules (job-queue.ts):
 *
 * - groups: the jobs of one group run one at a time, in the order they were added; only the
 *   head of a group is runnable, and a head waiting for its retry keeps its group waiting;
 * - lanes: a runnable `first` job is taken before any `normal` one; within a lane, first in,
 *   first out;
 * - delays: a job due later waits in a min-heap by due time (then by `seq`), and moves to its
 *   lane when `releaseDue` is called at or after that time; `nextDueAtMs` says when to call it.
 */
import type { JobPriority } from './job-queue.js';

/** What the scheduler needs of a job; the driver's own entries carry more. */
export interface Schedulable {
  readonly id: string;
  /** Order of addition, unique: ties between equal due times go to the lower. */
  readonly seq: number;
  readonly group: string | null;
  readonly priority: JobPriority;
  /** Epoch ms before which the job must not run. */
  runAtMs: number;
}

/** A FIFO with O(1) shift. */
export class Fifo<T> {
  private items: T[] = [];
  private head = 0;

  get size(): number {
    return this.items.length - this.head;
  }

  push(item: T): void {
    this.items.push(item);
  }

  peek(): T | undefined {
    return this.items[this.head];
  }

  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const item = this.items[this.head]!;
    this.head++;
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }
}

/** Min-heap by due time, then `seq`. */
export class DelayHeap<T extends Schedulable> {
  private readonly items: T[] = [];

  get size(): number {
    return this.items.length;
  }

  peek(): T | undefined {
    return this.items[0];
  }

  push(entry: T): void {
    const items = this.items;
    items.push(entry);
    let index = items.length - 1;
    while (index > 0) {
      const parent = (index - 1) >> 1;
      if (!before(items[index]!, items[parent]!)) break;
      [items[index], items[parent]] = [items[parent]!, items[index]!];
      index = parent;
    }
  }

  pop(): T | undefined {
    const items = this.items;
    const top = items[0];
    const last = items.pop();
    if (top === undefined || last === undefined || items.length === 0) return top;
    items[0] = last;
    let index = 0;
    for (;;) {
      const left = index * 2 + 1;
      const right = left + 1;
      let smallest = index;
      if (left < items.length && before(items[left]!, items[smallest]!)) smallest = left;
      if (right < items.length && before(items[right]!, items[smallest]!)) smallest = right;
      if (smallest === index) break;
      [items[index], items[smallest]] = [items[smallest]!, items[index]!];
      index = smallest;
    }
    return top;
  }
}

function before(a: Schedulable, b: Schedulable): boolean {
  return a.runAtMs < b.runAtMs || (a.runAtMs === b.runAtMs && a.seq < b.seq);
}

export class Scheduler<T extends Schedulable> {
  private readonly entries = new Map<string, T>();
  private readonly groups = new Map<string, Fifo<T>>();
  private readonly lanes: Record<JobPriority, Fifo<T>> = { first: new Fifo(), normal: new Fifo() };
  private readonly delayed = new DelayHeap<T>();

  /** Jobs held: waiting, blocked behind their group, delayed or running. */
  get size(): number {
    return this.entries.size;
  }

  /** Jobs waiting for their due time. */
  get delayedCount(): number {
    return this.delayed.size;
  }

  /** Adds a job; `false` (and nothing changes) when one with its id is held already. */
  add(entry: T, nowMs: number): boolean {
    if (this.entries.has(entry.id)) return false;
    this.entries.set(entry.id, entry);
    if (entry.group === null) {
      this.schedule(entry, nowMs);
      return true;
    }
    const queue = this.groups.get(entry.group);
    if (queue === undefined) {
      const fresh = new Fifo<T>();
      fresh.push(entry);
      this.groups.set(entry.group, fresh);
      this.schedule(entry, nowMs);
    } else {
      queue.push(entry);
    }
    return true;
  }

  /** Whether jobs of `group` are held (waiting, delayed or running). */
  hasGroup(group: string): boolean {
    return this.groups.has(group);
  }

  /** Takes the next runnable job (the `first` lane before the `normal` one), or `undefined`. */
  next(): T | undefined {
    return this.lanes.first.shift() ?? this.lanes.normal.shift();
  }

  /** A taken job ended for good: it is forgotten, and the next job of its group becomes runnable. */
  finish(entry: T, nowMs: number): void {
    this.entries.delete(entry.id);
    if (entry.group === null) return;
    const queue = this.groups.get(entry.group);
    if (queue === undefined) return;
    queue.shift();
    const following = queue.peek();
    if (following === undefined) this.groups.delete(entry.group);
    else this.schedule(following, nowMs);
  }

  /** A taken job runs again at `runAtMs`; it stays its group's head, so its group waits with it. */
  retry(entry: T, runAtMs: number, nowMs: number): void {
    entry.runAtMs = runAtMs;
    this.schedule(entry, nowMs);
  }

  /** Moves every delayed job due by `nowMs` to its lane. */
  releaseDue(nowMs: number): void {
    for (
      let due = this.delayed.peek();
      due !== undefined && due.runAtMs <= nowMs;
      due = this.delayed.peek()
    ) {
      this.delayed.pop();
      this.lanes[due.priority].push(due);
    }
  }

  /** When the earliest delayed job is due, or `null` when none is delayed. */
  nextDueAtMs(): number | null {
    return this.delayed.peek()?.runAtMs ?? null;
  }

  private schedule(entry: T, nowMs: number): void {
    if (entry.runAtMs <= nowMs) this.lanes[entry.priority].push(entry);
    else this.delayed.push(entry);
  }
}
