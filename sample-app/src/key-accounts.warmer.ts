import type { Type } from '@nestjs/common';
// In your app: from 'nestjs-tiered-cache'.
import { CacheWarmer, type CacheWarmerHandler } from '../../lib';
import { PropertyService } from './properties/property.service';

/**
 * The caching strategy's warm-up of key accounts, daily at 2 AM (low traffic), and on demand with
 * `npm run sample:warm` (after an import, before a peak). The sample's customers are its tenants: acme is on the
 * enterprise plan, so all its listings are warmed; a high-value listing (priced from HIGH_VALUE_PRICE) is warmed
 * whoever's it is. One instance of a cluster sharing Redis runs each 2 AM tick (the warm-up's lease).
 */
export const TENANTS = ['acme', 'globex'];
export const ENTERPRISE_TENANTS = new Set(['acme']);
export const HIGH_VALUE_PRICE = 275_000;

/** The key accounts' property ids, tenant by tenant (each list read through its own cached method). */
async function* keyAccountIds(properties: PropertyService): AsyncGenerator<string> {
  for (const tenant of TENANTS) {
    for (const p of await properties.list(tenant)) {
      if (ENTERPRISE_TENANTS.has(tenant) || p.price >= HIGH_VALUE_PRICE) yield p.id;
    }
  }
}

/** Property details, through PropertyService.findById: its key (property:detail:{id}), TTL and tags. */
@CacheWarmer({ name: 'key-accounts', target: PropertyService, method: 'findById', cron: '0 2 * * *' })
export class KeyAccountsWarmer implements CacheWarmerHandler<string> {
  constructor(private readonly properties: PropertyService) {}

  keys(): AsyncIterable<string> {
    return keyAccountIds(this.properties);
  }
}

/** The cached responses of GET /properties/:id for the same ids (requested through the app's own HTTP server). */
@CacheWarmer({ name: 'key-account-pages', http: true, cron: '0 2 * * *', concurrency: 4 })
export class KeyAccountPagesWarmer implements CacheWarmerHandler<string> {
  constructor(private readonly properties: PropertyService) {}

  keys(): AsyncIterable<string> {
    return keyAccountIds(this.properties);
  }

  path(id: string): string {
    return `/properties/${encodeURIComponent(id)}`;
  }
}

export const SAMPLE_WARMERS: Array<Type<unknown>> = [KeyAccountsWarmer, KeyAccountPagesWarmer];
