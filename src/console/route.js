/**
 * The console's state lives in the URL's hash (`#/tasks?status=failed`), so every view can be
 * linked, reloaded and moved through with the browser's back and forward.
 */
import { useEffect, useState } from 'preact/hooks';

export function parseRoute(hash = location.hash) {
  const text = hash.replace(/^#/, '') || '/overview';
  const [path, search = ''] = text.split('?', 2);
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  return {
    view: parts[0] ?? 'overview',
    id: parts[1] ?? null,
    params: Object.fromEntries(new URLSearchParams(search)),
  };
}

export function href(view, id = null, params = {}) {
  let path = `#/${view}`;
  if (id !== null) path += `/${encodeURIComponent(id)}`;
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== '') search.set(key, String(value));
  }
  const text = search.toString();
  return text === '' ? path : `${path}?${text}`;
}

export function navigate(view, id = null, params = {}) {
  location.hash = href(view, id, params);
}

export function useRoute() {
  const [route, setRoute] = useState(parseRoute());
  useEffect(() => {
    const update = () => setRoute(parseRoute());
    addEventListener('hashchange', update);
    return () => removeEventListener('hashchange', update);
  }, []);
  return route;
}
