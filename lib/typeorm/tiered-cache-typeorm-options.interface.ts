import type { DataSource, EntityTarget, ObjectLiteral } from 'typeorm';
import type { Duration } from '../core/duration';
import type { EntityPayloadMapper } from './entity-events.decorator';

/** What `eventName` is told about an entity. */
export interface EntityNameInfo {
  /** TypeORM's name: the class name, or the EntitySchema's `name`. */
  name: string;
  tableName: string;
  /** The class, or the EntitySchema's name. */
  target: unknown;
}

/** An entity of `entities`, with options of its own (for an EntitySchema, which has no class to decorate). */
export interface EntityEventsEntry {
  entity: EntityTarget<ObjectLiteral>;
  /** As `@EntityEvents({ name })`; wins over the decorator. */
  name?: string;
  /** As `@EntityEvents({ payload })`; wins over the decorator. */
  payload?: EntityPayloadMapper;
}

export interface TieredCacheTypeOrmOptions {
  /**
   * The DataSource whose writes emit events: the name it has in `TypeOrmModule.forRoot({ name })`, or the
   * DataSource itself (initialized; then @nestjs/typeorm is not needed). Default: @nestjs/typeorm's default one.
   */
  dataSource?: string | DataSource;
  /**
   * Entities that emit events (classes, EntitySchemas, entity names, or `{ entity, name?, payload? }`).
   * Default: every entity of the DataSource, less those marked `@EntityEvents(false)`.
   */
  entities?: ReadonlyArray<EntityTarget<ObjectLiteral> | EntityEventsEntry>;
  /**
   * The default event name of an entity that neither `entities` nor `@EntityEvents` names.
   * Default: TypeORM's entity name in lower camel case (`LeadScore` → `leadScore`).
   */
  eventName?: (entity: EntityNameInfo) => string;
  /**
   * Row events one transaction may buffer until its commit (default 1000). Past it the transaction's row events
   * are folded into one `<entity>.bulk.created|updated|deleted` per entity and operation (`reason: 'overflow'`).
   */
  maxEventsPerTransaction?: number;
  /**
   * `true` (default): commit() (and a write outside a transaction) resolves after the listeners — the
   * invalidation — have settled, so the next read sees fresh data. `false`: the events are emitted and not waited for.
   */
  awaitListeners?: boolean;
  /** How long a commit waits for the listeners at most, then goes on while they finish (default `'5s'`). */
  listenerTimeout?: Duration;
}
