import { Controller, Get } from '@nestjs/common';
import { CacheManagerService } from '../../../lib';
import { toCacheStatsDto, type CacheStatsDto } from './cache-stats.dto';

@Controller('cache')
export class CacheStatsController {
  constructor(private readonly cache: CacheManagerService) {}

  @Get('stats')
  stats(): CacheStatsDto {
    return toCacheStatsDto(this.cache.stats());
  }
}
