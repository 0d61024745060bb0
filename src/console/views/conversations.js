/** Conversations: most recently active first (GET /conversations); one opened as a thread, with erase. */
import { useState } from 'preact/hooks';
import { api, query } from '../api.js';
import { when } from '../format.js';
import { html } from '../html.js';
import { usePoll } from '../poll.js';
import { href, navigate } from '../route.js';
import { Confirm } from './confirm.js';
import { ErrorNotice } from './notice.js';

function Thread({ id }) {
  const path = `/conversations/${encodeURIComponent(id)}/messages`;
  const { data, error } = usePoll((signal) => api(path, { signal }), path);
  const [asking, setAsking] = useState(false);
  const [failure, setFailure] = useState(null);
  const erase = async () => {
    setAsking(false);
    try {
      await api(`/conversations/${encodeURIComponent(id)}`, { method: 'DELETE' });
      navigate('conversations');
    } catch (err) {
      setFailure(err.message);
    }
  };
  return html`<section aria-labelledby="thread">
    <p><a href=${href('conversations')}>← Conversations</a></p>
    <h2 id="thread">Conversation <code>${id}</code></h2>
    <p><a href=${href('tasks', null, { conversation_id: id })}>Its tasks</a></p>
    <${ErrorNotice} error=${error} />
    ${failure && html`<p class="error" role="alert">${failure}</p>`}
    ${
      data &&
      html`<div class="thread">
        ${data.messages.length === 0 && html`<p>No stored history.</p>`}
        ${data.messages.map(
          (message) =>
            html`<div class=${message.role}><small>${message.role} · ${when(message.at)}</small><br />${message.content}</div>`,
        )}
      </div>`
    }
    <p><button type="button" onClick=${() => setAsking(true)}>Erase conversation…</button></p>
    <${Confirm} open=${asking} title="Erase this conversation?" confirmLabel="Erase" onConfirm=${erase} onCancel=${() => setAsking(false)}>
      <p>Its stored history is deleted for good; its next message starts afresh.</p>
    <//>
  </section>`;
}

export function Conversations({ id, params }) {
  if (id !== null) return html`<${Thread} id=${id} />`;
  return html`<${ConversationList} cursor=${params.cursor} />`;
}

function ConversationList({ cursor }) {
  const path = `/conversations${query({ limit: 50, cursor })}`;
  const { data, error } = usePoll((signal) => api(path, { signal }), path);
  return html`<section aria-labelledby="conversations">
    <h2 id="conversations">Conversations</h2>
    <${ErrorNotice} error=${error} />
    ${
      data &&
      html`<div class="table-wrap"><table>
          <thead><tr><th>Conversation</th><th>Messages</th><th>Last activity</th></tr></thead>
          <tbody>
            ${data.conversations.map(
              (c) => html`<tr>
                <td class="wrap"><a href=${href('conversations', c.conversation_id)}>${c.conversation_id}</a></td>
                <td>${c.messages}</td>
                <td>${when(c.last_activity_at)}</td>
              </tr>`,
            )}
          </tbody>
        </table></div>
        ${data.conversations.length === 0 && html`<p>No conversation has stored history.</p>`}
        <p>
          ${cursor && html`<a href=${href('conversations')}>Most recent</a> `}
          ${data.next_cursor && html`<a href=${href('conversations', null, { cursor: data.next_cursor })}>Older</a>`}
        </p>`
    }
  </section>`;
}
