import { canonicalize, hashText } from './stable-digest';

/**
 * Turns one value into one key segment. A segment never contains `:` (the separator), glob characters
 * (`* ? [ ] \`), Cluster hash-tag braces, whitespace or `~` except as its leading type tag, so a value can
 * neither split into two segments nor reach into another entity's keys, and a segment is safe inside a
 * SCAN pattern as is.
 */

const SAFE = /^[A-Za-z0-9_.-]{1,128}$/;
const MAX_SEGMENT = 160;

/** Strict: values of different types give different segments (`1` ≠ `'1'`). Used for default keys. */
export function argumentSegment(value: unknown): string {
  switch (typeof value) {
    case 'string':
      return stringSegment(value);
    case 'number':
      return '~n' + (Object.is(value, -0) ? '-0' : String(value));
    case 'bigint':
      return '~b' + value.toString();
    case 'boolean':
      return value ? '~t' : '~f';
    case 'undefined':
      return '~U';
    default:
      return value === null ? '~N' : objectSegment(value);
  }
}

/** Loose: scalars by their text (`{id}` is `42` for 42 and '42'). Used to fill templates. */
export function templateSegment(value: unknown): string {
  switch (typeof value) {
    case 'string':
      return stringSegment(value);
    case 'number':
      return Object.is(value, -0) ? '0' : String(value);
    case 'bigint':
    case 'boolean':
      return String(value);
    case 'undefined':
      return '~U';
    default:
      return value === null ? '~N' : objectSegment(value);
  }
}

export function stringSegment(s: string): string {
  if (SAFE.test(s)) return s;
  if (s.length === 0) return '~e';
  let escaped: string | undefined;
  if (s.length <= MAX_SEGMENT) {
    try {
      escaped = encodeURIComponent(s).replace(/[!'()*~]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase());
    } catch {
      // Lone surrogates: not encodable, so hashed below.
    }
  }
  if (escaped !== undefined && escaped.length <= MAX_SEGMENT) return escaped;
  return '~s' + hashText(s);
}

function objectSegment(value: unknown): string {
  if (value instanceof Date) return '~d' + value.getTime();
  // Small objects are keyed by their escaped canonical text (no hashing on the hot path), larger ones by
  // its digest; stringSegment is injective either way.
  return '~o' + stringSegment(canonicalize(value));
}
