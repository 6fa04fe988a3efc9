/** A listing, as every backend returns it (plain data: what the cache stores and the API sends). */
export interface Property {
  id: string;
  tenantId: string;
  address: string;
  price: number;
  state: PropertyState;
  updatedAt: Date;
}

export const PROPERTY_STATES = ['listed', 'under_offer', 'sold'] as const;
export type PropertyState = (typeof PROPERTY_STATES)[number];

/** The fields `PUT /properties/:id` may change. */
export type PropertyPatch = Partial<Pick<Property, 'address' | 'price' | 'state'>>;
