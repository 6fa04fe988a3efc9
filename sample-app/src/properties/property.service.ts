import { Injectable, NotFoundException } from '@nestjs/common';
import { EventEmitter2 } from '@nestjs/event-emitter';
// In your app: from 'nestjs-tiered-cache'.
import { Cacheable } from '../../../lib';
import type { Property, PropertyPatch } from '../database/property';
import { PropertyRepository } from '../database/property-repository';

@Injectable()
export class PropertyService {
  constructor(
    private readonly db: PropertyRepository,
    private readonly events: EventEmitter2,
  ) {}

  /** Cached for every caller — controllers, other services, the warm-up script. */
  @Cacheable({ key: 'property:detail:{id}', ttl: '10m', tags: ['property:{id}'] })
  async findById(id: string): Promise<Property> {
    const p = await this.db.findProperty(id);
    if (!p) throw new NotFoundException(`property ${id} not found`);
    return p;
  }

  /** One list per tenant: a tenant never sees another's list. */
  @Cacheable({ key: 'properties:list:{tenantId}:all', ttl: '5m' })
  async list(tenantId: string): Promise<Property[]> {
    return this.db.listProperties(tenantId);
  }

  /** The uncached path, for comparison in the benchmark. */
  async findByIdUncached(id: string): Promise<Property> {
    const p = await this.db.findProperty(id);
    if (!p) throw new NotFoundException(`property ${id} not found`);
    return p;
  }

  /**
   * Updates; `property.updated` then reaches the invalidation rules in app.module.ts, which do the rest on every
   * instance. On PostgreSQL the ORM emits it after the transaction committed (nestjs-tiered-cache/typeorm), with
   * the row's columns (`id`, `tenantId`, …) in its payload; the in-memory store has no ORM, so the service emits
   * the same payload itself, after the write. Either way the event never runs ahead of the data: an instance that
   * drops its copy and reads again finds the new row, not the old one.
   */
  async update(id: string, patch: PropertyPatch): Promise<Property> {
    const p = await this.db.updateProperty(id, patch);
    if (!p) throw new NotFoundException(`property ${id} not found`);
    if (!this.db.announcesChanges) await this.events.emitAsync('property.updated', { id: p.id, tenantId: p.tenantId });
    return p;
  }
}
