import type { DataSource, EntityMetadata } from 'typeorm';
import { TieredCacheOptionsError } from '../core/errors';
import { checkEventBaseName, defaultEventBaseName } from './entity-event-name';
import { entityEventsOf, type EntityPayloadMapper } from './entity-events.decorator';
import type { EntityEventsEntry } from './tiered-cache-typeorm-options.interface';
import type { ResolvedTypeOrmOptions } from './typeorm-options';

/** How one entity's events are named and shaped. */
export interface EntityEventTarget {
  readonly name: string;
  readonly payload: EntityPayloadMapper | undefined;
}

/**
 * Which entities of a DataSource emit events, under which names: decided once at boot from `entities`, the
 * `@EntityEvents` decorators and `eventName`, so that a bad or clashing name fails the app's start instead of
 * the first commit. Bounded by the DataSource's entities.
 */
export class EntityEventCatalog {
  private readonly targets = new Map<EntityMetadata, EntityEventTarget>();

  constructor(dataSource: DataSource, options: ResolvedTypeOrmOptions) {
    const explicit = new Map<EntityMetadata, { entry: EntityEventsEntry | undefined; option: string }>();
    if (options.entities) {
      options.entities.forEach((e, i) => {
        const option = `typeorm.entities[${i}]`;
        const entry = isEntry(e) ? e : undefined;
        const target = entry ? entry.entity : e;
        let metadata: EntityMetadata;
        try {
          metadata = dataSource.getMetadata(target as never);
        } catch (err) {
          throw new TieredCacheOptionsError(option, target, `not an entity of this DataSource (${(err as Error).message})`);
        }
        if (entry?.name !== undefined) checkEventBaseName(`${option}.name`, entry.name, (m) => new TieredCacheOptionsError(`${option}.name`, entry.name, m));
        if (entry?.payload !== undefined && typeof entry.payload !== 'function') {
          throw new TieredCacheOptionsError(`${option}.payload`, entry.payload, 'expected a function of the change');
        }
        explicit.set(metadata, { entry, option });
      });
    }

    // Default names must not collide (two classes called Item in two modules would share their events without
    // anyone choosing it); names given on purpose (decorator, entry) may be shared.
    const derivedBy = new Map<string, string>();
    for (const metadata of dataSource.entityMetadatas) {
      if (metadata.tableType === 'junction' || metadata.tableType === 'closure-junction') continue;
      const chosen = explicit.get(metadata);
      if (options.entities && !chosen) continue;
      const decorated = entityEventsOf(metadata.target);
      if (!chosen && decorated?.enabled === false) continue;
      const entryName = chosen?.entry?.name;
      let name = entryName ?? decorated?.name;
      if (name === undefined) {
        const where = options.eventName ? 'typeorm.eventName' : `entity ${metadata.name}`;
        name = options.eventName ? options.eventName({ name: metadata.name, tableName: metadata.tableName, target: metadata.target }) : defaultEventBaseName(metadata.name);
        checkEventBaseName(where, name, (m) => new TieredCacheOptionsError(where, name, `${m}; name it with @EntityEvents('…') or the entities option`));
        const other = derivedBy.get(name);
        if (other !== undefined) {
          throw new TieredCacheOptionsError(where, name, `entities ${other} and ${metadata.name} would both emit "${name}.*"; name one of them with @EntityEvents('…') or typeorm.entities`);
        }
        derivedBy.set(name, metadata.name);
      }
      this.targets.set(metadata, { name, payload: chosen?.entry?.payload ?? decorated?.payload });
    }
  }

  /** The entity's target; undefined for entities that emit nothing. */
  of(metadata: EntityMetadata): EntityEventTarget | undefined {
    return this.targets.get(metadata);
  }

  /** Event names by TypeORM entity name, for the boot log and tests. */
  names(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [m, t] of this.targets) out[m.name] = t.name;
    return out;
  }
}

function isEntry(e: unknown): e is EntityEventsEntry {
  return e !== null && typeof e === 'object' && 'entity' in e && typeof (e as { constructor?: unknown }).constructor === 'function' && (e as object).constructor === Object;
}
