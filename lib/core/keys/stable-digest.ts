import { createHash } from 'node:crypto';

/**
 * A canonical, type-tagged encoding of a value: equal content gives equal text whatever the property or
 * insertion order, and values of different types or shapes never share a text (1 vs '1', [] vs {},
 * a Map vs a plain object). Throws a TypeError for what has no stable value identity (functions,
 * symbols, cycles, opaque class instances).
 */
export function canonicalize(value: unknown): string {
  return encode(value, []);
}

/** A short, stable hash of `canonicalize(value)` (SHA-256, 128 bits, base64url). */
export function stableDigest(value: unknown): string {
  return hashText(canonicalize(value));
}

export function hashText(text: string): string {
  // utf16le keeps lone surrogates distinct (utf8 would turn them all into U+FFFD).
  return createHash('sha256').update(text, 'utf16le').digest('base64url').slice(0, 22);
}

function encode(value: unknown, stack: object[]): string {
  switch (typeof value) {
    case 'string':
      return 's' + JSON.stringify(value);
    case 'number':
      return 'n' + (Object.is(value, -0) ? '-0' : String(value));
    case 'bigint':
      return 'b' + value.toString();
    case 'boolean':
      return value ? 'T' : 'F';
    case 'undefined':
      return 'U';
    case 'object':
      if (value === null) return 'N';
      return encodeObject(value, stack);
    default:
      throw new TypeError(`a ${typeof value} has no stable cache-key encoding`);
  }
}

function encodeObject(obj: object, stack: object[]): string {
  if (obj instanceof Date) return 'd' + obj.getTime();
  if (obj instanceof RegExp) return 'r' + JSON.stringify(String(obj));
  if (ArrayBuffer.isView(obj)) {
    return 'v' + obj.constructor.name + ':' + Buffer.from(obj.buffer, obj.byteOffset, obj.byteLength).toString('base64');
  }
  if (stack.includes(obj)) throw new TypeError('a value with a circular reference has no stable cache-key encoding');
  stack.push(obj);
  try {
    if (Array.isArray(obj)) {
      let out = '[';
      for (let i = 0; i < obj.length; i++) out += (i === 0 ? '' : ',') + encode(obj[i], stack);
      return out + ']';
    }
    if (obj instanceof Map) {
      const entries = Array.from(obj, ([k, v]) => encode(k, stack) + '>' + encode(v, stack)).sort();
      return 'M{' + entries.join(',') + '}';
    }
    if (obj instanceof Set) {
      return 'S[' + Array.from(obj, (v) => encode(v, stack)).sort().join(',') + ']';
    }
    const proto = Object.getPrototypeOf(obj) as object | null;
    const plain = proto === null || proto === Object.prototype;
    const name = plain ? '' : (obj.constructor?.name ?? '?');
    const toJSON = (obj as { toJSON?: unknown }).toJSON;
    if (!plain && typeof toJSON === 'function') {
      // ObjectId, Decimal and friends keep their state out of sight but serialize it.
      return 'j' + name + '(' + encode(toJSON.call(obj), stack) + ')';
    }
    const keys = Object.keys(obj).sort();
    if (!plain && keys.length === 0) {
      throw new TypeError(`an instance of ${name} exposes no enumerable state, so it has no stable cache-key encoding`);
    }
    let out = 'o' + name + '{';
    let first = true;
    for (const k of keys) {
      const v = (obj as Record<string, unknown>)[k];
      // As in JSON, an undefined property is the same as a missing one.
      if (v === undefined) continue;
      out += (first ? '' : ',') + JSON.stringify(k) + ':' + encode(v, stack);
      first = false;
    }
    return out + '}';
  } finally {
    stack.pop();
  }
}
