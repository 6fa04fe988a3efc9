import { Inject, Injectable, Logger, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import type { DataSource } from 'typeorm';
import { TieredCacheOptionsError } from '../core/errors';
import { LogThrottle } from '../core/log-throttle';
import { findEventEmitter } from '../nest/events/event-emitter-lookup';
import { EntityChangePublisher, type PublisherCounters } from './entity-change.publisher';
import { EntityChangeSubscriber, type SubscriberCounters } from './entity-change.subscriber';
import { EntityEventCatalog } from './entity-event-catalog';
import { TIERED_CACHE_TYPEORM_OPTIONS } from './tiered-cache-typeorm.module-definition';
import type { TieredCacheTypeOrmOptions } from './tiered-cache-typeorm-options.interface';
import { isDataSourceLike, resolveTypeOrmOptions, type ResolvedTypeOrmOptions } from './typeorm-options';
import { TransactionChanges } from './transaction-changes';

export interface TypeOrmEntityEventsStats extends PublisherCounters, SubscriberCounters {
  /** Transactions whose row events went past `maxEventsPerTransaction` and were folded into bulk events. */
  overflows: number;
}

/** Marks a DataSource that already has our subscriber: two would emit every event twice. */
const REGISTERED = Symbol.for('nestjs-tiered-cache:typeorm-subscriber');

/**
 * Registers the entity-change subscriber on the DataSource when the app starts and removes it when it stops.
 * The DataSource (from @nestjs/typeorm, or given) and EventEmitter2 are looked up through DI, not imported.
 */
@Injectable()
export class TypeOrmEntityEvents implements OnModuleInit, OnApplicationShutdown {
  private options!: ResolvedTypeOrmOptions;
  private readonly logs = new LogThrottle(new Logger('TieredCacheTypeOrm'));
  private dataSource: DataSource | undefined;
  private subscriber: EntityChangeSubscriber | undefined;
  private buffer: TransactionChanges | undefined;
  private catalog: EntityEventCatalog | undefined;
  private publisher: EntityChangePublisher | undefined;

  constructor(
    @Inject(TIERED_CACHE_TYPEORM_OPTIONS) private readonly rawOptions: TieredCacheTypeOrmOptions,
    private readonly moduleRef: ModuleRef,
  ) {}

  onModuleInit(): void {
    // Checked here rather than in the constructor: a failure while Nest is still creating providers leaves the
    // DataSource and Redis connections already opened without anyone to close them; from here app.close() does.
    this.options = resolveTypeOrmOptions(this.rawOptions);
    const dataSource = this.findDataSource();
    if (!dataSource.isInitialized) {
      throw new TieredCacheOptionsError('typeorm.dataSource', dataSourceName(dataSource), 'the DataSource is not initialized; initialize it before the app starts (TypeOrmModule does)');
    }
    if ((dataSource as unknown as Record<symbol, unknown>)[REGISTERED]) {
      throw new TieredCacheOptionsError('typeorm.dataSource', dataSourceName(dataSource), 'TieredCacheTypeOrmModule is registered twice for this DataSource; every event would be emitted twice');
    }
    const emitter = findEventEmitter(this.moduleRef);
    if (!emitter) {
      throw new Error('TieredCacheTypeOrmModule emits through @nestjs/event-emitter: install it and import EventEmitterModule.forRoot() in the app');
    }
    this.catalog = new EntityEventCatalog(dataSource, this.options);
    this.buffer = new TransactionChanges(this.options.maxEventsPerTransaction);
    const publisher = new EntityChangePublisher(emitter, this.logs, this.options.awaitListeners, this.options.listenerTimeoutMs);
    this.subscriber = new EntityChangeSubscriber(this.catalog, this.buffer, publisher, this.logs);
    this.publisher = publisher;
    dataSource.subscribers.push(this.subscriber);
    (dataSource as unknown as Record<symbol, unknown>)[REGISTERED] = true;
    this.dataSource = dataSource;
  }

  onApplicationShutdown(): void {
    const ds = this.dataSource;
    if (!ds || !this.subscriber) return;
    const i = ds.subscribers.indexOf(this.subscriber);
    if (i >= 0) ds.subscribers.splice(i, 1);
    delete (ds as unknown as Record<symbol, unknown>)[REGISTERED];
    this.dataSource = undefined;
  }

  /** Event names by TypeORM entity name (`{ Property: 'property' }`): the entities that emit. */
  eventNames(): Record<string, string> {
    return this.catalog?.names() ?? {};
  }

  stats(): TypeOrmEntityEventsStats {
    return {
      emitted: 0,
      listenerFailures: 0,
      listenerTimeouts: 0,
      payloadFailures: 0,
      ...this.publisher?.counters,
      rolledBack: this.subscriber?.counters.rolledBack ?? 0,
      failures: this.subscriber?.counters.failures ?? 0,
      overflows: this.buffer?.overflows ?? 0,
    };
  }

  private findDataSource(): DataSource {
    const ds = this.options.dataSource;
    if (isDataSourceLike(ds)) return ds;
    let token: unknown;
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      token = (require('@nestjs/typeorm') as { getDataSourceToken(name?: string): unknown }).getDataSourceToken(ds);
    } catch {
      throw new TieredCacheOptionsError('typeorm.dataSource', ds ?? 'default', 'finding a DataSource by name needs @nestjs/typeorm; install it, or pass the DataSource itself');
    }
    let found: unknown;
    try {
      found = this.moduleRef.get(token as string, { strict: false });
    } catch {
      found = undefined;
    }
    if (!isDataSourceLike(found)) {
      throw new TieredCacheOptionsError('typeorm.dataSource', ds ?? 'default', 'no such DataSource in the app; import TypeOrmModule.forRoot(…) (with this name) before TieredCacheTypeOrmModule');
    }
    return found;
  }
}

function dataSourceName(ds: DataSource): string {
  return (ds.options as { name?: string } | undefined)?.name ?? 'default';
}
