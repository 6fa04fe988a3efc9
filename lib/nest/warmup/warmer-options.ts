import type { InjectionToken, Type } from '@nestjs/common';
import { parseTimerDuration } from '../../core/duration';
import { TieredCacheOptionsError } from '../../core/errors';
import type { CacheWarmerOptions, WarmupMode } from './cache-warmer-options.interface';

/** A warmer's options after validation; durations in ms. */
export interface ResolvedWarmerOptions {
  readonly name: string;
  readonly method?: string;
  readonly target?: Type<unknown>;
  readonly args?: (id: unknown) => readonly unknown[];
  readonly http?: { readonly baseUrl?: string; readonly headers: Readonly<Record<string, string>> };
  readonly mode: WarmupMode;
  readonly concurrency: number;
  /** 0: none. */
  readonly keyTimeout: number;
  readonly onBootstrap?: { readonly wait: number; /** 0: readiness never waits. */ readonly readiness: number };
  readonly cron?: string;
  readonly timeZone?: string;
  /** undefined: off. */
  readonly lease?: { readonly ttl: number; readonly holdAtLeast: number };
  readonly cache?: InjectionToken;
}

export const DEFAULT_CONCURRENCY = 8;
export const MAX_CONCURRENCY = 1_000;
const DEFAULT_KEY_TIMEOUT = 30_000;
const DEFAULT_READINESS = 60_000;
const DEFAULT_LEASE_TTL = 30_000;
const DEFAULT_HOLD = 5_000;
const NAME_RE = /^[A-Za-z0-9._-]{1,64}$/;
const KNOWN = new Set(['name', 'method', 'target', 'args', 'http', 'mode', 'concurrency', 'keyTimeout', 'onBootstrap', 'cron', 'timeZone', 'lease', 'cache']);

