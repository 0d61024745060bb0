/**
 * The metrics registry, and the only importer of prom-client. Every instrument lives in a
 * registry of its own (never prom-client's global one), so any number of services — and tests —
 * can run in one process without their counts mixing.
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

/** Jobs in the queue by state, as the queue counts them at scrape time. */
export interface QueueDepth {
  waiting: number;
  active: number;
  delayed: number;
}

export interface MetricsOptions {
  /** Asked on every scrape for `llm_webhook_queue_jobs`; omitted = the gauge stays empty. */
  queueCounts?: () => Promise<QueueDepth>;
}

export interface Metrics {
  readonly registry: Registry;
  /** `llm_webhook_http_request_duration_seconds{method,route,status_code}`; `route` is the route pattern, never the raw URL. */
  readonly httpRequestDuration: Histogram<'method' | 'route' | 'status_code'>;
  /** `llm_webhook_tasks_accepted_total`: tasks answered 200 at `POST /webhook`. */
  readonly tasksAccepted: Counter;
  /** `llm_webhook_tasks_completed_total`: tasks whose reply was delivered. */
  readonly tasksCompleted: Counter;
  /** `llm_webhook_tasks_failed_total{reason}`: tasks that ended failed, by error type. */
  readonly tasksFailed: Counter<'reason'>;
  /** `llm_webhook_queue_jobs{state}`: jobs waiting, active and delayed, read at scrape time. */
  readonly queueJobs: Gauge<'state'>;
  /** `llm_webhook_llm_call_duration_seconds{model,outcome}`. */
  readonly llmCallDuration: Histogram<'model' | 'outcome'>;
  /** `llm_webhook_callback_attempts_total{outcome=delivered|retry|failed}`. */
  readonly callbackAttempts: Counter<'outcome'>;
  /** Destination breakers entering a state (no destination label: their number is unbounded). */
  readonly callbackBreakerTransitions: Counter<'state'>;
  /** Deliveries put off without an attempt: `breaker_open` (held) or `in_flight_limit`. */
  readonly callbackDeliveriesDeferred: Counter<'reason'>;
  /** `llm_webhook_history_messages`: history length put into each prompt. */
  readonly historyMessages: Histogram;
  /** The Prometheus text exposition of every metric of this registry. */
  render(): Promise<{ contentType: string; body: string }>;
}

const PREFIX = 'llm_webhook_';
const QUEUE_COUNTS_TIMEOUT_MS = 2000;

export function createMetrics(options: MetricsOptions = {}): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: PREFIX });

  const registers = [registry];
  const queueCounts = options.queueCounts;

  const httpRequestDuration = new Histogram({
    name: `${PREFIX}http_request_duration_seconds`,
    help: 'HTTP request duration in seconds, by method, route pattern and status code.',
    labelNames: ['method', 'route', 'status_code'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers,
  });
  const tasksAccepted = new Counter({
    name: `${PREFIX}tasks_accepted_total`,
    help: 'Tasks accepted at POST /webhook.',
    registers,
  });
  const tasksCompleted = new Counter({
    name: `${PREFIX}tasks_completed_total`,
    help: 'Tasks completed: reply generated and callback delivered.',
    registers,
  });
  const tasksFailed = new Counter({
    name: `${PREFIX}tasks_failed_total`,
    help: 'Tasks that ended failed, by reason.',
    labelNames: ['reason'] as const,
    registers,
  });
  const queueJobs = new Gauge({
    name: `${PREFIX}queue_jobs`,
    help: 'Queue jobs not finished, by state.',
    labelNames: ['state'] as const,
    registers,
    async collect() {
      if (queueCounts === undefined) return;
      // A scrape must still succeed, and promptly, while the backend is down: the gauge keeps
      // its previous values.
      let timer: NodeJS.Timeout | undefined;
      try {
        const counts = await Promise.race([
          queueCounts(),
          new Promise<never>((_, reject) => {
            timer = setTimeout(() => reject(new Error('queue counts timed out')), QUEUE_COUNTS_TIMEOUT_MS);
          }),
        ]);
        this.set({ state: 'waiting' }, counts.waiting);
        this.set({ state: 'active' }, counts.active);
        this.set({ state: 'delayed' }, counts.delayed);
      } catch {
        // the previous values stay
      } finally {
        clearTimeout(timer);
      }
    },
  });
  const llmCallDuration = new Histogram({
    name: `${PREFIX}llm_call_duration_seconds`,
    help: 'LLM call duration in seconds, by model and outcome.',
    labelNames: ['model', 'outcome'] as const,
    buckets: [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120],
    registers,
  });
  const callbackAttempts = new Counter({
    name: `${PREFIX}callback_attempts_total`,
    help: 'Callback delivery attempts, by outcome.',
    labelNames: ['outcome'] as const,
    registers,
  });
  const callbackBreakerTransitions = new Counter({
    name: `${PREFIX}callback_breaker_transitions_total`,
    help: 'Destination circuit breakers entering a state (open, half_open, closed).',
    labelNames: ['state'] as const,
    registers,
  });
  const callbackDeliveriesDeferred = new Counter({
    name: `${PREFIX}callback_deliveries_deferred_total`,
    help: 'Callback deliveries put off without an attempt, by reason (breaker_open: held; in_flight_limit).',
    labelNames: ['reason'] as const,
    registers,
  });
  const historyMessages = new Histogram({
    name: `${PREFIX}history_messages`,
    help: 'History messages put into each prompt.',
    buckets: [0, 1, 2, 4, 8, 16, 32, 64, 128],
    registers,
  });

  return {
    registry,
    httpRequestDuration,
    tasksAccepted,
    tasksCompleted,
    tasksFailed,
    queueJobs,
    llmCallDuration,
    callbackAttempts,
    callbackBreakerTransitions,
    callbackDeliveriesDeferred,
    historyMessages,
    async render() {
      return { contentType: registry.contentType, body: await registry.metrics() };
    },
  };
}
