/**
 * `usePoll(load, key)`: runs `load(signal)` now and again `REFRESH_MS` after each answer, never
 * two at once (the next request is scheduled only once the last one settled, so a slow API is
 * never sent a pile of requests), paused while the tab is hidden, and cancelled when the view or
 * its `key` changes.
 */
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';

export const REFRESH_MS = 5000;

export function usePoll(load, key) {
  const [state, setState] = useState({ data: null, error: null, loading: true });
  const run = useRef(null);
  useEffect(() => {
    let stopped = false;
    let timer = null;
    let controller = null;
    const tick = async () => {
      timer = null;
      if (document.hidden) {
        timer = setTimeout(tick, REFRESH_MS);
        return;
      }
      controller = new AbortController();
      try {
        const data = await load(controller.signal);
        if (!stopped) setState({ data, error: null, loading: false });
      } catch (error) {
        if (!stopped && error.name !== 'AbortError')
          setState((old) => ({ data: old.data, error, loading: false }));
      }
      controller = null;
      if (!stopped) timer = setTimeout(tick, REFRESH_MS);
    };
    run.current = () => {
      if (timer !== null) {
        clearTimeout(timer);
        void tick();
      }
    };
    setState({ data: null, error: null, loading: true });
    void tick();
    return () => {
      stopped = true;
      if (timer !== null) clearTimeout(timer);
      controller?.abort();
    };
  }, [key]);
  // Refresh now (after an action); a request already running is left to finish.
  const refresh = useCallback(() => run.current?.(), []);
  return { ...state, refresh };
}
