import { Controller, Get } from '@nestjs/common';
import type { Property } from './database/property';

const PONG = { ok: true } as const;
/** The same body as `GET /properties/1` (same fields, a Date to serialize, same size). */
const PROPERTY: Property = {
  id: '1',
  tenantId: 'globex',
  address: '1 Market Street',
  price: 251_000,
  state: 'listed',
  updatedAt: new Date(Date.UTC(2026, 0, 1)),
};

/**
 * Benchmark baselines (bench/http.bench.js), not part of the demo. Same Nest/Express pipeline as the
 * other routes, but no interceptor, no cache, no work: constant bodies.
 * - `GET /ping`: the trivial route; the load bench reports the cached `GET /properties/:id` as a ratio of it.
 * - `GET /ping/property`: the cached route's body without the cache, so the bench can tell the cache
 *   layer's cost from the cost of sending a bigger body.
 */
@Controller('ping')
export class PingController {
  @Get()
  ping(): typeof PONG {
    return PONG;
  }

  @Get('property')
  property(): Property {
    return PROPERTY;
  }
}
