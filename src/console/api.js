/**
 * The console's one way to the JSON API: same origin, the token (kept in sessionStorage only)
 * as a bearer, and errors as `ApiError` with the status and the body's `detail`.
 */
const TOKEN_KEY = 'llm-webhook-token';

export function getToken() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(token) {
  if (token === null) sessionStorage.removeItem(TOKEN_KEY);
  else sessionStorage.setItem(TOKEN_KEY, token);
}

export class ApiError extends Error {
  constructor(status, detail) {
    super(typeof detail === 'string' ? detail : `HTTP ${status}`);
    this.status = status;
    this.detail = detail;
  }
}

/** Listeners told whether the last answer showed an open API, a signed-in client, or a refused token. */
const authListeners = new Set();
export function onAuth(listener) {
  authListeners.add(listener);
  return () => authListeners.delete(listener);
}
function tellAuth(state) {
  for (const listener of authListeners) listener(state);
}

export async function api(path, { method = 'GET', body, signal } = {}) {
  const headers = { accept: 'application/json' };
  const token = getToken();
  if (token !== null) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal,
    credentials: 'omit',
  });
  const text = await response.text();
  const data = text === '' ? null : JSON.parse(text);
  if (response.status === 401) {
    tellAuth(token === null ? 'needed' : 'refused');
    throw new ApiError(401, data?.detail ?? 'Not authenticated');
  }
  if (!response.ok) throw new ApiError(response.status, data?.detail ?? `HTTP ${response.status}`);
  tellAuth(token === null ? 'open' : 'signed-in');
  return data;
}

/** A query string of the set values of `params`, with its `?`, or ''. */
export function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== '') search.set(key, String(value));
  }
  const text = search.toString();
  return text === '' ? '' : `?${text}`;
}
