/** Reading what the test collector received: one trace as a tree, its spans by name, a printout. */
import { expect } from 'vitest';
import type { CollectedSpan } from './otlp-collector.js';

const KIND_NAMES = ['unspecified', 'internal', 'server', 'client', 'producer', 'consumer'];

/** The one span of `spans` named `name` (fails the test when there is not exactly one). */
export function onlySpan(spans: readonly CollectedSpan[], name: string): CollectedSpan {
  const found = spans.filter((span) => span.name === name);
  expect(
    found.map((span) => span.name),
    `exactly one span named ${name}`,
  ).toEqual([name]);
  return found[0]!;
}

/** The spans of `spans` whose parent is `parent`. */
export function childrenOf(spans: readonly CollectedSpan[], parent: CollectedSpan): CollectedSpan[] {
  return spans.filter((span) => span.parentSpanId === parent.spanId);
}

/** The trace as an indented tree, children in start order: what the README shows. */
export function renderTree(spans: readonly CollectedSpan[], show: readonly string[] = []): string {
  const ids = new Set(spans.map((span) => span.spanId));
  const byStart = [...spans].sort((a, b) => (a.startNs < b.startNs ? -1 : a.startNs > b.startNs ? 1 : 0));
  const lines: string[] = [];
  const visit = (span: CollectedSpan, depth: number): void => {
    const ms = Number(span.endNs - span.startNs) / 1e6;
    const attributes = show
      .filter((key) => span.attributes[key] !== undefined)
      .map((key) => `${key}=${JSON.stringify(span.attributes[key])}`);
    const indent = '  '.repeat(depth);
    lines.push(
      `${indent}${span.name}  (${KIND_NAMES[span.kind] ?? span.kind}, pid ${span.resource['process.pid']}, ${ms.toFixed(1)} ms)`,
    );
    if (attributes.length > 0) lines.push(`${indent}    ${attributes.join(' ')}`);
    for (const child of byStart.filter((candidate) => candidate.parentSpanId === span.spanId)) {
      visit(child, depth + 1);
    }
  };
  // Roots: no parent, or a parent the collector never received (a client's span, a killed run).
  for (const root of byStart.filter((span) => !ids.has(span.parentSpanId))) {
    if (root.parentSpanId !== '') lines.push(`(remote parent ${root.parentSpanId})`);
    visit(root, root.parentSpanId === '' ? 0 : 1);
  }
  return lines.join('\n');
}

/** Every attribute value of the spans, their events and their resources, as text. */
export function attributeTexts(spans: readonly CollectedSpan[]): string[] {
  return spans.flatMap((span) => [
    span.name,
    span.statusMessage,
    ...Object.entries(span.attributes).map(([key, value]) => `${key}=${JSON.stringify(value)}`),
    ...span.events.flatMap((event) => [
      event.name,
      ...Object.entries(event.attributes).map(([key, value]) => `${key}=${JSON.stringify(value)}`),
    ]),
    ...Object.entries(span.resource).map(([key, value]) => `${key}=${JSON.stringify(value)}`),
  ]);
}
