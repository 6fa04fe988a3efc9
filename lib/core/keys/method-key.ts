import { argumentSegment, stringSegment } from './key-segment';

/** `ClassName.methodName`, the namespace of a method's default keys. */
export function defaultKeyPrefix(className: string, methodName: string): string {
  return `${className}.${stringSegment(methodName)}`;
}

/**
 * Default key of a call: `<prefix>:<one segment per argument>`. Segments are type-tagged and escaped, so
 * different argument lists never share a key; objects are keyed by a digest of their content (property
 * order does not matter). Trailing `undefined` arguments are dropped: `f(1)` and `f(1, undefined)` are one call.
 */
export function buildArgumentsKey(prefix: string, args: ArrayLike<unknown>): string {
  let n = args.length;
  while (n > 0 && args[n - 1] === undefined) n--;
  if (n === 1) return prefix + ':' + argumentSegment(args[0]);
  let out = prefix + ':';
  for (let i = 0; i < n; i++) out += (i === 0 ? '' : ':') + argumentSegment(args[i]);
  return out;
}
