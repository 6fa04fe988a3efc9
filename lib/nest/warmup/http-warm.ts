import type { CacheWarmerHandler, WarmupContext, WarmupMode } from './cache-warmer-options.interface';
import { WARM_HEADER, WARM_RESULT_HEADER, warmHeaderValue } from './http-warm-token';
import type { KeyOutcome } from './warmup-run';

/**
 * Warming a GET route's cached response by requesting it: the request goes through the app's whole HTTP stack
 * (middleware, guards, pipes, TieredCacheInterceptor), so the response is stored under exactly the key, TTL and
 * tags a client's request would store it under, in every tier a fill reaches. Sent to this app's own server, the
 * request carries the process's warm token: the interceptor then refreshes the entry in mode 'refresh' (runs the
 * handler even on a hit) and says what it did in WARM_RESULT_HEADER. Sent elsewhere (`http.baseUrl`), the
 * response's `X-Cache` tells: MISS filled it, HIT found it there.
 */
export function httpWarm(
  handler: CacheWarmerHandler,
  baseUrl: () => { url: string; own: boolean },
  headers: Readonly<Record<string, string>>,
  where: string,
): (id: unknown, mode: WarmupMode, context: WarmupContext) => Promise<KeyOutcome> {
  const pathOf = typeof handler.path === 'function' ? (id: unknown) => (handler.path as (id: unknown) => unknown).call(handler, id) : (id: unknown) => id;
  return async (id, mode, context) => {
    const path = pathOf(id);
    if (typeof path !== 'string' || !path.startsWith('/') || path.startsWith('//')) {
      throw new TypeError(`${where}: the path of id ${String(id)} is ${JSON.stringify(path)}, expected a path such as '/customers/42'${handler.path ? '' : ' (implement path(id) to make one)'}`);
    }
    const base = baseUrl();
    const res = await fetch(base.url + path, {
      method: 'GET',
      headers: base.own ? { ...headers, [WARM_HEADER]: warmHeaderValue(mode) } : headers,
      redirect: 'manual',
      signal: context.signal,
    });
    // The body is read to its end so the connection is reused.
    await res.arrayBuffer();
    if (res.status < 200 || res.status >= 300) throw new Error(`GET ${path} answered ${res.status}`);
    const warmed = base.own ? res.headers.get(WARM_RESULT_HEADER) : null;
    if (warmed === 'stored') return 'ok';
    if (warmed === 'cached') return 'skipped';
    if (warmed === 'not-stored') {
      throw new Error(`GET ${path}: the response was not cached (its route's condition or unless, or it is not cacheable: a cookie, Cache-Control private/no-store, an empty body)`);
    }
    const xCache = res.headers.get('x-cache');
    if (xCache === 'MISS') return 'ok';
    if (xCache === 'HIT') return 'skipped';
    if (xCache === 'BYPASS') throw new Error(`GET ${path}: not cached, the request carries credentials the route does not vary on`);
    throw new Error(`GET ${path}: not a cached route (no X-Cache header: no @Cacheable() or no TieredCacheInterceptor on it)`);
  };
}
