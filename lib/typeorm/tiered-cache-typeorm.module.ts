import { Module } from '@nestjs/common';
import { TieredCacheTypeOrmConfigurableModule } from './tiered-cache-typeorm.module-definition';
import { TypeOrmEntityEvents } from './typeorm-entity-events.service';

/**
 * `TieredCacheTypeOrmModule.forRoot({ dataSource?, entities?, eventName?, … })` or `.forRootAsync({ useFactory, inject })`:
 * every committed insert, update and delete of the DataSource's entities is emitted as `<entity>.created`,
 * `.updated`, `.deleted` (statements by criteria as `.bulk.updated`, `.bulk.deleted`) on the app's
 * EventEmitter2, where TieredCacheModule's invalidation rules and strategies hear it.
 */
@Module({
  providers: [TypeOrmEntityEvents],
  exports: [TypeOrmEntityEvents],
})
export class TieredCacheTypeOrmModule extends TieredCacheTypeOrmConfigurableModule {}
