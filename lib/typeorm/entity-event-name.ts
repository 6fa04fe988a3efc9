/**
 * An entity's event name is the first part of its events (`property` in `property.updated`): EventEmitter2
 * segments separated by dots, so `catalog.property` is allowed (its events are `catalog.property.updated`, which
 * `catalog.*.updated` matches) but not a `*`, whitespace, or an empty segment.
 */
const NAME = /^[A-Za-z0-9_$-]+(?:\.[A-Za-z0-9_$-]+)*$/;

/** Throws `fail(message)` unless `name` is a usable event name. */
export function checkEventBaseName(where: string, name: unknown, fail: (message: string) => Error): asserts name is string {
  if (typeof name !== 'string' || !NAME.test(name)) {
    throw fail(`${where}: ${JSON.stringify(name)} is not a usable event name (letters, digits, _ $ -, dot-separated segments; no * or spaces)`);
  }
  // `x.bulk` would emit `x.bulk.updated` for its rows: the bulk event of an entity named `x`.
  if (name === 'bulk' || name.endsWith('.bulk')) {
    throw fail(`${where}: ${JSON.stringify(name)} ends in "bulk", which would make its row events look like another entity's bulk events`);
  }
}

/**
 * The default: TypeORM's entity name in lower camel case, a leading acronym lowered as a whole
 * (`Property` → `property`, `LeadScore` → `leadScore`, `URLRecord` → `urlRecord`, `ID` → `id`).
 */
export function defaultEventBaseName(entityName: string): string {
  const lead = /^[A-Z]+/.exec(entityName)?.[0] ?? '';
  if (lead.length === 0) return entityName;
  if (lead.length === 1 || lead.length === entityName.length) return lead.toLowerCase() + entityName.slice(lead.length);
  // "URLRecord": the last capital starts the next word.
  return lead.slice(0, -1).toLowerCase() + entityName.slice(lead.length - 1);
}
