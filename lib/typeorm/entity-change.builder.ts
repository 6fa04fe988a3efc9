import type { EntityMetadata, ObjectLiteral, RelationMetadata } from 'typeorm';
import type { EntityBulkChange, EntityOperation, EntityRowChange } from './entity-change.interface';

/**
 * Turns what a TypeORM subscriber is told into the payloads of our events. Only scalar column values are
 * copied (rules fill templates with scalars; whole JSON documents or blobs would only make events heavy).
 */

/** TypeORM does not export ColumnMetadata from its root. */
type ColumnMetadata = EntityMetadata['columns'][number];

/** Property-path segments that must never become keys of a payload object. */
const UNSAFE = new Set(['__proto__', 'constructor', 'prototype']);

/** A column value as rules can use it, or undefined to leave it out. */
function scalar(v: unknown): unknown {
  switch (typeof v) {
    case 'string':
    case 'boolean':
    case 'bigint':
      return v;
    case 'number':
      return Number.isFinite(v) ? v : undefined;
    case 'object':
      if (v === null) return null;
      if (v instanceof Date) return Number.isNaN(v.getTime()) ? undefined : v.toISOString();
      return undefined;
    default:
      return undefined;
  }
}

function setPath(into: Record<string, unknown>, path: string, value: unknown): void {
  const parts = path.split('.');
  if (parts.some((p) => UNSAFE.has(p) || p.length === 0)) return;
  let cur = into;
  for (let i = 0; i < parts.length - 1; i++) {
    const next = cur[parts[i]];
    if (next === null || typeof next !== 'object') cur[parts[i]] = {};
    cur = cur[parts[i]] as Record<string, unknown>;
  }
  cur[parts[parts.length - 1]] = value;
}

/** The scalar values `source` holds for `columns`, by property path; `written` collects the paths present. */
export function columnValues(columns: readonly ColumnMetadata[], source: ObjectLiteral | undefined, written?: string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (!source) return out;
  for (const c of columns) {
    let raw: unknown;
    try {
      raw = c.getEntityValue(source);
    } catch {
      continue; // a getter that throws, a half-built relation: not ours to fail on
    }
    if (raw === undefined) continue;
    written?.push(c.propertyPath);
    const v = scalar(raw);
    if (v !== undefined) setPath(out, c.propertyPath, v);
  }
  return out;
}

/** The primary key of `sources` (the first that has every part of it), or undefined when none names the row. */
function primaryKey(metadata: EntityMetadata, ...sources: Array<ObjectLiteral | undefined>): Record<string, unknown> | undefined {
  for (const s of sources) {
    if (!s) continue;
    const pk: Record<string, unknown> = {};
    let complete = metadata.primaryColumns.length > 0;
    for (const c of metadata.primaryColumns) {
      let v: unknown;
      try {
        v = scalar(c.getEntityValue(s));
      } catch {
        v = undefined;
      }
      if (v === undefined || v === null) {
        complete = false;
        break;
      }
      setPath(pk, c.propertyPath, v);
    }
    if (complete) return pk;
  }
  return undefined;
}

/** TypeORM's entityId: the plain value for a single-column key, a map otherwise. */
function idAsEntity(metadata: EntityMetadata, entityId: unknown): ObjectLiteral | undefined {
  if (entityId === undefined || entityId === null) return undefined;
  if (typeof entityId === 'object' && !(entityId instanceof Date)) return entityId as ObjectLiteral;
  if (metadata.primaryColumns.length !== 1) return undefined;
  const out: Record<string, unknown> = {};
  setPath(out, metadata.primaryColumns[0].propertyPath, entityId);
  return out;
}

export interface ChangeContext {
  metadata: EntityMetadata;
  /** The entity's event name. */
  name: string;
}

function common(ctx: ChangeContext) {
  return { entity: ctx.name, entityName: ctx.metadata.name, table: ctx.metadata.tableName };
}

function row(ctx: ChangeContext, operation: EntityOperation, pk: Record<string, unknown>, values: Record<string, unknown>, changed: string[], previous?: Record<string, unknown>, soft?: boolean): EntityRowChange {
  const change: EntityRowChange = { ...common(ctx), operation, bulk: false, pk, changed, values };
  if (previous) change.previous = previous;
  if (soft) change.soft = true;
  return change;
}

export function bulkChange(ctx: ChangeContext, operation: EntityOperation, changed: string[], set?: Record<string, unknown>, soft?: boolean): EntityBulkChange {
  const change: EntityBulkChange = { ...common(ctx), operation, bulk: true, reason: 'statement', count: 0, changed };
  if (set && Object.keys(set).length > 0) change.set = set;
  if (soft) change.soft = true;
  return change;
}

