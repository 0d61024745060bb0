import { describe, expect, it } from 'vitest';
import { createMetrics } from './metrics.js';

/** The value of one sample line (`name{labels} value`) of a Prometheus text exposition. */
function sample(body: string, series: string): number | undefined {
  const line = body.split('\n').find((entry) => entry.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('createMetrics', () => {
  it('renders every instrument under the llm_webhook_ prefix in Prometheus text format', async () => {
    const metrics = createMetrics();
    metrics.tasksAccepted.inc();
    metrics.tasksAccepted.inc();
    metrics.tasksCompleted.inc();
    metrics.tasksFailed.inc({ reason: 'llm_auth' });
    metrics.callbackAttempts.inc({ outcome: 'delivered' });
    metrics.llmCallDuration.observe({ model: 'm', outcome: 'success' }, 0.3);
    metrics.historyMessages.observe(4);
    metrics.httpRequestDuration.observe({ method: 'POST', route: '/webhook', status_code: '200' }, 0.01);

    const { contentType, body } = await metrics.render();
    expect(contentType).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(sample(body, 'llm_webhook_tasks_accepted_total')).toBe(2);
    expect(sample(body, 'llm_webhook_tasks_completed_total')).toBe(1);
    expect(sample(body, 'llm_webhook_tasks_failed_total{reason="llm_auth"}')).toBe(1);
    expect(sample(body, 'llm_webhook_callback_attempts_total{outcome="delivered"}')).toBe(1);
    expect(sample(body, 'llm_webhook_llm_call_duration_seconds_count{model="m",outcome="success"}')).toBe(1);
    expect(sample(body, 'llm_webhook_history_messages_sum')).toBe(4);
    expect(
      sample(
        body,
        'llm_webhook_http_request_duration_seconds_count{method="POST",route="/webhook",status_code="200"}',
      ),
    ).toBe(1);
    expect(body).toContain('llm_webhook_process_cpu_user_seconds_total');
    for (const line of body.split('\n')) {
      if (line === '' || line.startsWith('#')) continue;
      expect(line).toMatch(/^llm_webhook_[a-z0-9_]+(\{[^}]*\})? (-?[\d.e+-]+|NaN|Nan|[+-]Inf)$/);
    }
  });

  it('keeps separate registries apart', async () => {
    const first = createMetrics();
    const second = createMetrics();
    first.tasksAccepted.inc(3);
    expect(sample((await second.render()).body, 'llm_webhook_tasks_accepted_total')).toBe(0);
    expect(sample((await first.render()).body, 'llm_webhook_tasks_accepted_total')).toBe(3);
  });

  it('reads the queue counts at scrape time', async () => {
    let waiting = 1;
    const metrics = createMetrics({ queueCounts: async () => ({ waiting, active: 2, delayed: 3 }) });
    expect(sample((await metrics.render()).body, 'llm_webhook_queue_jobs{state="waiting"}')).toBe(1);
    waiting = 7;
    const { body } = await metrics.render();
    expect(sample(body, 'llm_webhook_queue_jobs{state="waiting"}')).toBe(7);
    expect(sample(body, 'llm_webhook_queue_jobs{state="active"}')).toBe(2);
    expect(sample(body, 'llm_webhook_queue_jobs{state="delayed"}')).toBe(3);
  });

  it('still renders when the queue cannot be counted', async () => {
    const metrics = createMetrics({ queueCounts: () => Promise.reject(new Error('down')) });
    metrics.tasksAccepted.inc();
    const { body } = await metrics.render();
    expect(sample(body, 'llm_webhook_tasks_accepted_total')).toBe(1);
  });
});
