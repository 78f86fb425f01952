/** Small data hooks: load once, poll, and the current hash route. */
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';

export interface Loaded<T> {
  readonly data: T | undefined;
  readonly error: unknown;
  readonly loading: boolean;
  reload(): void;
}

/**
 * Runs `load` now, whenever `deps` change, and every `pollMs` (if given) while the component is
 * shown. Keeps the last data while reloading, so polled views do not flicker.
 */
export function useLoad<T>(load: () => Promise<T>, deps: readonly unknown[], pollMs?: number): Loaded<T> {
  const [state, setState] = useState<{ data: T | undefined; error: unknown; loading: boolean }>({ data: undefined, error: null, loading: true });
  const [tick, setTick] = useState(0);
  const loadRef = useRef(load);
  loadRef.current = load;
  useEffect(() => {
    let live = true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const run = (): void => {
      setState((s) => ({ ...s, loading: true }));
      loadRef.current().then(
        (data) => live && setState({ data, error: null, loading: false }),
        (error: unknown) => live && setState((s) => ({ data: s.data, error, loading: false })),
      ).finally(() => {
        if (live && pollMs !== undefined) timer = setTimeout(run, pollMs);
      });
    };
    run();
    return () => {
      live = false;
      if (timer !== undefined) clearTimeout(timer);
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [...deps, tick, pollMs]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { ...state, reload };
}

/** The route: the URL fragment without `#`, split into path segments and query. */
export interface Route {
  readonly path: readonly string[];
  readonly query: URLSearchParams;
}

function currentRoute(): Route {
  const hash = location.hash.replace(/^#\/?/, '');
  const [p, q] = hash.split('?');
  return { path: (p ?? '').split('/').filter(Boolean).map(decodeURIComponent), query: new URLSearchParams(q ?? '') };
}

export function useRoute(): Route {
  const [route, setRoute] = useState(currentRoute);
  useEffect(() => {
    const on = (): void => setRoute(currentRoute());
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return route;
}

/** Goes to a route (`navigate('searches', id)`), with an optional query. */
export function navigate(path: readonly string[], query?: Record<string, string>): void {
  location.hash = href(path, query);
}

export function href(path: readonly string[], query?: Record<string, string>): string {
  const q = query ? new URLSearchParams(Object.entries(query).filter(([, v]) => v !== '')).toString() : '';
  return `#/${path.map(encodeURIComponent).join('/')}${q ? `?${q}` : ''}`;
}
