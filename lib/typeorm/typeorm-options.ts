import { parseTimerDuration } from '../core/duration';
import { TieredCacheOptionsError } from '../core/errors';
import type { EntityNameInfo, TieredCacheTypeOrmOptions } from './tiered-cache-typeorm-options.interface';

/** The options as the subscriber uses them; every field checked at boot. */
export interface ResolvedTypeOrmOptions {
  dataSource: TieredCacheTypeOrmOptions['dataSource'];
  entities: NonNullable<TieredCacheTypeOrmOptions['entities']> | undefined;
  eventName: ((entity: EntityNameInfo) => string) | undefined;
  maxEventsPerTransaction: number;
  awaitListeners: boolean;
  listenerTimeoutMs: number;
}

export const DEFAULT_MAX_EVENTS_PER_TRANSACTION = 1000;
export const DEFAULT_LISTENER_TIMEOUT_MS = 5_000;
/** No transaction needs more row events buffered than this; a larger cap is a mistake (it is held in memory). */
const MAX_CAP = 1_000_000;

const fail = (option: string, value: unknown, reason: string) => new TieredCacheOptionsError(`typeorm.${option}`, value, reason);

export function resolveTypeOrmOptions(raw: unknown): ResolvedTypeOrmOptions {
  if (raw === undefined || raw === null) raw = {};
  if (typeof raw !== 'object') throw new TieredCacheOptionsError('typeorm', raw, 'expected an options object');
  const o = raw as TieredCacheTypeOrmOptions;
  const known = new Set(['dataSource', 'entities', 'eventName', 'maxEventsPerTransaction', 'awaitListeners', 'listenerTimeout']);
  for (const k of Object.keys(o)) if (!known.has(k)) throw fail(k, (o as Record<string, unknown>)[k], `unknown option; expected one of ${[...known].join(', ')}`);

  const ds = o.dataSource;
  if (ds !== undefined && !(typeof ds === 'string' && ds.length > 0) && !isDataSourceLike(ds)) {
    throw fail('dataSource', ds, 'expected the name of a TypeOrmModule DataSource, or a DataSource');
  }
  if (o.entities !== undefined) {
    if (!Array.isArray(o.entities) || o.entities.length === 0) throw fail('entities', o.entities, 'expected a non-empty array of entities (leave it out for all)');
    o.entities.forEach((e, i) => {
      if (e === null || e === undefined || (typeof e !== 'function' && typeof e !== 'string' && typeof e !== 'object')) {
        throw fail(`entities[${i}]`, e, 'expected an entity class, EntitySchema, entity name, or { entity, name?, payload? }');
      }
    });
  }
  if (o.eventName !== undefined && typeof o.eventName !== 'function') throw fail('eventName', o.eventName, 'expected a function (entity) => string');
  const cap = o.maxEventsPerTransaction ?? DEFAULT_MAX_EVENTS_PER_TRANSACTION;
  if (typeof cap !== 'number' || !Number.isInteger(cap) || cap < 1 || cap > MAX_CAP) {
    throw fail('maxEventsPerTransaction', cap, `expected a whole number from 1 to ${MAX_CAP}`);
  }
  if (o.awaitListeners !== undefined && typeof o.awaitListeners !== 'boolean') throw fail('awaitListeners', o.awaitListeners, 'expected true or false');
  const listenerTimeoutMs = o.listenerTimeout === undefined ? DEFAULT_LISTENER_TIMEOUT_MS : parseTimerDuration('typeorm.listenerTimeout', o.listenerTimeout);
  return {
    dataSource: ds,
    entities: o.entities,
    eventName: o.eventName,
    maxEventsPerTransaction: cap,
    awaitListeners: o.awaitListeners ?? true,
    listenerTimeoutMs,
  };
}

/** A DataSource, told by its shape (typeorm is not loaded here to check a class). */
export function isDataSourceLike(v: unknown): v is import('typeorm').DataSource {
  if (v === null || typeof v !== 'object') return false;
  const d = v as { subscribers?: unknown; getMetadata?: unknown; entityMetadatas?: unknown };
  return Array.isArray(d.subscribers) && typeof d.getMetadata === 'function' && Array.isArray(d.entityMetadatas);
}
