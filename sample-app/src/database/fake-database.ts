import { Injectable } from '@nestjs/common';
import type { Property, PropertyPatch } from './property';
import { PropertyRepository } from './property-repository';
import { seedProperties } from './seed-data';
import { LATENCY_MS, simulateLatency } from './simulated-latency';

export type { Property } from './property';
export { LATENCY_MS } from './simulated-latency';

/**
 * A slow in-process "database" so the demo needs nothing installed: the backend when DATABASE_URL is unset. Its
 * data lives in this process only, so two instances of the app each have their own (a write on one is never
 * seen by the other): for a multi-instance demo, set DATABASE_URL.
 */
@Injectable()
export class FakeDatabase extends PropertyRepository {
  queries = 0;
  readonly announcesChanges = false;
  private readonly properties = new Map<string, Property>();

  constructor() {
    super();
    for (const p of seedProperties()) this.properties.set(p.id, p);
  }

  async findProperty(id: string): Promise<Property | null> {
    this.queries++;
    await simulateLatency(LATENCY_MS.property);
    const p = this.properties.get(id);
    return p ? { ...p } : null;
  }

  async listProperties(tenantId: string): Promise<Property[]> {
    this.queries++;
    await simulateLatency(LATENCY_MS.search);
    return [...this.properties.values()].filter((p) => p.tenantId === tenantId).map((p) => ({ ...p }));
  }

  async updateProperty(id: string, patch: PropertyPatch): Promise<Property | null> {
    const p = this.properties.get(id);
    if (!p) return null;
    Object.assign(p, patch, { updatedAt: new Date() });
    return { ...p };
  }
}
