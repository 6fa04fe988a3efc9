import type { Cluster, Redis } from 'ioredis';
import type { RedisTier } from '../../core/tiers/redis.tier';

/** Redis Cluster hash slots: all of them must be served for every key to be reachable. */
export const CLUSTER_SLOTS = 16_384;

export interface ClusterProbe {
  /** `cluster_state` from CLUSTER INFO ('ok' or 'fail'). */
  state: string;
  /** Nodes the cluster itself sees as connected and not failing (CLUSTER NODES). */
  nodesHealthy: number;
  nodesTotal: number;
  /** `cluster_slots_ok`: slots served by a node that is not failing. */
  slotsOk: number;
  allSlotsCovered: boolean;
}

export interface RedisProbe {
  reachable: boolean;
  /** PING round trip. */
  pingMs?: number;
  /** `used_memory` (summed over the masters of a Cluster). */
  usedMemory?: number;
  /** `connected_clients` (summed over the masters of a Cluster). */
  connectedClients?: number;
  cluster?: ClusterProbe;
  error?: string;
}

/**
 * Asks Redis how it is, on the cache's own data connection, settling within `timeoutMs` whatever Redis
 * does (a hung server keeps its commands pending; they are abandoned here and end with the socket).
 * Never throws.
 */
export async function probeRedis(l2: RedisTier, timeoutMs: number): Promise<RedisProbe> {
  const client = l2.client;
  if (client.status !== 'ready') return { reachable: false, error: `connection is ${client.status}` };
  const r = await withTimeout(l2.mode === 'cluster' ? probeClusterClient(client as Cluster) : probeOne(client as Redis), timeoutMs);
  if (r.ok) return r.value;
  return { reachable: false, error: r.error };
}

/** CLUSTER INFO + CLUSTER NODES only (what the metrics scrape needs), bounded by `timeoutMs`. */
export async function probeClusterHealth(cluster: Cluster, timeoutMs: number): Promise<ClusterProbe | undefined> {
  if (cluster.status !== 'ready') return undefined;
  const r = await withTimeout(clusterState(cluster), timeoutMs);
  return r.ok ? r.value : undefined;
}

async function probeOne(client: Redis): Promise<RedisProbe> {
  const t0 = performance.now();
  await client.ping();
  const pingMs = round(performance.now() - t0);
  const [memory, clients] = await Promise.all([client.info('memory'), client.info('clients')]);
  return {
    reachable: true,
    pingMs,
    usedMemory: infoNumber(memory, 'used_memory'),
    connectedClients: infoNumber(clients, 'connected_clients'),
  };
}

async function probeClusterClient(cluster: Cluster): Promise<RedisProbe> {
  // PING a master that is up: Cluster#ping picks any node, a dead one included.
  const pinged = cluster.nodes('master').find((n) => n.status === 'ready');
  const t0 = performance.now();
  await (pinged ?? cluster).ping();
  const pingMs = round(performance.now() - t0);
  const masters = cluster.nodes('master');
  // A dead master (still in ioredis' list until its next slot refresh) must not make the reachable ones look
  // unreachable: its INFO is left out of the sums, and the cluster state below says what is missing.
  const [state, infos] = await Promise.all([
    clusterState(cluster),
    Promise.allSettled(masters.map((n) => Promise.all([n.info('memory'), n.info('clients')]))),
  ]);
  let usedMemory = 0;
  let connectedClients = 0;
  for (const r of infos) {
    if (r.status !== 'fulfilled') continue;
    const [memory, clients] = r.value;
    usedMemory += infoNumber(memory, 'used_memory') ?? 0;
    connectedClients += infoNumber(clients, 'connected_clients') ?? 0;
  }
  return { reachable: true, pingMs, usedMemory, connectedClients, cluster: state };
}

async function clusterState(cluster: Cluster): Promise<ClusterProbe> {
  // Both answers come from one node, so they describe the same view of the cluster.
  const node = cluster.nodes('master').find((n) => n.status === 'ready') ?? cluster.nodes('all')[0];
  const [info, nodes] = await Promise.all([
    node.call('CLUSTER', 'INFO') as Promise<string>,
    node.call('CLUSTER', 'NODES') as Promise<string>,
  ]);
  let nodesTotal = 0;
  let nodesHealthy = 0;
  for (const line of String(nodes).split('\n')) {
    const f = line.trim().split(' ');
    if (f.length < 8) continue;
    nodesTotal++;
    const flags = f[2];
    if (f[7] === 'connected' && !/fail|noaddr|handshake/.test(flags)) nodesHealthy++;
  }
  const slotsOk = infoNumber(String(info), 'cluster_slots_ok') ?? 0;
  return {
    state: infoString(String(info), 'cluster_state') ?? 'unknown',
    nodesHealthy,
    nodesTotal,
    slotsOk,
    allSlotsCovered: slotsOk === CLUSTER_SLOTS,
  };
}

type Outcome<T> = { ok: true; value: T } | { ok: false; error: string };

function withTimeout<T>(p: Promise<T>, timeoutMs: number): Promise<Outcome<T>> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve({ ok: false, error: `no answer within ${timeoutMs}ms` }), timeoutMs);
    p.then(
      (value) => {
        clearTimeout(timer);
        resolve({ ok: true, value });
      },
      (err: unknown) => {
        clearTimeout(timer);
        resolve({ ok: false, error: err instanceof Error ? err.message : String(err) });
      },
    );
  });
}

function infoString(info: string, field: string): string | undefined {
  const m = new RegExp(`^${field}:(.*)$`, 'm').exec(info);
  return m ? m[1].trim() : undefined;
}

function infoNumber(info: string, field: string): number | undefined {
  const s = infoString(info, field);
  const n = s === undefined ? NaN : Number(s);
  return Number.isFinite(n) ? n : undefined;
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
