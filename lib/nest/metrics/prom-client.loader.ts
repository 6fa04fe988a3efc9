import { dirname } from 'node:path';
import type * as PromClient from 'prom-client';

export type PromClientModule = typeof PromClient;

let cached: PromClientModule | null | undefined;

/**
 * prom-client, loaded only when metrics are wanted (it is an optional peer). The copy that
 * @willsoto/nestjs-prometheus uses comes first: its `/metrics` controller serialises that copy's default
 * `register`, and a second copy (another version nested elsewhere) would hold a registry no scrape reads.
 * Resolves undefined when prom-client is not installed.
 */
export function loadPromClient(): PromClientModule | undefined {
  if (cached !== undefined) return cached ?? undefined;
  cached = null;
  const searchFrom: Array<string | undefined> = [];
  try {
    searchFrom.push(dirname(require.resolve('@willsoto/nestjs-prometheus')));
  } catch {
    // Not installed: the app exposes prom-client's registry itself, if at all.
  }
  searchFrom.push(undefined);
  for (const from of searchFrom) {
    try {
      const path = require.resolve('prom-client', from ? { paths: [from] } : undefined);
      cached = require(path) as PromClientModule;
      break;
    } catch {
      // Try the next location.
    }
  }
  return cached ?? undefined;
}
