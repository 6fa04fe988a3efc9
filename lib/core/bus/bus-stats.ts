export interface BusStats {
  enabled: boolean;
  /** The subscription is confirmed: this instance hears every change published from now on. */
  subscribed: boolean;
  instanceId: string;
  published: number;
  publishFailures: number;
  received: number;
  /** Own messages coming back on the channel (ignored). */
  echoes: number;
  /** Received messages dropped as malformed, oversized or of another format. */
  malformed: number;
  /** L1 entries dropped because of other instances' messages. */
  l1Dropped: number;
  /** Times L1 was emptied because the subscription had been lost (messages may have been missed). */
  l1ClearsOnReconnect: number;
  /**
   * How other instances' overwrites reach this one: 'redis' (server-assisted invalidation: CLIENT TRACKING,
   * nothing published per write), 'pubsub' (each overwrite published; tracking off, unsupported, or on a
   * Cluster), 'pending' (not known yet: overwrites are published until it is).
   */
  overwrites: 'redis' | 'pubsub' | 'pending' | 'off';
  /** Keys Redis announced as changed by other clients (tracking). */
  trackedKeys: number;
  /** Changes waiting to be (re)published. */
  retryQueue: number;
  /** Times the waiting changes overflowed `retryQueueSize` and were collapsed into one L1 clear. */
  retryOverflows: number;
}

/** `stats().bus` of an engine without a bus. */
export const DISABLED_BUS_STATS: BusStats = Object.freeze({
  enabled: false,
  subscribed: false,
  instanceId: '',
  overwrites: 'off',
  ...zeroCounts(),
  retryQueue: 0,
  retryOverflows: 0,
});

/** The bus's own counters, all zero: a new bus starts from these. */
export function zeroCounts() {
  return { published: 0, publishFailures: 0, received: 0, echoes: 0, malformed: 0, l1Dropped: 0, l1ClearsOnReconnect: 0, trackedKeys: 0 };
}
