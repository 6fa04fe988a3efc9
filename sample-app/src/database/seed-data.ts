import type { Property } from './property';

/** The sample's 50 listings: odd ids belong to tenant globex, even ids to acme; every backend starts with these. */
export function seedProperties(): Property[] {
  const out: Property[] = [];
  for (let i = 1; i <= 50; i++) {
    out.push({
      id: String(i),
      tenantId: i % 2 === 0 ? 'acme' : 'globex',
      address: `${i} Market Street`,
      price: 250_000 + i * 1_000,
      state: 'listed',
      updatedAt: new Date(Date.UTC(2026, 0, 1)),
    });
  }
  return out;
}
