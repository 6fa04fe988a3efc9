import { Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import type { Property, PropertyPatch } from '../property';
import { PropertyRepository } from '../property-repository';
import { LATENCY_MS, simulateLatency } from '../simulated-latency';
import { PropertyEntity } from './property.entity';

const toProperty = (e: PropertyEntity): Property => ({
  id: e.id,
  tenantId: e.tenantId,
  address: e.address,
  price: e.price,
  state: e.state,
  updatedAt: e.updatedAt,
});

/** Numeric ids in numeric order ("2" before "10"), as the in-memory backend lists them. */
const byId = (a: Property, b: Property) => a.id.localeCompare(b.id, 'en', { numeric: true });

/** The listings in PostgreSQL (DATABASE_URL), shared by every instance of the app. */
@Injectable()
export class TypeOrmPropertyRepository extends PropertyRepository {
  queries = 0;
  /** The ORM subscriber (TieredCacheTypeOrmModule in database.module.ts) emits property.updated after each commit. */
  readonly announcesChanges = true;

  constructor(private readonly dataSource: DataSource) {
    super();
  }

  async findProperty(id: string): Promise<Property | null> {
    this.queries++;
    const [row] = await Promise.all([this.dataSource.getRepository(PropertyEntity).findOneBy({ id }), simulateLatency(LATENCY_MS.property)]);
    return row ? toProperty(row) : null;
  }

  async listProperties(tenantId: string): Promise<Property[]> {
    this.queries++;
    const [rows] = await Promise.all([this.dataSource.getRepository(PropertyEntity).findBy({ tenantId }), simulateLatency(LATENCY_MS.search)]);
    return rows.map(toProperty).sort(byId);
  }

  /**
   * In a transaction, the row locked (SELECT … FOR UPDATE) so that concurrent updates of one property apply one
   * after the other; resolves after COMMIT, so the caller's `property.updated` never precedes the data.
   */
  async updateProperty(id: string, patch: PropertyPatch): Promise<Property | null> {
    return this.dataSource.transaction(async (tx) => {
      const repo = tx.getRepository(PropertyEntity);
      const row = await repo.findOne({ where: { id }, lock: { mode: 'pessimistic_write' } });
      if (!row) return null;
      Object.assign(row, patch, { updatedAt: new Date() });
      return toProperty(await repo.save(row));
    });
  }
}
