/**
 * Turns the medians of every scenario into table rows, each compared with its baseline and its
 * target, and prints them as one plain-text table.
 */
import type { EndToEndFigures } from './e2e.js';
import type { IngestFigures } from './ingest.js';
import type { IsolationFigures } from './isolation.js';

export interface Measured<T> {
  median: T;
  runs: T[];
  /** Median over runs of each process's peak RSS, in MiB, by process name. */
  peakRssMiB?: Record<string, number>;
}

export interface Results {
  /** By `baseline`, `embedded`, `redis`. */
  ingest: Record<string, Measured<IngestFigures>>;
  /** By `baseline`, `embedded`, `redis`. */
  instant: Record<string, Measured<EndToEndFigures>>;
  /** By `embedded`, `redis`. */
  slow: Record<string, Measured<EndToEndFigures>>;
  /** By `redis-1w`, `redis-2w`. */
  scale: Record<string, Measured<EndToEndFigures>>;
  /** By `embedded`, `redis`. */
  isolation: Record<string, Measured<IsolationFigures>>;
}

export interface Row {
  scenario: string;
  mode: string;
  metric: string;
  value: number;
  /** value / reference, and what the reference is. */
  ratio?: { value: number; of: string };
  target?: string;
  pass?: boolean;
}

export interface ReportSettings {
  slowLatencyMs: number;
  slowConcurrency: number;
}

const INGEST_RATIO_TARGET: Record<string, number> = { embedded: 0.5, redis: 0.4, 'redis (api alone)': 0.4 };
const INSTANT_TARGET_PER_SECOND: Record<string, number> = { embedded: 2500, redis: 2000 };
const SLOW_RATIO_TARGET = 0.8;
const OVERHEAD_P50_TARGET_MS = 5;
const OVERHEAD_P99_TARGET_MS = 50;
const PEAK_RSS_TARGET_MIB = 200;
/** A healthy receiver beside a bad one: at most this many times its p50 alone (SPEC §9). */
const ISOLATION_RATIO_TARGET = 3;

function sum(runs: readonly Record<string, number>[], key: string): number {
  return runs.reduce((total, run) => total + (run[key] ?? 0), 0);
}

function atLeast(value: number, target: number): boolean {
  return Number.isFinite(value) && value >= target;
}

function atMost(value: number, target: number): boolean {
  return Number.isFinite(value) && value <= target;
}

