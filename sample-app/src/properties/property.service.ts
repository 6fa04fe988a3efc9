import { Injectable, NotFoundException } from '@nestjs/common';
import { EventEmitter2 } from '@nestjs/event-emitter';
// In your app: from 'nestjs-tiered-cache'.
import { Cacheable } from '../../../lib';
import { FakeDatabase, type Property } from '../database/fake-database';

@Injectable()
export class PropertyService {
  constructor(
    private readonly db: FakeDatabase,
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

  /** Updates, then emits `property.updated`: the invalidation rules in app.module.ts do the rest, on every instance. */
  async update(id: string, patch: Partial<Pick<Property, 'address' | 'price' | 'state'>>): Promise<Property> {
    const p = await this.db.updateProperty(id, patch);
    if (!p) throw new NotFoundException(`property ${id} not found`);
    await this.events.emitAsync('property.updated', { propertyId: p.id, tenantId: p.tenantId });
    return p;
  }
}
