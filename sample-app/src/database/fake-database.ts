import { Injectable } from '@nestjs/common';

export interface Property {
  id: string;
  tenantId: string;
  address: string;
  price: number;
  state: 'listed' | 'under_offer' | 'sold';
  updatedAt: Date;
}

/** Simulated latencies of the original design: property lookup/search 150 ms, lead scoring 200 ms, market analysis 100 ms. */
export const LATENCY_MS = { property: 150, search: 150, score: 200, market: 100 };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * A slow in-process "database" so the demo needs nothing installed. `queries` counts real lookups,
 * which is how the tests prove the cache answered.
 */
@Injectable()
export class FakeDatabase {
  queries = 0;
  private readonly properties = new Map<string, Property>();

  constructor() {
    for (let i = 1; i <= 50; i++) {
      this.properties.set(String(i), {
        id: String(i),
        tenantId: i % 2 === 0 ? 'acme' : 'globex',
        address: `${i} Market Street`,
        price: 250_000 + i * 1_000,
        state: 'listed',
        updatedAt: new Date(Date.UTC(2026, 0, 1)),
      });
    }
  }

  async findProperty(id: string): Promise<Property | null> {
    this.queries++;
    await sleep(LATENCY_MS.property);
    const p = this.properties.get(id);
    return p ? { ...p } : null;
  }

  async listProperties(tenantId: string): Promise<Property[]> {
    this.queries++;
    await sleep(LATENCY_MS.search);
    return [...this.properties.values()].filter((p) => p.tenantId === tenantId).map((p) => ({ ...p }));
  }

  async updateProperty(id: string, patch: Partial<Pick<Property, 'address' | 'price' | 'state'>>): Promise<Property | null> {
    const p = this.properties.get(id);
    if (!p) return null;
    Object.assign(p, patch, { updatedAt: new Date() });
    return { ...p };
  }

  async scoreLead(leadId: string): Promise<{ leadId: string; score: number }> {
    this.queries++;
    await sleep(LATENCY_MS.score);
    let h = 0;
    for (const c of leadId) h = (h * 31 + c.charCodeAt(0)) % 1000;
    return { leadId, score: h / 10 };
  }
}