export function buildRows(results: Results, settings: ReportSettings): Row[] {
  const rows: Row[] = [];

  const ingestBaseline = results.ingest.baseline?.median.acceptedPerSecond;
  for (const [mode, measured] of Object.entries(results.ingest)) {
    const { median } = measured;
    const ratio = ingestBaseline === undefined ? undefined : median.acceptedPerSecond / ingestBaseline;
    const target = INGEST_RATIO_TARGET[mode];
    rows.push({
      scenario: '1 ingest',
      mode,
      metric: 'accepted/s',
      value: median.acceptedPerSecond,
      ...(ratio === undefined ? {} : { ratio: { value: ratio, of: 'baseline' } }),
      ...(target === undefined || ratio === undefined
        ? {}
        : { target: `ratio >= ${target}`, pass: atLeast(ratio, target) }),
    });
    rows.push({ scenario: '1 ingest', mode, metric: 'latency p50 ms', value: median.p50Ms });
    rows.push({ scenario: '1 ingest', mode, metric: 'latency p99 ms', value: median.p99Ms });
    const failures = sum(measured.runs, 'non2xx') + sum(measured.runs, 'errors');
    rows.push({
      scenario: '1 ingest',
      mode,
      metric: 'non-2xx+errors (all runs)',
      value: failures,
      target: '= 0',
      pass: failures === 0,
    });
  }

  const endToEnd = (
    scenario: string,
    mode: string,
    measured: Measured<EndToEndFigures>,
    reference: { value: number; of: string } | undefined,
    target: { text: string; pass: boolean } | undefined,
    overhead: boolean,
  ): void => {
    const { median } = measured;
    rows.push({
      scenario,
      mode,
      metric: 'tasks/s',
      value: median.completionsPerSecond,
      ...(reference === undefined
        ? {}
        : { ratio: { value: median.completionsPerSecond / reference.value, of: reference.of } }),
      ...(target === undefined ? {} : { target: target.text, pass: target.pass }),
    });
    if (overhead) {
      rows.push({
        scenario,
        mode,
        metric: 'overhead p50 ms',
        value: median.overheadP50Ms,
        target: `<= ${OVERHEAD_P50_TARGET_MS}`,
        pass: atMost(median.overheadP50Ms, OVERHEAD_P50_TARGET_MS),
      });
      rows.push({
        scenario,
        mode,
        metric: 'overhead p99 ms',
        value: median.overheadP99Ms,
        target: `<= ${OVERHEAD_P99_TARGET_MS}`,
        pass: atMost(median.overheadP99Ms, OVERHEAD_P99_TARGET_MS),
      });
    } else {
      rows.push({ scenario, mode, metric: 'accept->callback p50 ms', value: median.p50Ms });
      rows.push({ scenario, mode, metric: 'accept->callback p99 ms', value: median.p99Ms });
    }
    if (median.serviceCpuMsPerTask !== undefined) {
      rows.push({ scenario, mode, metric: 'service CPU ms/task', value: median.serviceCpuMsPerTask });
    }
    const lost = sum(measured.runs, 'lost') + sum(measured.runs, 'rejected');
    rows.push({
      scenario,
      mode,
      metric: 'lost+rejected (all runs)',
      value: lost,
      target: '= 0',
      pass: lost === 0,
    });
    const failed = sum(measured.runs, 'failed');
    if (failed > 0) rows.push({ scenario, mode, metric: 'failed callbacks (all runs)', value: failed });
  };

  const instantBaseline = results.instant.baseline?.median.completionsPerSecond;
  for (const [mode, measured] of Object.entries(results.instant)) {
    const target = INSTANT_TARGET_PER_SECOND[mode];
    endToEnd(
      '2 e2e instant',
      mode,
      measured,
      instantBaseline === undefined ? undefined : { value: instantBaseline, of: 'baseline' },
      target === undefined
        ? undefined
        : { text: `>= ${target}/s`, pass: atLeast(measured.median.completionsPerSecond, target) },
      false,
    );
  }

  const ideal = settings.slowConcurrency / (settings.slowLatencyMs / 1000);
  for (const [mode, measured] of Object.entries(results.slow)) {
    const ratio = measured.median.completionsPerSecond / ideal;
    endToEnd(
      `3 e2e slow LLM`,
      mode,
      measured,
      { value: ideal, of: 'ideal' },
      { text: `ratio >= ${SLOW_RATIO_TARGET}`, pass: atLeast(ratio, SLOW_RATIO_TARGET) },
      true,
    );
  }

  // Memory rows after every slow-LLM row, one per process.
  for (const [mode, measured] of Object.entries(results.slow)) {
    for (const [name, mib] of Object.entries(measured.peakRssMiB ?? {})) {
      rows.push({
        scenario: '4 memory (slow LLM)',
        mode: `${mode}: ${name.replace(/^service /, '')}`,
        metric: 'peak RSS MiB',
        value: mib,
        target: `<= ${PEAK_RSS_TARGET_MIB}`,
        pass: atMost(mib, PEAK_RSS_TARGET_MIB),
      });
    }
  }

  const oneWorker = results.scale['redis-1w']?.median.completionsPerSecond;
  for (const [mode, measured] of Object.entries(results.scale)) {
    endToEnd(
      '5 scale-out',
      mode,
      measured,
      oneWorker === undefined ? undefined : { value: oneWorker, of: 'redis-1w' },
      undefined,
      false,
    );
  }
  for (const [mode, measured] of Object.entries(results.isolation)) {
    const { baselineP50Ms, deadP50Ms, failingP50Ms } = measured.median;
    rows.push({ scenario: '5 isolation', mode, metric: 'healthy p50 ms, alone', value: baselineP50Ms });
    for (const [metric, value] of [
      ['healthy p50 ms, beside a dead receiver', deadP50Ms],
      ['healthy p50 ms, beside a 500 receiver', failingP50Ms],
    ] as const) {
      const ratio = value / baselineP50Ms;
      rows.push({
        scenario: '5 isolation',
        mode,
        metric,
        value,
        ratio: { value: ratio, of: 'alone' },
        target: `ratio <= ${ISOLATION_RATIO_TARGET}`,
        pass: atMost(ratio, ISOLATION_RATIO_TARGET),
      });
    }
  }
  return rows;
}

function formatNumber(value: number): string {
  if (!Number.isFinite(value)) return String(value);
  if (Math.abs(value) >= 100 || Number.isInteger(value)) return value.toFixed(0);
  return value.toFixed(1);
}

export function formatTable(rows: readonly Row[]): string {
  const header = ['scenario', 'mode', 'metric', 'value', 'ratio', 'target', 'result'];
  const lines = rows.map((row) => [
    row.scenario,
    row.mode,
    row.metric,
    formatNumber(row.value),
    row.ratio === undefined ? '' : `${row.ratio.value.toFixed(2)} of ${row.ratio.of}`,
    row.target ?? '',
    row.pass === undefined ? '' : row.pass ? 'pass' : 'MISS',
  ]);
  const widths = header.map((title, column) =>
    Math.max(title.length, ...lines.map((line) => line[column]!.length)),
  );
  const render = (cells: readonly string[]): string =>
    `| ${cells.map((cell, column) => cell.padEnd(widths[column]!)).join(' | ')} |`;
  return [render(header), render(widths.map((width) => '-'.repeat(width))), ...lines.map(render)].join('\n');
}
