/** The console's shell: navigation, the sign-in form when tokens are on, and the current view. */
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { getToken, onAuth, setToken } from './api.js';
import { html } from './html.js';
import { href, useRoute } from './route.js';
import { Conversations } from './views/conversations.js';
import { Destinations } from './views/destinations.js';
import { Overview } from './views/overview.js';
import { TaskDetail } from './views/task.js';
import { Tasks } from './views/tasks.js';
import { Usage } from './views/usage.js';

const VIEWS = [
  ['overview', 'Overview'],
  ['tasks', 'Tasks'],
  ['conversations', 'Conversations'],
  ['destinations', 'Destinations'],
  ['usage', 'Usage'],
];

function SignIn({ refused }) {
  const [value, setValue] = useState('');
  const submit = (event) => {
    event.preventDefault();
    setToken(value.trim());
    location.reload();
  };
  return html`<section aria-labelledby="sign-in">
    <h2 id="sign-in">Sign in</h2>
    <p>This service has API tokens on. Enter yours: it is kept in this tab only (sessionStorage) and sent as a bearer token.</p>
    ${refused && html`<p class="error" role="alert">That token was refused.</p>`}
    <form onSubmit=${submit}>
      <label for="token">API token</label>
      <input id="token" type="password" autocomplete="off" required value=${value} onInput=${(e) => setValue(e.currentTarget.value)} />
      <button type="submit">Sign in</button>
    </form>
  </section>`;
}

function View({ route }) {
  switch (route.view) {
    case 'tasks':
      return route.id === null
        ? html`<${Tasks} params=${route.params} />`
        : html`<${TaskDetail} id=${route.id} />`;
    case 'conversations':
      return html`<${Conversations} id=${route.id} params=${route.params} />`;
    case 'destinations':
      return html`<${Destinations} />`;
    case 'usage':
      return html`<${Usage} params=${route.params} />`;
    default:
      return html`<${Overview} params=${route.params} />`;
  }
}

function App() {
  const route = useRoute();
  const [auth, setAuth] = useState(getToken() === null ? 'unknown' : 'signed-in');
  useEffect(() => onAuth(setAuth), []);
  useEffect(() => {
    const view = VIEWS.find(([name]) => name === route.view)?.[1] ?? 'Overview';
    document.title = `${view} · llm-webhook console`;
  }, [route.view]);
  const needsToken = auth === 'needed' || auth === 'refused';
  const signOut = () => {
    setToken(null);
    location.reload();
  };
  return html`
    <header>
      <h1>llm-webhook</h1>
      <nav aria-label="Views">
        ${VIEWS.map(
          ([name, label]) =>
            html`<a href=${href(name)} aria-current=${route.view === name ? 'page' : undefined}>${label}</a>`,
        )}
      </nav>
    </header>
    <main>
      ${
        auth === 'open' &&
        html`<p class="banner open-api" role="status">
        The API is open: <code>API_TOKENS</code> is not set, so anyone who can reach this service sees and steers
        everything.
      </p>`
      }
      ${
        auth === 'signed-in' &&
        getToken() !== null &&
        html`<p class="banner">Signed in with a token: you see this client's data only. <button onClick=${signOut}>Sign out</button></p>`
      }
      ${needsToken ? html`<${SignIn} refused=${auth === 'refused'} />` : html`<${View} route=${route} />`}
    </main>
    <footer><p><a href="/docs">API docs</a> · <a href="/metrics">metrics</a></p></footer>
  `;
}

render(html`<${App} />`, document.body);
