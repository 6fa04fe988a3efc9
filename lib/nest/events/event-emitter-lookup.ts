import type { ModuleRef } from '@nestjs/core';

export type AnyEventListener = (event: string | string[], ...values: unknown[]) => unknown;

/** The part of EventEmitter2 the cache uses: its catch-all listener (invalidation) and emitAsync (ORM events). */
export interface EventEmitterLike {
  onAny(listener: AnyEventListener): unknown;
  offAny(listener: AnyEventListener): unknown;
  emitAsync(event: string, ...values: unknown[]): Promise<unknown[]>;
}

/**
 * EventEmitter2 from the app's EventEmitterModule, if the optional package is installed and the module imported.
 * Looked up by its class through DI (not imported statically) so that an app without @nestjs/event-emitter loads.
 */
export function findEventEmitter(moduleRef: ModuleRef): EventEmitterLike | undefined {
  let token: unknown;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    token = (require('@nestjs/event-emitter') as { EventEmitter2: unknown }).EventEmitter2;
  } catch {
    return undefined;
  }
  try {
    const emitter = moduleRef.get(token as new () => EventEmitterLike, { strict: false });
    return emitter && typeof emitter.onAny === 'function' && typeof emitter.emitAsync === 'function' ? emitter : undefined;
  } catch {
    return undefined;
  }
}