/** Validates `@CacheWarmer(options)` where it is applied; every error names the option. */
export function resolveWarmerOptions(className: string, input: unknown): ResolvedWarmerOptions {
  const where = `@CacheWarmer() on ${className}`;
  const fail = (option: string, value: unknown, reason: string): never => {
    throw new TieredCacheOptionsError(option ? `${where} ${option}` : where, value, reason);
  };
  if (input === null || typeof input !== 'object' || Array.isArray(input)) return fail('', input, "expected an options object such as { name: 'customers' }");
  const o = input as CacheWarmerOptions & Record<string, unknown>;
  for (const k of Object.keys(o)) if (!KNOWN.has(k)) fail(k, o[k], `unknown option (known: ${[...KNOWN].join(', ')})`);
  if (typeof o.name !== 'string' || !NAME_RE.test(o.name)) fail('name', o.name, 'expected 1 to 64 letters, digits, ".", "_" or "-" (it is a metric label and a Redis key part)');
  if (o.method !== undefined && (typeof o.method !== 'string' || o.method.length === 0)) fail('method', o.method, 'expected the name of a @Cacheable method');
  if (o.target !== undefined) {
    if (typeof o.target !== 'function') fail('target', o.target, 'expected a provider class');
    if (o.method === undefined) fail('target', o.target, 'give method too: the @Cacheable method of target to call');
  }
  if (o.args !== undefined) {
    if (typeof o.args !== 'function') fail('args', o.args, 'expected a function of the id returning the argument list');
    if (o.method === undefined) fail('args', o.args, 'only for warmers that name a method');
  }
  let http: ResolvedWarmerOptions['http'];
  if (o.http !== undefined && o.http !== false) {
    if (o.method !== undefined) fail('http', o.http, 'give either method or http, not both');
    if (o.http === true) http = { headers: {} };
    else if (o.http === null || typeof o.http !== 'object') fail('http', o.http, 'expected true or { baseUrl?, headers? }');
    else {
      const h = o.http;
      let baseUrl: string | undefined;
      if (h.baseUrl !== undefined) {
        let url: URL | undefined;
        try {
          url = typeof h.baseUrl === 'string' ? new URL(h.baseUrl) : undefined;
        } catch {
          url = undefined;
        }
        if (url === undefined || (url.protocol !== 'http:' && url.protocol !== 'https:')) fail('http.baseUrl', h.baseUrl, "expected an http(s) URL such as 'http://127.0.0.1:3000'");
        baseUrl = (h.baseUrl as string).replace(/\/+$/, '');
      }
      const headers: Record<string, string> = {};
      if (h.headers !== undefined) {
        if (h.headers === null || typeof h.headers !== 'object') fail('http.headers', h.headers, 'expected an object of header names to string values');
        for (const [k, v] of Object.entries(h.headers)) {
          if (typeof v !== 'string' || !/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/.test(k)) fail(`http.headers.${k}`, v, 'expected a valid header name with a string value');
          headers[k.toLowerCase()] = v;
        }
      }
      http = { baseUrl, headers };
    }
  }
  const mode = o.mode ?? 'refresh';
  if (mode !== 'refresh' && mode !== 'missing') fail('mode', o.mode, "expected 'refresh' or 'missing'");
  if (http?.baseUrl !== undefined && mode === 'refresh') {
    fail('mode', mode, "a warmer with http.baseUrl (another process) can only fill what is missing: set mode: 'missing', or leave baseUrl out to use this app's own server");
  }
  const concurrency = o.concurrency ?? DEFAULT_CONCURRENCY;
  if (!Number.isSafeInteger(concurrency) || concurrency < 1 || concurrency > MAX_CONCURRENCY) fail('concurrency', o.concurrency, `expected a whole number from 1 to ${MAX_CONCURRENCY}`);
  const keyTimeout = o.keyTimeout === false ? 0 : o.keyTimeout === undefined ? DEFAULT_KEY_TIMEOUT : parseTimerDuration(`${where} keyTimeout`, o.keyTimeout);
  let onBootstrap: ResolvedWarmerOptions['onBootstrap'];
  const b = o.onBootstrap;
  if (b === true) onBootstrap = { wait: 0, readiness: DEFAULT_READINESS };
  else if (b !== undefined && b !== false) {
    if (b === null || typeof b !== 'object') fail('onBootstrap', b, 'expected true, false or { wait?, readiness? }');
    else {
      const wait = b.wait === undefined || b.wait === 0 ? 0 : parseTimerDuration(`${where} onBootstrap.wait`, b.wait);
      const readiness = b.readiness === false ? 0 : b.readiness === undefined ? DEFAULT_READINESS : parseTimerDuration(`${where} onBootstrap.readiness`, b.readiness);
      onBootstrap = { wait, readiness };
    }
  }
  if (o.cron !== undefined && (typeof o.cron !== 'string' || o.cron.trim().split(/\s+/).length < 5 || o.cron.trim().split(/\s+/).length > 6)) {
    fail('cron', o.cron, "expected a cron expression of 5 or 6 fields, e.g. '0 2 * * *' (daily at 2 AM)");
  }
  if (o.timeZone !== undefined) {
    if (typeof o.timeZone !== 'string' || o.timeZone.length === 0) fail('timeZone', o.timeZone, "expected an IANA time zone such as 'Europe/Paris'");
    if (o.cron === undefined) fail('timeZone', o.timeZone, 'only with cron');
    try {
      new Intl.DateTimeFormat('en-US', { timeZone: o.timeZone });
    } catch {
      fail('timeZone', o.timeZone, "not a time zone this Node.js knows (an IANA name such as 'Europe/Paris')");
    }
  }
  let lease: ResolvedWarmerOptions['lease'];
  if (o.lease !== false) {
    const l = o.lease ?? {};
    if (l === null || typeof l !== 'object') fail('lease', o.lease, 'expected false or { ttl?, holdAtLeast? }');
    const ttl = l.ttl === undefined ? DEFAULT_LEASE_TTL : parseTimerDuration(`${where} lease.ttl`, l.ttl);
    if (ttl < 30) fail('lease.ttl', l.ttl, 'must be at least 30 ms (it is renewed every third of it)');
    const holdAtLeast = l.holdAtLeast === undefined ? DEFAULT_HOLD : l.holdAtLeast === 0 ? 0 : parseTimerDuration(`${where} lease.holdAtLeast`, l.holdAtLeast);
    lease = { ttl, holdAtLeast };
  }
  if (o.cache !== undefined && typeof o.cache !== 'function' && typeof o.cache !== 'string' && typeof o.cache !== 'symbol') {
    fail('cache', o.cache, 'expected an injection token (a class, string or symbol)');
  }
  return Object.freeze({
    name: o.name,
    method: o.method,
    target: o.target,
    args: o.args as ((id: unknown) => readonly unknown[]) | undefined,
    http,
    mode,
    concurrency,
    keyTimeout,
    onBootstrap,
    cron: o.cron?.trim(),
    timeZone: o.timeZone,
    lease,
    cache: o.cache,
  });
}
