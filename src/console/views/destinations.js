/** Destinations: each callback origin's circuit breaker (GET /destinations), with a reset button. */
import { useState } from 'preact/hooks';
import { api } from '../api.js';
import { percent } from '../format.js';
import { html } from '../html.js';
import { usePoll } from '../poll.js';
import { ErrorNotice } from './notice.js';

export function Destinations() {
  const { data, error, refresh } = usePoll((signal) => api('/destinations', { signal }), 'destinations');
  const [message, setMessage] = useState(null);
  const reset = async (destination) => {
    setMessage(null);
    try {
      await api(`/destinations/${encodeURIComponent(destination)}/reset`, { method: 'POST' });
      setMessage(`${destination} reset.`);
      refresh();
    } catch (err) {
      setMessage(err.message);
    }
  };
  return html`<section aria-labelledby="destinations">
    <h2 id="destinations">Destinations</h2>
    <${ErrorNotice} error=${error} feature="Destination state" />
    ${message && html`<p role="status">${message}</p>`}
    ${
      data &&
      html`<div class="table-wrap"><table>
          <thead><tr><th>Destination</th><th>State</th><th>In flight</th><th>Held</th><th class="hide-narrow">Success</th><th class="hide-narrow">Last error</th><th></th></tr></thead>
          <tbody>
            ${data.destinations.map(
              (d) => html`<tr data-destination=${d.destination}>
                <td class="wrap">${d.destination}</td>
                <td class=${`state-${d.state}`}>${d.state.replace('_', '-')}</td>
                <td>${d.in_flight}</td>
                <td>${d.held}</td>
                <td class="hide-narrow">${percent(d.success_rate)}</td>
                <td class="wrap hide-narrow">${d.last_error ?? '–'}</td>
                <td><button type="button" onClick=${() => reset(d.destination)} aria-label=${`Reset ${d.destination}`}>Reset</button></td>
              </tr>`,
            )}
          </tbody>
        </table></div>
        ${data.destinations.length === 0 && html`<p>No destination yet.</p>`}`
    }
  </section>`;
}
