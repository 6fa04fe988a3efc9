// `nestjs-tiered-cache/typeorm`: ORM-driven invalidation. Kept out of the main entry so that an app without
// TypeORM never loads it; typeorm itself is only referenced for types here (the app brings its own).
export { TieredCacheTypeOrmModule } from './tiered-cache-typeorm.module';
export { TIERED_CACHE_TYPEORM_OPTIONS } from './tiered-cache-typeorm.module-definition';
export { TypeOrmEntityEvents, type TypeOrmEntityEventsStats } from './typeorm-entity-events.service';
export { EntityEvents, type EntityEventsOptions, type EntityPayloadMapper } from './entity-events.decorator';
export { defaultEventBaseName } from './entity-event-name';
export { DEFAULT_MAX_EVENTS_PER_TRANSACTION, DEFAULT_LISTENER_TIMEOUT_MS } from './typeorm-options';
export type { TieredCacheTypeOrmOptions, EntityEventsEntry, EntityNameInfo } from './tiered-cache-typeorm-options.interface';
export type { EntityChange, EntityRowChange, EntityBulkChange, EntityOperation } from './entity-change.interface';
