import { Column, Entity, Index, PrimaryColumn } from 'typeorm';
// In your app: from 'nestjs-tiered-cache/typeorm'.
import { EntityEvents } from '../../../../lib/typeorm';
import type { PropertyState } from '../property';

/**
 * The `property` table (created by CreatePropertyTable, never by `synchronize`). Its committed writes are announced
 * as `property.created|updated|deleted` (the default name would be `propertyEntity`).
 */
@EntityEvents({ name: 'property' })
@Entity({ name: 'property' })
export class PropertyEntity {
  @PrimaryColumn({ type: 'varchar', length: 64 })
  id!: string;

  @Index('property_tenant_id_idx')
  @Column({ name: 'tenant_id', type: 'varchar', length: 64 })
  tenantId!: string;

  @Column({ type: 'text' })
  address!: string;

  @Column({ type: 'integer' })
  price!: number;

  @Column({ type: 'varchar', length: 16 })
  state!: PropertyState;

  @Column({ name: 'updated_at', type: 'timestamptz' })
  updatedAt!: Date;
}
