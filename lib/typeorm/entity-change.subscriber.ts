import type {
  EntityMetadata,
  EntitySubscriberInterface,
  InsertEvent,
  QueryRunner,
  RecoverEvent,
  RemoveEvent,
  SoftRemoveEvent,
  TransactionCommitEvent,
  TransactionRollbackEvent,
  TransactionStartEvent,
  UpdateEvent,
} from 'typeorm';
import type { LogThrottle } from '../core/log-throttle';
import type { EntityBulkChange, EntityRowChange } from './entity-change.interface';
import { insertChange, recoverChange, removeChange, updateChange, type ChangeContext } from './entity-change.builder';
import type { EntityChangePublisher } from './entity-change.publisher';
import type { EntityEventCatalog, EntityEventTarget } from './entity-event-catalog';
import type { TransactionChanges } from './transaction-changes';

export interface SubscriberCounters {
  /** Changes dropped because their transaction (or savepoint) rolled back. */
  rolledBack: number;
  /** Hooks that failed inside this subscriber (logged; the write went on). */
  failures: number;
}

/**
 * A TypeORM subscriber for every entity of one DataSource: turns writes into changes, holds them per QueryRunner
 * until the transaction commits (a write outside a transaction is durable at once), drops them on rollback.
 * Every hook swallows its own errors: a cache must never fail, or undo, a write.
 */
export class EntityChangeSubscriber implements EntitySubscriberInterface {
  readonly counters: SubscriberCounters = { rolledBack: 0, failures: 0 };

  constructor(
    private readonly catalog: EntityEventCatalog,
    private readonly buffer: TransactionChanges,
    private readonly publisher: EntityChangePublisher,
    private readonly logs: LogThrottle,
  ) {}

  afterInsert(event: InsertEvent<unknown>): Promise<void> | void {
    return this.record(event.queryRunner, event.metadata, (ctx) => insertChange(ctx, event.entity as object | undefined, event.entityId));
  }

  afterUpdate(event: UpdateEvent<unknown>): Promise<void> | void {
    return this.record(event.queryRunner, event.metadata, (ctx) =>
      updateChange(ctx, event.entity, (event.databaseEntity ?? undefined) as object | undefined, event.updatedColumns ?? [], event.updatedRelations ?? []),
    );
  }

  afterRemove(event: RemoveEvent<unknown>): Promise<void> | void {
    return this.record(event.queryRunner, event.metadata, (ctx) => removeChange(ctx, event.entity as object | undefined, event.databaseEntity as object | undefined, event.entityId));
  }

  afterSoftRemove(event: SoftRemoveEvent<unknown>): Promise<void> | void {
    return this.record(event.queryRunner, event.metadata, (ctx) => removeChange(ctx, event.entity as object | undefined, event.databaseEntity as object | undefined, event.entityId, true));
  }

  afterRecover(event: RecoverEvent<unknown>): Promise<void> | void {
    return this.record(event.queryRunner, event.metadata, (ctx) => recoverChange(ctx, event.entity as object | undefined, event.databaseEntity as object | undefined, event.entityId));
  }

  afterTransactionStart(event: TransactionStartEvent): void {
    try {
      const depth = (event.queryRunner as unknown as { transactionDepth?: unknown }).transactionDepth;
      this.buffer.begin(event.queryRunner, typeof depth === 'number' ? depth <= 1 : false);
    } catch (err) {
      this.failed('transaction-start', err);
    }
  }

  afterTransactionCommit(event: TransactionCommitEvent): Promise<void> | void {
    let ready: ReturnType<TransactionChanges["commit"]>;
    try {
      ready = this.buffer.commit(event.queryRunner, event.queryRunner.isTransactionActive);
    } catch (err) {
      this.failed('transaction-commit', err);
      return;
    }
    if (ready.length > 0) return this.publisher.publish(ready);
  }

  afterTransactionRollback(event: TransactionRollbackEvent): void {
    try {
      this.counters.rolledBack += this.buffer.rollback(event.queryRunner, event.queryRunner.isTransactionActive);
    } catch (err) {
      this.failed('transaction-rollback', err);
    }
  }

  private record(runner: QueryRunner | undefined, metadata: EntityMetadata, build: (ctx: ChangeContext) => EntityRowChange | EntityBulkChange): Promise<void> | void {
    let target: EntityEventTarget | undefined;
    let change: EntityRowChange | EntityBulkChange;
    try {
      target = this.catalog.of(metadata);
      if (!target) return;
      change = build({ metadata, name: target.name });
      if (runner?.isTransactionActive) {
        this.buffer.add(runner, { target, change });
        return;
      }
    } catch (err) {
      this.failed(`change:${metadata?.name}`, err);
      return;
    }
    // Outside a transaction the statement has been applied already (autocommit): emit now.
    return this.publisher.publish([{ target, change }]);
  }

  private failed(kind: string, err: unknown): void {
    this.counters.failures++;
    this.logs.log('error', `subscriber:${kind}`, `entity events: ${kind} failed: ${err instanceof Error ? err.message : String(err)}`);
  }
}
