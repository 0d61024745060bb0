/** Usage: LLM tokens and cost by day, model or conversation (GET /usage, UTC days), with the period in the URL. */
import { api, query } from '../api.js';
import { html } from '../html.js';
import { usePoll } from '../poll.js';
import { navigate } from '../route.js';
import { ErrorNotice } from './notice.js';

const GROUPS = ['day', 'model', 'conversation'];

export function Usage({ params }) {
  const groupBy = GROUPS.includes(params.group_by) ? params.group_by : 'day';
  const path = `/usage${query({ group_by: groupBy, since: params.since, until: params.until })}`;
  const { data, error } = usePoll((signal) => api(path, { signal }), path);
  const submit = (event) => {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    navigate('usage', null, {
      group_by: form.get('group_by'),
      since: form.get('since'),
      until: form.get('until'),
    });
  };
  const cost = (value) => (value === null || value === undefined ? '–' : `$${Number(value).toFixed(4)}`);
  return html`<section aria-labelledby="usage">
    <h2 id="usage">Usage</h2>
    <form class="filters" onSubmit=${submit} aria-label="Usage period" key=${path}>
      <label>Group by <select name="group_by" value=${groupBy}>${GROUPS.map((g) => html`<option value=${g}>${g}</option>`)}</select></label>
      <label>First day <input name="since" type="date" value=${params.since ?? ''} /></label>
      <label>Last day <input name="until" type="date" value=${params.until ?? ''} /></label>
      <button type="submit">Apply</button>
    </form>
    <${ErrorNotice} error=${error} feature="Usage" />
    ${
      data &&
      html`<div class="table-wrap"><table>
          <thead><tr><th>${groupBy}</th><th>Requests</th><th>Prompt</th><th>Completion</th><th>Total tokens</th><th>Cost</th></tr></thead>
          <tbody>
            ${data.usage.map(
              (row) => html`<tr>
                <td class="wrap">${row.key}</td><td>${row.requests}</td><td>${row.prompt_tokens}</td>
                <td>${row.completion_tokens}</td><td>${row.total_tokens}</td><td>${cost(row.cost)}</td>
              </tr>`,
            )}
          </tbody>
          <tfoot><tr><th>Total</th><th>${data.total.requests}</th><th>${data.total.prompt_tokens}</th>
            <th>${data.total.completion_tokens}</th><th>${data.total.total_tokens}</th><th>${cost(data.total.cost)}</th></tr></tfoot>
        </table></div>`
    }
  </section>`;
}
