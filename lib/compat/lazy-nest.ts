import type * as NestEntry from './nest-entry';

/**
 * The Nest parts of nestjs-tiered-cache/compat, loaded on first access: `createCache()` and `Cache` are
 * importable from the same entry point in code that has no Nest installed (or does not want it loaded).
 * The declarations give each name its type; the getters below give it its value.
 */
export declare const CacheModule: typeof NestEntry.CacheModule;
export type CacheModule = NestEntry.CacheModule;
export declare const CacheInterceptor: typeof NestEntry.CacheInterceptor;
export type CacheInterceptor = NestEntry.CacheInterceptor;
export declare const CacheKey: typeof NestEntry.CacheKey;
export declare const CacheTTL: typeof NestEntry.CacheTTL;

let loaded: typeof NestEntry | undefined;

function load(): typeof NestEntry {
  // A plain require: an import would be hoisted and load Nest with this file.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  loaded ??= require('./nest-entry') as typeof NestEntry;
  return loaded;
}

for (const name of ['CacheModule', 'CacheInterceptor', 'CacheKey', 'CacheTTL'] as const) {
  Object.defineProperty(exports, name, { enumerable: true, get: () => load()[name] });
}
