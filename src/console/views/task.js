/** One task: its timeline (accepted, LLM attempts, generation, each delivery) and a redeliver button. */
import { useState } from 'preact/hooks';
import { api } from '../api.js';
import { when } from '../format.js';
import { html } from '../html.js';
import { usePoll } from '../poll.js';
import { href } from '../route.js';
import { ErrorNotice } from './notice.js';

function Timeline({ task }) {
  const events = [{ at: task.created_at, text: 'Accepted' }];
  if (task.attempts.llm > 0) {
    events.push({ at: null, text: `${task.attempts.llm} LLM call${task.attempts.llm === 1 ? '' : 's'}` });
  }
  if (task.completed_at) {
    events.push({
      at: task.completed_at,
      text:
        task.generated_response === undefined
          ? `Generation failed: ${task.error?.type ?? ''}`
          : 'Reply generated',
    });
  }
  task.deliveries.forEach((delivery, index) => {
    const outcome = delivery.status_code === undefined ? delivery.error : `HTTP ${delivery.status_code}`;
    events.push({
      at: delivery.at,
      text: `Delivery ${index + 1}: ${outcome} in ${Math.round(delivery.duration_ms)} ms`,
      delivery: true,
    });
  });
  return html`<ol class="timeline" aria-label="Timeline">
    ${events.map(
      (event) =>
        html`<li data-delivery=${event.delivery ? 'yes' : undefined}><time>${event.at ? when(event.at) : ''}</time> ${event.text}</li>`,
    )}
  </ol>`;
}

export function TaskDetail({ id }) {
  const {
    data: task,
    error,
    refresh,
  } = usePoll((signal) => api(`/tasks/${encodeURIComponent(id)}`, { signal }), id);
  const [message, setMessage] = useState(null);
  const finished = task?.status === 'completed' || task?.status === 'failed';
  const redeliver = async () => {
    setMessage(null);
    try {
      await api(`/tasks/${encodeURIComponent(id)}/redeliver`, { method: 'POST' });
      setMessage('Redelivery queued.');
      refresh();
    } catch (err) {
      setMessage(err.message);
    }
  };
  return html`<section aria-labelledby="task">
    <p><a href=${href('tasks')}>← Tasks</a></p>
    <h2 id="task">Task <code>${id}</code></h2>
    <${ErrorNotice} error=${error} />
    ${
      task &&
      html`<dl>
          <dt>Status</dt><dd class=${`status-${task.status}`} data-testid="task-status">${task.status}</dd>
          <dt>Conversation</dt><dd><a href=${href('conversations', task.conversation_id)}>${task.conversation_id}</a></dd>
          <dt>Destination</dt><dd>${task.destination}</dd>
          ${task.error && html`<dt>Error</dt><dd>${task.error.type}: ${task.error.message}</dd>`}
          ${task.generated_response !== undefined && html`<dt>Reply</dt><dd>${task.generated_response}</dd>`}
        </dl>
        <h3>Timeline</h3>
        <${Timeline} task=${task} />
        <p>
          <button type="button" onClick=${redeliver} disabled=${!finished}>Redeliver</button>
          ${!finished && html` <small>Only a finished task can be redelivered.</small>`}
          ${message && html` <span role="status">${message}</span>`}
        </p>`
    }
  </section>`;
}
