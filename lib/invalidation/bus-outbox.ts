import type { CacheChange } from '../engine/tiered-cache';

/**
 * Changes waiting to be published: coalesced (a key, pattern or tag is held once) and bounded. Past `max`
 * items everything collapses into one `clear`: receivers then drop their whole L1, which costs hit ratio
 * but never correctness — an invalidation is never silently lost.
 */
export class BusOutbox {
  private keys = new Set<string>();
  private patterns = new Set<string>();
  private tags = new Set<string>();
  private clear = false;
  collapsed = 0;

  constructor(private readonly max: number) {}

  get size(): number {
    return this.clear ? 1 : this.keys.size + this.patterns.size + this.tags.size;
  }

  add(change: CacheChange): void {
    if (this.clear) return;
    switch (change.type) {
      case 'delete':
      case 'overwrite':
        for (const k of change.keys) this.keys.add(k);
        break;
      case 'pattern':
        this.patterns.add(change.pattern);
        break;
      case 'tags':
        for (const t of change.tags) this.tags.add(t);
        break;
      case 'clear':
        this.setClear();
        return;
    }
    if (this.size > this.max) {
      this.collapsed++;
      this.setClear();
    }
  }

  /** Everything held, as the fewest changes (a receiver drops L1 entries the same way for delete and overwrite). */
  take(): CacheChange[] {
    const out: CacheChange[] = [];
    if (this.clear) out.push({ type: 'clear' });
    else {
      if (this.keys.size > 0) out.push({ type: 'delete', keys: [...this.keys] });
      for (const pattern of this.patterns) out.push({ type: 'pattern', pattern });
      if (this.tags.size > 0) out.push({ type: 'tags', tags: [...this.tags] });
    }
    this.keys = new Set();
    this.patterns = new Set();
    this.tags = new Set();
    this.clear = false;
    return out;
  }

  private setClear(): void {
    this.clear = true;
    this.keys.clear();
    this.patterns.clear();
    this.tags.clear();
  }
}
