import type { EntityChange } from './entity-change.interface';
import { checkEventBaseName } from './entity-event-name';

/** Extra payload fields for an entity's events, from the change itself (e.g. an alias a strategy expects). */
export type EntityPayloadMapper = (change: EntityChange) => Record<string, unknown> | undefined;

export interface EntityEventsOptions {
  /** The event name's first part (`listing` → `listing.updated`). Default: from the module's `eventName`. */
  name?: string;
  /** `false`: this entity emits nothing. Default `true`. */
  enabled?: boolean;
  /**
   * Fields merged into every payload of this entity (over the built ones): `(c) => ({ propertyId: c.pk.id })`.
   * Called after the commit; a mapper that throws is logged and the event goes out without its fields.
   */
  payload?: EntityPayloadMapper;
}

const KEY = 'tiered-cache:typeorm-entity-events';
/** Where the options are kept when reflect-metadata is not loaded (it always is in a Nest app). */
const fallback = new WeakMap<object, EntityEventsOptions>();

/**
 * Names (or silences) an entity's ORM events: `@EntityEvents('listing')`, `@EntityEvents(false)`,
 * `@EntityEvents({ name, payload })`. Applies to the decorated class only, not to subclasses (a child entity of
 * a table hierarchy gets its own default name unless decorated too).
 */
export function EntityEvents(nameOrOptions: string | false | EntityEventsOptions): ClassDecorator {
  const options = normalize(nameOrOptions);
  return (target) => {
    const reflect = Reflect as unknown as { defineMetadata?(key: string, value: unknown, target: object): void };
    if (typeof reflect.defineMetadata === 'function') reflect.defineMetadata(KEY, options, target);
    else fallback.set(target, options);
  };
}

/** The options `@EntityEvents` put on exactly this class (not inherited). */
export function entityEventsOf(target: unknown): EntityEventsOptions | undefined {
  if (typeof target !== 'function') return undefined;
  const reflect = Reflect as unknown as { getOwnMetadata?(key: string, target: object): unknown };
  const own = typeof reflect.getOwnMetadata === 'function' ? (reflect.getOwnMetadata(KEY, target) as EntityEventsOptions | undefined) : undefined;
  return own ?? fallback.get(target);
}

function normalize(v: string | false | EntityEventsOptions): EntityEventsOptions {
  const where = '@EntityEvents';
  if (v === false) return { enabled: false };
  if (typeof v === 'string') {
    checkEventBaseName(where, v, (m) => new TypeError(m));
    return { name: v };
  }
  if (v === null || typeof v !== 'object') throw new TypeError(`${where} takes an event name, false, or { name?, enabled?, payload? }`);
  if (v.name !== undefined) checkEventBaseName(`${where}({ name })`, v.name, (m) => new TypeError(m));
  if (v.enabled !== undefined && typeof v.enabled !== 'boolean') throw new TypeError(`${where}({ enabled }) must be a boolean`);
  if (v.payload !== undefined && typeof v.payload !== 'function') throw new TypeError(`${where}({ payload }) must be a function of the change`);
  return { ...v };
}
