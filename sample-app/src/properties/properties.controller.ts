import { Body, Controller, Get, Param, Put, Query, UseInterceptors } from '@nestjs/common';
import { Cacheable, TieredCacheInterceptor } from '../../../lib';
import type { Property } from '../database/property';
import { parsePropertyPatch } from './property-patch';
import { PropertyService } from './property.service';

@Controller('properties')
@UseInterceptors(TieredCacheInterceptor)
export class PropertiesController {
  constructor(private readonly properties: PropertyService) {}

  /** Per-tenant list: the tenant header is part of the response cache key. */
  @Get()
  @Cacheable({ keyPrefix: 'http:properties', ttl: '1m', vary: ['x-tenant-id'], tags: ['properties:list'] })
  list(@Query('tenantId') tenantId = 'acme'): Promise<Property[]> {
    return this.properties.list(tenantId);
  }

  /** The whole response is cached (X-Cache: HIT|MISS) and tagged, so property.updated evicts it too. */
  @Get(':id')
  @Cacheable({ keyPrefix: 'http:property', ttl: '1m', tags: ['property:{id}'] })
  findOne(@Param('id') id: string): Promise<Property> {
    return this.properties.findById(id);
  }

  /** No cache at all: the slow path, for comparison. */
  @Get(':id/uncached')
  findOneUncached(@Param('id') id: string): Promise<Property> {
    return this.properties.findByIdUncached(id);
  }

  /** Body: one or more of `{ "address": "…", "price": 260000, "state": "listed" | "under_offer" | "sold" }`. */
  @Put(':id')
  update(@Param('id') id: string, @Body() body: unknown): Promise<Property> {
    return this.properties.update(id, parsePropertyPatch(body));
  }
}
