// cluster-key-slot ships no types; it is ioredis' own slot function, so routed reads hash keys exactly as ioredis routes them.
declare module 'cluster-key-slot' {
  /** The Cluster slot (0–16383) of a key: CRC16 of its `{hash tag}` when it has one, else of the whole key. */
  function calculateSlot(key: string | Buffer): number;
  export = calculateSlot;
}
