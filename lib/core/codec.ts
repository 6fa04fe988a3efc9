import { CacheSerializationError } from './errors';

/**
 * Turns values into the strings stored in Redis and back. `decode` receives bytes another process wrote:
 * it must never evaluate them; throwing means "corrupt" and the engine treats the entry as a miss.
 */
export interface CacheCodec {
  readonly name: string;
  encode(value: unknown, key: string): string;
  decode(payload: string): unknown;
}

/** Thrown by a codec's decode for a payload it does not recognise. */
export class CacheDecodeError extends Error {
  override name = 'CacheDecodeError';
}

const TAG = '$t';
// Versioned so a rolling deploy that changes the format sees old entries as misses, not garbage.
const DEFAULT_HEADER = '\u0001tc1:';

/**
 * The default codec: JSON with tagged values, so Date, BigInt, Map, Set, undefined-in-arrays, NaN,
 * ±Infinity and -0 round-trip exactly. Plain objects that happen to have a `$t` key are escaped.
 */
export const defaultCodec: CacheCodec = {
  name: 'default',
  encode(value, key) {
    // Most cached values are plain JSON already: check that without copying, and tag only when needed.
    return DEFAULT_HEADER + JSON.stringify(isPlainJson(value, 0) ? value : toTagged(value, key, []));
  },
  decode(payload) {
    if (!payload.startsWith(DEFAULT_HEADER)) throw new CacheDecodeError('missing tiered-cache header');
    const body = payload.slice(DEFAULT_HEADER.length);
    // Most values carry no tags; JSON.parse without a reviver is several times faster.
    return body.includes('"$t"') ? JSON.parse(body, revive) : JSON.parse(body);
  },
};

/** Plain JSON, readable by services in other languages. Dates become ISO strings; Map/Set/BigInt are rejected. */
export const jsonCodec: CacheCodec = {
  name: 'json',
  encode(value, key) {
    assertPlainJson(value, key, []);
    return JSON.stringify(value);
  },
  decode(payload) {
    return JSON.parse(payload);
  },
};

const MAX_PLAIN_DEPTH = 64;

/**
 * True when JSON.stringify(value) already says exactly what toTagged would: only plain objects, arrays,
 * strings, booleans, finite numbers (not -0), no `$t` keys, no undefined array slots. Anything else —
 * including class instances, toJSON methods, or nesting deep enough to be a cycle — takes the tagged path.
 */
function isPlainJson(value: unknown, depth: number): boolean {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return true;
    case 'number':
      return Number.isFinite(value) && (value !== 0 || 1 / value > 0);
    case 'object':
      break;
    default:
      return false;
  }
  if (value === null) return true;
  if (depth >= MAX_PLAIN_DEPTH) return false;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const v: unknown = value[i];
      if (v === undefined || !isPlainJson(v, depth + 1)) return false;
    }
    return true;
  }
  const proto: unknown = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return false;
  // for-in, not Object.keys: no array per object (this runs on every write). The prototype is Object.prototype
  // or null, so it only adds inherited keys if someone made Object.prototype enumerable-polluted: those are
  // then checked too, which can only send the value down the (always correct) tagged path.
  for (const k in value) {
    if (k === TAG) return false;
    const v = (value as Record<string, unknown>)[k];
    if (v !== undefined && !isPlainJson(v, depth + 1)) return false;
  }
  return true;
}

type Tagged = null | boolean | number | string | Tagged[] | { [k: string]: Tagged };

function toTagged(value: unknown, key: string, stack: object[]): Tagged {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return value;
    case 'number':
      if (Number.isFinite(value) && !Object.is(value, -0)) return value;
      return { [TAG]: 'n', v: Object.is(value, -0) ? '-0' : String(value) };
    case 'bigint':
      return { [TAG]: 'b', v: value.toString() };
    case 'undefined':
      return { [TAG]: 'u' };
    case 'function':
    case 'symbol':
      throw new CacheSerializationError(key, `a ${typeof value} cannot be serialized`);
  }
  if (value === null) return null;
  const obj = value as object;
  if (stack.includes(obj)) throw new CacheSerializationError(key, 'circular structure');
  stack.push(obj);
  try {
    if (Array.isArray(obj)) return obj.map((v) => toTagged(v, key, stack));
    if (obj instanceof Date) {
      const t = obj.getTime();
      return { [TAG]: 'd', v: Number.isNaN(t) ? null : t };
    }
    if (obj instanceof Map) {
      return { [TAG]: 'm', v: Array.from(obj, ([k, v]) => [toTagged(k, key, stack), toTagged(v, key, stack)]) };
    }
    if (obj instanceof Set) return { [TAG]: 's', v: Array.from(obj, (v) => toTagged(v, key, stack)) };
    if (ArrayBuffer.isView(obj) || obj instanceof ArrayBuffer || obj instanceof WeakMap || obj instanceof WeakSet || obj instanceof Promise) {
      throw new CacheSerializationError(key, `a ${obj.constructor.name} cannot be serialized`);
    }
    const out: { [k: string]: Tagged } = {};
    let escaped = false;
    for (const k of Object.keys(obj)) {
      const v = (obj as Record<string, unknown>)[k];
      if (v === undefined) continue; // as JSON does: absent and undefined properties read the same
      if (k === TAG) escaped = true;
      out[k] = toTagged(v, key, stack);
    }
    return escaped ? { [TAG]: 'o', v: Object.entries(out) as Tagged } : out;
  } finally {
    stack.pop();
  }
}

function revive(this: unknown, _k: string, value: unknown): unknown {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return value;
  const rec = value as Record<string, unknown>;
  const tag = rec[TAG];
  if (typeof tag !== 'string') return value;
  const v = rec.v;
  switch (tag) {
    case 'n':
      return Number(v);
    case 'b':
      return BigInt(v as string);
    case 'u':
      return undefined;
    case 'd':
      return new Date(v === null ? NaN : (v as number));
    case 'm':
      return new Map(v as [unknown, unknown][]);
    case 's':
      return new Set(v as unknown[]);
    case 'o': {
      const out: Record<string, unknown> = {};
      // defineProperty: a stored "__proto__" key stays an own property and never swaps the prototype.
      for (const [k, inner] of v as [string, unknown][]) {
        Object.defineProperty(out, k, { value: inner, enumerable: true, writable: true, configurable: true });
      }
      return out;
    }
    default:
      throw new CacheDecodeError(`unknown tag ${tag}`);
  }
}

function assertPlainJson(value: unknown, key: string, stack: object[]): void {
  switch (typeof value) {
    case 'string':
    case 'boolean':
    case 'undefined':
      return;
    case 'number':
      if (!Number.isFinite(value)) throw new CacheSerializationError(key, `${value} is not representable in JSON`);
      return;
    case 'bigint':
    case 'function':
    case 'symbol':
      throw new CacheSerializationError(key, `a ${typeof value} cannot be serialized by the json codec`);
  }
  if (value === null) return;
  const obj = value as object;
  if (stack.includes(obj)) throw new CacheSerializationError(key, 'circular structure');
  if (obj instanceof Map || obj instanceof Set) {
    throw new CacheSerializationError(key, `a ${obj.constructor.name} cannot be serialized by the json codec (use the default codec)`);
  }
  if (obj instanceof Date) return;
  stack.push(obj);
  for (const v of Object.values(obj)) assertPlainJson(v, key, stack);
  stack.pop();
}

export function resolveCodec(codec: 'default' | 'json' | CacheCodec | undefined): CacheCodec {
  if (codec === undefined || codec === 'default') return defaultCodec;
  if (codec === 'json') return jsonCodec;
  return codec;
}
