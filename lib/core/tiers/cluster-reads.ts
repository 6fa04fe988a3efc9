import calculateSlot from 'cluster-key-slot';
import type { Cluster, Redis } from 'ioredis';

/** What the tier keeps per node a read was routed to, and how to let go of it when the node leaves the pool. */
export interface RoutedNode<N> {
  readonly node: N;
  readonly dispose: () => void;
}

/**
 * UNDOCUMENTED IOREDIS INTERNAL: the Cluster client's slot table, `slots[slot][0]` being the node key
 * ("host:port") of the master that serves the slot (what Cluster#sendCommand routes to with scaleReads
 * 'master'; a MOVED reply rewrites that entry, a slot refresh the whole table). It is declared in the .d.ts
 * but not documented. Every access goes through here and is checked: should a release drop or reshape it,
 * this answers undefined and reads go through the Cluster client as before.
 */
function ioredisSlotMaster(cluster: Cluster, slot: number): string | undefined {
  const table: unknown = (cluster as { slots?: unknown }).slots;
  if (!Array.isArray(table)) return undefined;
  const owners: unknown = table[slot];
  return Array.isArray(owners) && typeof owners[0] === 'string' ? owners[0] : undefined;
}

/** The key ioredis' connection pool files a node's client under (cluster/util.js getNodeKey). */
function nodeKeyOf(client: Redis): string {
  return `${client.options.host ?? '127.0.0.1'}:${client.options.port ?? 6379}`;
}

/**
 * Reads on a Cluster, routed by us instead of by the Cluster client: a key's slot, the master the client's
 * own slot table names for it, and that master's connection from the client's own pool (the same socket
 * the Cluster client writes to, so a read sent after a write or delete of its key still lands after it).
 * The tier then writes the read straight to that socket, corked with the rest of the tick, instead of one
 * socket write per command through Cluster#sendCommand.
 *
 * `nodeFor` answers undefined whenever it cannot be sure (no slot table yet, the master's client absent or
 * not ready, a connection ioredis flagged read-only); the caller then goes through the Cluster client, which
 * also does what a MOVED/ASK reply calls for (and refreshes its slot table).
 *
 * Nodes are adopted on first use and let go when they leave the pool, so what the tier watches per node
 * (its queue of unanswered commands, for the deadline sweep) stays bounded by the nodes serving slots.
 */
export class ClusterReads<N> {
  /** Every node client of the pool, by node key (kept from the Cluster client's public +node/-node events). */
  private readonly clients = new Map<string, Redis>();
  private readonly adopted = new Map<string, RoutedNode<N> & { client: Redis }>();
  /** Keys are hashed as the Cluster client sends them: with its keyPrefix. */
  private readonly keyPrefix: string;

  constructor(
    private readonly cluster: Cluster,
    private readonly adopt: (client: Redis) => RoutedNode<N>,
  ) {
    this.keyPrefix = cluster.options.keyPrefix ?? '';
    for (const c of cluster.nodes('all')) this.added(c);
    cluster.on('+node', this.added);
    cluster.on('-node', this.removed);
  }

  /** The master connection serving `pkey`'s slot, ready to take a command now; undefined: use the Cluster client. */
  nodeFor(pkey: string): N | undefined {
    const key = ioredisSlotMaster(this.cluster, calculateSlot(this.keyPrefix ? this.keyPrefix + pkey : pkey));
    if (key === undefined) return undefined;
    let routed = this.adopted.get(key);
    if (routed === undefined) {
      const client = this.clients.get(key);
      if (client === undefined) return undefined;
      routed = { ...this.adopt(client), client };
      this.adopted.set(key, routed);
    }
    const c = routed.client;
    // A pool connection in read-only mode is a replica's (READONLY sent): it could answer with a stale value.
    return c.status === 'ready' && !c.options.readOnly ? routed.node : undefined;
  }

  close(): void {
    this.cluster.off('+node', this.added);
    this.cluster.off('-node', this.removed);
    for (const r of this.adopted.values()) r.dispose();
    this.adopted.clear();
    this.clients.clear();
  }

  private readonly added = (client: Redis): void => {
    const key = nodeKeyOf(client);
    const was = this.clients.get(key);
    this.clients.set(key, client);
    // The pool replaced the node's connection (it emits +node for the new one before -node for the old).
    if (was !== undefined && was !== client) this.letGo(key, was);
  };

  private readonly removed = (client: Redis): void => {
    const key = nodeKeyOf(client);
    if (this.clients.get(key) === client) this.clients.delete(key);
    this.letGo(key, client);
  };

  private letGo(key: string, client: Redis): void {
    const routed = this.adopted.get(key);
    if (routed === undefined || routed.client !== client) return;
    this.adopted.delete(key);
    routed.dispose();
  }
}
