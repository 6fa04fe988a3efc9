import { BadRequestException, Body, Controller, HttpCode, Post, UseGuards } from '@nestjs/common';
import { CacheManagerService } from '../../../lib';
import { AdminGuard } from './admin.guard';

/** Admin: invalidate by pattern or tags. Must be protected in production — see AdminGuard. */
@Controller('cache')
export class CacheInvalidateController {
  constructor(private readonly cache: CacheManagerService) {}

  /** Body: `{ "pattern": "property:*" }` or `{ "tags": ["property:1"] }`. Guarded: see AdminGuard. */
  @Post('invalidate')
  @HttpCode(200)
  @UseGuards(AdminGuard)
  async invalidate(@Body() body: { pattern?: unknown; tags?: unknown }) {
    if (typeof body?.pattern === 'string' && body.pattern.length > 0) {
      return { invalidated: await this.cache.invalidatePattern(body.pattern) };
    }
    if (Array.isArray(body?.tags) && body.tags.length > 0 && body.tags.every((t) => typeof t === 'string' && t.length > 0)) {
      return { invalidated: await this.cache.invalidateTags(body.tags as string[]) };
    }
    throw new BadRequestException('give a non-empty "pattern" string or a "tags" array of strings');
  }
}
