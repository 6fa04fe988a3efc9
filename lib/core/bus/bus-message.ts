import type { CacheChange } from '../cache-change';

/** Wire-format version; also part of the channel name, so instances of another version never meet. */
export const BUS_WIRE_VERSION = 1;

/** What travels on the bus: which instance sent it and what its receivers must drop from L1. */
export interface BusMessage {
  v: typeof BUS_WIRE_VERSION;
  src: string;
  change: CacheChange;
}

const MAX_ITEMS = 100_000;
const MAX_SRC = 128;

/**
 * Parses and validates a received message; `undefined` for anything malformed (bad JSON, wrong version,
 * wrong shape, oversized). Stored bytes and channel traffic are untrusted: nothing here evaluates them.
 */
export function decodeBusMessage(raw: string, maxBytes: number): BusMessage | undefined {
  if (raw.length > maxBytes) return undefined;
  let m: unknown;
  try {
    m = JSON.parse(raw);
  } catch {
    return undefined;
  }
  if (m === null || typeof m !== 'object') return undefined;
  const { v, src, change } = m as Record<string, unknown>;
  if (v !== BUS_WIRE_VERSION || typeof src !== 'string' || src.length === 0 || src.length > MAX_SRC) return undefined;
  const c = validChange(change);
  return c ? { v, src, change: c } : undefined;
}

function validChange(change: unknown): CacheChange | undefined {
  if (change === null || typeof change !== 'object') return undefined;
  const c = change as Record<string, unknown>;
  // replay: a deferred invalidation that has reached Redis now, announced again (receivers drop it, do not count it).
  const replay = c.replay === true ? ({ replay: true } as const) : undefined;
  switch (c.type) {
    case 'delete':
      if (!stringList(c.keys)) return undefined;
      // byTag: removed by a tag invalidation (counted as its tags, not per key); receivers drop them all the same.
      return c.byTag === true ? { type: 'delete', keys: c.keys, byTag: true, ...replay } : { type: 'delete', keys: c.keys, ...replay };
    case 'overwrite':
      return stringList(c.keys) ? { type: 'overwrite', keys: c.keys } : undefined;
    case 'tags':
      return stringList(c.tags) ? { type: 'tags', tags: c.tags, ...replay } : undefined;
    case 'pattern':
      return typeof c.pattern === 'string' && c.pattern.length > 0 ? { type: 'pattern', pattern: c.pattern, ...replay } : undefined;
    case 'clear':
      return { type: 'clear', ...replay };
    default:
      return undefined;
  }
}

function stringList(v: unknown): v is string[] {
  return Array.isArray(v) && v.length > 0 && v.length <= MAX_ITEMS && v.every((s) => typeof s === 'string' && s.length > 0);
}

export function encodeBusMessage(src: string, change: CacheChange): string {
  const m: BusMessage = { v: BUS_WIRE_VERSION, src, change };
  return JSON.stringify(m);
}
