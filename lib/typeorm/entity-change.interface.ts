/**
 * What happened. A row event is `<entity>.<operation>` (`property.updated`); a bulk event, for rows that cannot
 * be named one by one, `<entity>.bulk.<operation>` (`property.bulk.updated`): a statement by criteria
 * (`update()`, `delete()`, `softDelete()`, `restore()`, an insert whose key the database did not return), or a
 * transaction that changed more rows than `maxEventsPerTransaction`. The extra segment keeps them apart in
 * globs: `property.*` is the row events, `property.bulk.*` the bulk ones, `property.**` both.
 */
export type EntityOperation = 'created' | 'updated' | 'deleted';

interface EntityChangeCommon {
  /** The entity's event name, the part before the operation (`property` in `property.updated`). */
  entity: string;
  /** TypeORM's name of the entity: the class name, or the EntitySchema's `name`. */
  entityName: string;
  /** The entity's table, without its schema. */
  table: string;
  /**
   * Property paths of the columns (and relations) written: for an update, those TypeORM found changed; for a
   * create, every column given a value; for a delete, none; for a bulk update, the columns of its SET.
   */
  changed: string[];
  /** A soft delete (`softRemove`, `softDelete`) or its undoing (`recover`, `restore`, emitted as an update). */
  soft?: true;
}

/**
 * The payload of a row event. The row's scalar column values are also spread at the top level (so a rule can
 * say `{tenantId}`), under the fields above and below, which win over a column of the same name (that column
 * is still in `values`).
 */
export interface EntityRowChange extends EntityChangeCommon {
  operation: EntityOperation;
  bulk: false;
  /** The primary key, by property path (`{ id: 7 }`; composite keys have every part; a relation key its id). */
  pk: Record<string, unknown>;
  /**
   * The row's scalar column values as the ORM knew them after the write (for a delete: before it), by property
   * path; embedded columns nest (`{ address: { city } }`). Dates are ISO strings; JSON, arrays and binary
   * columns are left out (a rule cannot use them, and they can be large).
   */
  values: Record<string, unknown>;
  /** The row as it was loaded before an update (save() loads it); absent when TypeORM did not load it. */
  previous?: Record<string, unknown>;
  [column: string]: unknown;
}

/** The payload of a bulk event. Rules map it to a pattern or a tag: no single key can be named. */
export interface EntityBulkChange extends EntityChangeCommon {
  operation: EntityOperation;
  bulk: true;
  /**
   * `statement`: a statement by criteria (TypeORM hands subscribers its SET values but neither its WHERE nor
   * the rows it matched). `overflow`: more row events in one transaction than `maxEventsPerTransaction`.
   */
  reason: 'statement' | 'overflow';
  /** How many row events this one stands for (0 for a statement by criteria alone). */
  count: number;
  /** The scalar values a bulk update wrote (its SET), when every statement it stands for wrote the same. */
  set?: Record<string, unknown>;
}

export type EntityChange = EntityRowChange | EntityBulkChange;
