import { type DynamicModule, Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
// In your app: from 'nestjs-tiered-cache/typeorm'.
import { TieredCacheTypeOrmModule } from '../../../lib/typeorm';
import { DataSource, type DataSourceOptions } from 'typeorm';
import { FakeDatabase } from './fake-database';
import { PropertyRepository } from './property-repository';
import { CreatePropertyTable1767225600000 } from './typeorm/create-property-table.migration';
import { prepareDatabase } from './typeorm/prepare-database';
import { PropertyEntity } from './typeorm/property.entity';
import { TypeOrmPropertyRepository } from './typeorm/typeorm-property.repository';

/**
 * Provides the app's PropertyRepository: PostgreSQL through TypeORM when given a database URL (shared by every
 * instance), otherwise the in-memory FakeDatabase (one per process). The choice is made when the module is
 * declared, i.e. from the environment the process started with: Nest needs to know a module's imports before it
 * boots, and TypeOrmModule must only be imported when there is a database to connect to.
 */
@Module({})
export class DatabaseModule {
  static forRoot(databaseUrl: string | undefined = process.env.DATABASE_URL): DynamicModule {
    if (!databaseUrl) {
      return {
        module: DatabaseModule,
        // FakeDatabase under its own name too: tests read its query counter, or share one between two apps.
        providers: [FakeDatabase, { provide: PropertyRepository, useExisting: FakeDatabase }],
        exports: [PropertyRepository, FakeDatabase],
      };
    }
    return {
      module: DatabaseModule,
      imports: [
        TypeOrmModule.forRootAsync({
          useFactory: () => ({
            type: 'postgres',
            url: databaseUrl,
            applicationName: 'nestjs-tiered-cache-sample',
            entities: [PropertyEntity],
            migrations: [CreatePropertyTable1767225600000],
            // The schema comes from the migration, applied under a lock (prepareDatabase), never diffed at boot.
            synchronize: false,
            migrationsRun: false,
            connectTimeoutMS: 5_000,
          }),
          // The DataSource is handed to Nest only once migrated and seeded: nothing can query a table that is not there yet.
          dataSourceFactory: async (options?: DataSourceOptions) => {
            const dataSource = await new DataSource(options as DataSourceOptions).initialize();
            try {
              await prepareDatabase(dataSource);
            } catch (err) {
              // TypeOrmModule retries the whole factory: do not leave this attempt's pool open.
              await dataSource.destroy().catch(() => undefined);
              throw err;
            }
            return dataSource;
          },
        }),
        // Committed writes of PropertyEntity become property.created|updated|deleted events: the cache's rules fire
        // with no hand-written event, and a rolled-back write announces nothing.
        TieredCacheTypeOrmModule.forRoot({ entities: [PropertyEntity] }),
      ],
      providers: [TypeOrmPropertyRepository, { provide: PropertyRepository, useExisting: TypeOrmPropertyRepository }],
      exports: [PropertyRepository],
    };
  }
}
