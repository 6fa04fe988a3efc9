import { Injectable } from '@nestjs/common';
import { CACHE_WARMER_METADATA } from './warmup.constants';
import type { ResolvedWarmerOptions } from './warmer-options';

/** Reads what `@CacheWarmer` recorded on a class (validated when the decorator was applied). */
@Injectable()
export class WarmupMetadataAccessor {
  warmerOptions(type: unknown): ResolvedWarmerOptions | undefined {
    if (typeof type !== 'function') return undefined;
    // Own metadata only: a subclass of a warmer is not a second warmer of the same name unless marked itself.
    return Reflect.getOwnMetadata(CACHE_WARMER_METADATA, type) as ResolvedWarmerOptions | undefined;
  }
}
