import type { Property, PropertyPatch } from './property';

/**
 * What the services need from the data store, whichever backend holds it: the in-memory FakeDatabase (no
 * DATABASE_URL) or PostgreSQL through TypeORM. An abstract class rather than an interface so that it is also the
 * injection token (`constructor(private readonly db: PropertyRepository)`).
 */
export abstract class PropertyRepository {
  /** Reads that reached the backend, in this process: how the tests and the demo show the cache answered instead. */
  abstract readonly queries: number;

  /**
   * Whether the backend itself announces its writes as domain events (`property.updated` after commit): the
   * TypeORM one does, through nestjs-tiered-cache/typeorm's subscriber. The in-memory one does not, so the
   * service announces them.
   */
  abstract readonly announcesChanges: boolean;

  abstract findProperty(id: string): Promise<Property | null>;

  abstract listProperties(tenantId: string): Promise<Property[]>;

  /**
   * Applies `patch` and returns the new row, or null when there is no such property. Resolves only once the
   * write is durable (committed): a caller that announces the change afterwards never announces an uncommitted one.
   */
  abstract updateProperty(id: string, patch: PropertyPatch): Promise<Property | null>;
}
