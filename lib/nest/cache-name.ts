import { TieredCacheOptionsError } from '../core/errors';
import { DEFAULT_CACHE_NAME } from './constants';

// A name becomes an injection token, a metrics label value and the default keyPrefix: kept short and plain.
const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

/** `undefined` and `'default'` name the default cache; anything else must be a plain short name. */
export function resolveCacheName(option: string, name: unknown): string {
  if (name === undefined) return DEFAULT_CACHE_NAME;
  if (typeof name !== 'string' || !NAME.test(name)) {
    throw new TieredCacheOptionsError(option, name, 'expected a cache name of 1-64 letters, digits, "_", "-" or "." (starting with a letter or digit)');
  }
  return name;
}

/** For messages: `cache 'scores'`, or `the default cache`. */
export function describeCache(name: string): string {
  return name === DEFAULT_CACHE_NAME ? 'the default cache' : `cache '${name}'`;
}
