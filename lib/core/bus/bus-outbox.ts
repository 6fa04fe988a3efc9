import type { CacheChange } from '../cache-change';

/** Why a key is dropped, weakest first: receivers count deletes as invalidations, the other two not. */
const WRITTEN = 0;
const BY_TAG = 1;
const DELETED = 2;
type KeyDrop = typeof WRITTEN | typeof BY_TAG | typeof DELETED;

/**
 * Changes waiting to be published: coalesced (a key, pattern or tag is held once) and bounded. Past `max`
 * items everything collapses into one `clear`: receivers then drop their whole L1, which costs hit ratio
 * but never correctness — an invalidation is never silently lost.
 */
export class BusOutbox {
  /** Each key once, with the strongest reason it was dropped for (a key written then deleted is a delete). */
  private keys = new Map<string, KeyDrop>();
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
      case 'overwrite': {
        const why: KeyDrop = change.type === 'overwrite' ? WRITTEN : change.byTag ? BY_TAG : DELETED;
        for (const k of change.keys) if ((this.keys.get(k) ?? -1) < why) this.keys.set(k, why);
        break;
      }
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

  /**
   * Everything held, as the fewest changes. Receivers drop L1 entries the same way for all three kinds of key
   * change, but count only plain deletes as invalidations, so the kinds travel apart.
   */
  take(): CacheChange[] {
    const out: CacheChange[] = [];
    if (this.clear) out.push({ type: 'clear' });
    else {
      const byWhy: [string[], string[], string[]] = [[], [], []];
      for (const [k, why] of this.keys) byWhy[why].push(k);
      if (byWhy[DELETED].length > 0) out.push({ type: 'delete', keys: byWhy[DELETED] });
      if (byWhy[BY_TAG].length > 0) out.push({ type: 'delete', keys: byWhy[BY_TAG], byTag: true });
      if (byWhy[WRITTEN].length > 0) out.push({ type: 'overwrite', keys: byWhy[WRITTEN] });
      for (const pattern of this.patterns) out.push({ type: 'pattern', pattern });
      if (this.tags.size > 0) out.push({ type: 'tags', tags: [...this.tags] });
    }
    this.keys = new Map();
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
