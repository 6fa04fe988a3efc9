import type { Redis } from 'ioredis';
import type { TieredCache } from '../../lib';
import { waitFor } from './wait-for';

/** Reads twice so the value sits in `c`'s L1, and proves it by the L1 hit counter. */
export async function warm(c: TieredCache, key: string, expected: unknown): Promise<void> {
  expect(await c.get(key)).toEqual(expected);
  const hits = c.stats().l1.hits;
  expect(await c.get(key)).toEqual(expected);
  expect(c.stats().l1.hits).toBe(hits + 1);
}

/**
 * Publishes a no-op bus message on `channel` and waits until `b` has applied it. Whatever Redis sent `b`'s
 * subscriber before (tracking notices of writes already answered, bus messages already published) arrives
 * ahead of it on the same connection, so it has been applied too.
 */
export async function heardMarker(publisher: Redis, channel: string, b: TieredCache): Promise<void> {
  const before = b.stats().bus.received;
  const marker = JSON.stringify({ v: 1, src: 'test-marker', change: { type: 'delete', keys: ['-marker-'] } });
  await publisher.publish(channel, marker);
  // Pub/sub delivers at most once: a subscriber that re-subscribes just then (as after a failover, when ioredis
  // moves it once more) misses the marker, and clears its L1 for that very reason. Sent again now and then, the
  // marker still only proves what it proved: what reached this subscription before it has been applied.
  let polls = 0;
  await waitFor('B applied the marker', async () => {
    if (b.stats().bus.received > before) return true;
    if (++polls % 100 === 0) await publisher.publish(channel, marker);
    return false;
  });
}
