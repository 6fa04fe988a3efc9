import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { WarmupMode } from './cache-warmer-options.interface';

/**
 * The request header an HTTP warm-up sends to its own app: `<token> refresh|missing`. The token is this process's
 * secret (random, never sent anywhere but to this process's own server over loopback), so no client can use the
 * header to make a route skip its cached copy. Kept on globalThis so two copies of this package in one process
 * (an app's and a CLI's) agree on it.
 */
export const WARM_HEADER = 'x-tiered-cache-warm';

/** Set on the response of a request that carried a valid WARM_HEADER: 'stored', 'cached' (already there) or 'not-stored'. */
export const WARM_RESULT_HEADER = 'x-tiered-cache-warm-result';

export type WarmResult = 'stored' | 'cached' | 'not-stored';

const SLOT = Symbol.for('nestjs-tiered-cache.warm-token');
const shared = globalThis as { [SLOT]?: string };
const TOKEN: string = (shared[SLOT] ??= randomBytes(24).toString('base64url'));
const TOKEN_BYTES = Buffer.from(TOKEN);

/** The header value a warm-up request carries. */
export function warmHeaderValue(mode: WarmupMode): string {
  return `${TOKEN} ${mode}`;
}

/** The warm-up mode a request asks for, when it carries this process's token; undefined for every other request. */
export function warmModeOf(headers: Record<string, string | string[] | undefined>): WarmupMode | undefined {
  const v = headers[WARM_HEADER];
  if (typeof v !== 'string') return undefined;
  const space = v.indexOf(' ');
  if (space !== TOKEN.length) return undefined;
  const mode = v.slice(space + 1);
  if (mode !== 'refresh' && mode !== 'missing') return undefined;
  const given = Buffer.from(v.slice(0, space));
  return given.length === TOKEN_BYTES.length && timingSafeEqual(given, TOKEN_BYTES) ? mode : undefined;
}
