/** Tasks: filters in the URL, a newest-first page (one GET /tasks), older pages by cursor, bulk redelivery. */
import { useState } from 'preact/hooks';
import { api, query } from '../api.js';
import { isoOfLocal, localOfIso, when } from '../format.js';
import { html } from '../html.js';
import { usePoll } from '../poll.js';
import { href, navigate } from '../route.js';
import { Confirm } from './confirm.js';
import { ErrorNotice } from './notice.js';

const STATUSES = ['queued', 'processing', 'delivering', 'completed', 'failed'];
const FILTERS = ['status', 'conversation_id', 'destination', 'since', 'until'];

function filtersOf(params) {
  return Object.fromEntries(FILTERS.filter((key) => params[key]).map((key) => [key, params[key]]));
}

function FilterForm({ filters }) {
  const submit = (event) => {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    navigate('tasks', null, {
      status: form.get('status'),
      conversation_id: form.get('conversation_id').trim(),
      destination: form.get('destination').trim(),
      since: isoOfLocal(form.get('since')),
      until: isoOfLocal(form.get('until')),
    });
  };
  return html`<form class="filters" onSubmit=${submit} aria-label="Filter tasks">
    <label>Status
      <select name="status" value=${filters.status ?? ''}>
        <option value="">any</option>
        ${STATUSES.map((status) => html`<option value=${status}>${status}</option>`)}
      </select>
    </label>
    <label>Conversation <input name="conversation_id" value=${filters.conversation_id ?? ''} /></label>
    <label>Destination <input name="destination" placeholder="scheme://host:port" value=${filters.destination ?? ''} /></label>
    <label>Since <input name="since" type="datetime-local" value=${localOfIso(filters.since)} /></label>
    <label>Until <input name="until" type="datetime-local" value=${localOfIso(filters.until)} /></label>
    <button type="submit">Apply</button>
    <a href=${href('tasks')}>Clear</a>
  </form>`;
}

function BulkRedeliver({ filters, onDone }) {
  const [matched, setMatched] = useState(null);
  const [message, setMessage] = useState(null);
  const body = {
    ...(filters.status === 'completed' || filters.status === 'failed' ? { status: filters.status } : {}),
    ...(filters.conversation_id ? { conversation_id: filters.conversation_id } : {}),
    ...(filters.destination ? { destination: filters.destination } : {}),
    ...(filters.since ? { since: filters.since } : {}),
    ...(filters.until ? { until: filters.until } : {}),
  };
  const ask = async () => {
    setMessage(null);
    try {
      setMatched(
        (await api('/tasks/redeliver', { method: 'POST', body: { ...body, dry_run: true } })).matched,
      );
    } catch (error) {
      setMessage(error.message);
    }
  };
  const confirm = async () => {
    setMatched(null);
    try {
      const result = await api('/tasks/redeliver', { method: 'POST', body });
      setMessage(`${result.redelivering} deliveries queued.`);
      onDone();
    } catch (error) {
      setMessage(error.message);
    }
  };
  return html`<p>
    <button type="button" onClick=${ask}>Redeliver matching finished tasks…</button>
    ${message && html` <span role="status">${message}</span>`}
    <${Confirm}
      open=${matched !== null}
      title="Redeliver these tasks?"
      confirmLabel=${`Redeliver ${matched ?? 0}`}
      onConfirm=${confirm}
      onCancel=${() => setMatched(null)}
    >
      <p>${matched} finished tasks match the filter; each callback will be sent again.</p>
    <//>
  </p>`;
}

export function Tasks({ params }) {
  const filters = filtersOf(params);
  const path = `/tasks${query({ ...filters, limit: 50, cursor: params.cursor })}`;
  const { data, error, refresh } = usePoll((signal) => api(path, { signal }), path);
  return html`<section aria-labelledby="tasks">
    <h2 id="tasks">Tasks</h2>
    <${FilterForm} filters=${filters} key=${JSON.stringify(filters)} />
    <${BulkRedeliver} filters=${filters} onDone=${refresh} />
    <${ErrorNotice} error=${error} />
    ${
      data &&
      html`<div class="table-wrap"><table>
          <thead><tr><th>Created</th><th>Status</th><th>Conversation</th><th class="hide-narrow">Destination</th><th class="hide-narrow">LLM / callback attempts</th></tr></thead>
          <tbody>
            ${data.tasks.map(
              (task) => html`<tr data-task=${task.task_id}>
                <td><a href=${href('tasks', task.task_id)}>${when(task.created_at)}</a></td>
                <td class=${`status-${task.status}`}>${task.status}</td>
                <td class="wrap">${task.conversation_id}</td>
                <td class="wrap hide-narrow">${task.destination}</td>
                <td class="hide-narrow">${task.attempts.llm} / ${task.attempts.callback}</td>
              </tr>`,
            )}
          </tbody>
        </table></div>
        ${data.tasks.length === 0 && html`<p>No task matches.</p>`}
        <p>
          ${params.cursor && html`<a href=${href('tasks', null, filters)}>Newest</a> `}
          ${data.next_cursor && html`<a href=${href('tasks', null, { ...filters, cursor: data.next_cursor })}>Older</a>`}
        </p>`
    }
  </section>`;
}