/** afterInsert: the row with its generated key, or a bulk create when the database returned no key. */
export function insertChange(ctx: ChangeContext, entity: ObjectLiteral | undefined, entityId: unknown): EntityRowChange | EntityBulkChange {
  const written: string[] = [];
  const values = columnValues(ctx.metadata.columns, entity, written);
  const pk = primaryKey(ctx.metadata, entity, idAsEntity(ctx.metadata, entityId));
  return pk ? row(ctx, 'created', pk, values, written) : bulkChange(ctx, 'created', written);
}

/**
 * afterUpdate. save() hands over the loaded row (databaseEntity) and the columns it found changed: a row event.
 * A query-builder update (`update(criteria, values)`) hands over only its SET values: a bulk event.
 */
export function updateChange(
  ctx: ChangeContext,
  entity: ObjectLiteral | undefined,
  databaseEntity: ObjectLiteral | undefined,
  updatedColumns: readonly ColumnMetadata[],
  updatedRelations: readonly RelationMetadata[],
  soft = false,
): EntityRowChange | EntityBulkChange {
  if (!databaseEntity) {
    const written: string[] = [];
    const set = columnValues(ctx.metadata.columns, entity, written);
    return bulkChange(ctx, 'updated', written, set, soft);
  }
  const pk = primaryKey(ctx.metadata, databaseEntity, entity);
  const previous = columnValues(ctx.metadata.columns, databaseEntity);
  const values = { ...previous, ...columnValues(ctx.metadata.columns, entity) };
  const changed = [...new Set([...updatedColumns.map((c) => c.propertyPath), ...updatedRelations.map((r) => r.propertyPath)])];
  if (!pk) return bulkChange(ctx, 'updated', changed, undefined, soft);
  return row(ctx, 'updated', pk, values, changed, previous, soft);
}

/** afterRemove / afterSoftRemove: the row as it was loaded; a bulk delete for `delete(criteria)`. */
export function removeChange(ctx: ChangeContext, entity: ObjectLiteral | undefined, databaseEntity: ObjectLiteral | undefined, entityId: unknown, soft = false): EntityRowChange | EntityBulkChange {
  // remove() clears the entity's key before subscribers hear of it: the loaded row still has it.
  const pk = primaryKey(ctx.metadata, databaseEntity, idAsEntity(ctx.metadata, entityId), entity);
  if (!pk) return bulkChange(ctx, 'deleted', [], undefined, soft);
  const values = { ...columnValues(ctx.metadata.columns, entity), ...columnValues(ctx.metadata.columns, databaseEntity), ...pk };
  const changed = soft && ctx.metadata.deleteDateColumn ? [ctx.metadata.deleteDateColumn.propertyPath] : [];
  return row(ctx, 'deleted', pk, values, changed, undefined, soft);
}

/** afterRecover (recover(), restore()): the row is back, an update of its delete-date column. */
export function recoverChange(ctx: ChangeContext, entity: ObjectLiteral | undefined, databaseEntity: ObjectLiteral | undefined, entityId: unknown): EntityRowChange | EntityBulkChange {
  const column = ctx.metadata.deleteDateColumn ? [ctx.metadata.deleteDateColumn.propertyPath] : [];
  const pk = primaryKey(ctx.metadata, databaseEntity, idAsEntity(ctx.metadata, entityId), entity);
  if (!pk) return bulkChange(ctx, 'updated', column, undefined, true);
  const values = { ...columnValues(ctx.metadata.columns, databaseEntity), ...columnValues(ctx.metadata.columns, entity), ...pk };
  return row(ctx, 'updated', pk, values, column, undefined, true);
}

/** The event a change is emitted as. */
export function eventOf(change: EntityRowChange | EntityBulkChange): string {
  return change.bulk ? `${change.entity}.bulk.${change.operation}` : `${change.entity}.${change.operation}`;
}

/** The payload emitted: the row's values at the top level, under the change's own fields. */
export function payloadOf(change: EntityRowChange | EntityBulkChange, extra: Record<string, unknown> | undefined): Record<string, unknown> {
  const base: Record<string, unknown> = change.bulk ? { ...change } : { ...change.values, ...change.pk, ...change };
  if (extra) for (const [k, v] of Object.entries(extra)) if (!UNSAFE.has(k)) base[k] = v;
  return base;
}
