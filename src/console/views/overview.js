/** Overview: the queue now, and per-minute tasks, LLM latency and callback success (one GET /stats). */
import { api, query } from '../api.js';
import { Chart } from '../chart.js';
import { ago, ms, percent } from '../format.js';
import { html } from '../html.js';
import { usePoll } from '../poll.js';
import { href, navigate } from '../route.js';
import { ErrorNotice } from './notice.js';

const RANGES = [30, 60, 180, 720, 1440];

export function Overview({ params }) {
  const minutes = RANGES.includes(Number(params.minutes)) ? Number(params.minutes) : 60;
  const { data, error } = usePoll((signal) => api(`/stats${query({ minutes })}`, { signal }), minutes);
  const times = data?.series.map((point) => Date.parse(point.minute) / 1000) ?? [];
  const pick = (name) => data?.series.map((point) => point[name]) ?? [];
  return html`<section aria-labelledby="overview">
    <h2 id="overview">Overview</h2>
    <${ErrorNotice} error=${error} />
    <label>Range <select value=${minutes} onChange=${(e) => navigate('overview', null, { minutes: e.currentTarget.value })}>
      ${RANGES.map((n) => html`<option value=${n}>last ${n >= 120 ? `${n / 60} h` : `${n} min`}</option>`)}
    </select></label>
    ${
      data &&
      html`<div class="cards">
          <div>Waiting <b data-testid="queue-waiting">${data.queue.waiting}</b></div>
          <div>Running <b>${data.queue.active}</b></div>
          <div>Delayed <b>${data.queue.delayed}</b></div>
          <div>Oldest waiting <b>${ago(data.oldest_queued_at)}</b></div>
          <div>Accepted <b data-testid="total-accepted">${data.totals.accepted}</b></div>
          <div><a href=${href('tasks', null, { status: 'completed' })}>Completed</a> <b>${data.totals.completed}</b></div>
          <div><a href=${href('tasks', null, { status: 'failed' })}>Failed</a> <b>${data.totals.failed}</b></div>
          <div>LLM p50 / p95 <b>${ms(data.totals.llm_p50_ms)} / ${ms(data.totals.llm_p95_ms)}</b></div>
          <div>Callback success <b>${percent(data.totals.callback_success_rate)}</b></div>
        </div>
        <${Chart}
          title="Tasks per minute"
          times=${times}
          series=${[
            { label: 'accepted', values: pick('accepted') },
            { label: 'completed', values: pick('completed') },
            { label: 'failed', values: pick('failed') },
          ]}
        />
        <${Chart}
          title="LLM latency (ms)"
          times=${times}
          series=${[
            { label: 'p50', values: pick('llm_p50_ms') },
            { label: 'p95', values: pick('llm_p95_ms') },
          ]}
        />
        <${Chart}
          title="Callback success rate (%)"
          times=${times}
          series=${[
            {
              label: 'success',
              values: pick('callback_success_rate').map((rate) =>
                rate === null ? null : Math.round(rate * 1000) / 10,
              ),
            },
          ]}
        />`
    }
  </section>`;
}
