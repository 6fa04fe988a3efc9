import type { CacheChange } from '../cache-change';

/**
 * What the invalidation bus needs from the engine, and nothing more: the bus depends on this, not on the
 * engine class, so neither imports the other.
 */
export interface BusHost {
  /** Namespace of the channel and of tracked keys. */
  readonly keyPrefix: string;
  /** How log messages name the Redis tier the bus runs on (tier-label.ts). */
  readonly tierLabel: string;
  /** Without L1 there is nothing local to drop: the bus only publishes. */
  readonly hasL1: boolean;
  /** Local changes, to be published. */
  onChange(listener: (change: CacheChange) => void): () => void;
  /** Another instance's change: drop what it covers locally (L1, queued writes), counted as a bus invalidation. */
  dropLocal(change: Exclude<CacheChange, { type: 'pattern' }>): number;
  dropLocal(change: CacheChange): number | Promise<number>;
  /** The L1 part of a change, not counted (the L1 clear on (re)subscribe). */
  dropL1(change: CacheChange): number | Promise<number>;
  /** False while this instance may have missed other instances' changes. */
  setL1Trusted(trusted: boolean): void;
  log(level: 'warn' | 'error', kind: string, message: string): void;
}
