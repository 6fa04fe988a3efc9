import { Cluster, type Redis } from 'ioredis';
import { errorText } from '../tier-label';
import type { RedisClient } from './redis-connection';

/** Where a connection's errors go: `op` is 'connection' (a socket or handshake failed) or 'sentinel'. */
export type ConnectionErrorSink = (op: 'connection' | 'sentinel', err: unknown) => void;

/**
 * UNDOCUMENTED IOREDIS INTERNAL: a Sentinel client's connector opens connections to the Sentinels itself. Those
 * of its failover detector (`connectToSentinel(endpoint, options)`, called with options) get no 'error' listener
 * from ioredis, so a Sentinel that goes away makes ioredis print "[ioredis] Unhandled error event" to the
 * console. The ones it resolves the master with (called without options) get a no-op listener and report
 * through 'sentinelError' instead. Should a release rename or reshape this, nothing is wrapped.
 */
interface SentinelConnectorInternals {
  connectToSentinel?: (endpoint: { host?: string; port?: number }, options?: object) => Redis;
}

/**
 * Attaches our listeners to every error source of an ioredis client: its own 'error' event (without a listener
 * ioredis prints the error to the console), a Cluster's 'node error' (a node connection's failure, otherwise
 * dropped unseen), a Sentinel client's 'sentinelError' and its failover detector's Sentinel connections. For our
 * own connections and borrowed ones alike; returns what detaches them (a borrowed client goes back to the app
 * as it came: from then on its errors are the app's again).
 */
export function watchConnectionErrors(client: RedisClient, sink: ConnectionErrorSink): () => void {
  let live = true;
  const report = (op: 'connection' | 'sentinel', err: unknown): void => {
    if (live) sink(op, err);
  };
  const onError = (err: unknown): void => report('connection', err);
  client.on('error', onError);
  const off: Array<() => void> = [() => client.off('error', onError)];
  if (client instanceof Cluster) {
    const onNode = (err: unknown, node: unknown): void => report('connection', new Error(`node ${String(node)}: ${errorText(err)}`));
    client.on('node error', onNode);
    off.push(() => client.off('node error', onNode));
  } else if (client.options.sentinels) {
    const onSentinel = (err: unknown): void => report('sentinel', err);
    client.on('sentinelError', onSentinel);
    off.push(() => client.off('sentinelError', onSentinel));
    const connector = (client as unknown as { connector?: SentinelConnectorInternals }).connector;
    const original = connector?.connectToSentinel;
    if (connector && typeof original === 'function') {
      // The detector's connections also get the client's own disconnectTimeout (ours: see redis-connection.ts):
      // ioredis' 2 s default arms a timer that keeps a shutting-down process alive when a Sentinel is down.
      const linger = (client.options as { disconnectTimeout?: number }).disconnectTimeout;
      const wrapped: SentinelConnectorInternals['connectToSentinel'] = function (this: unknown, endpoint, options) {
        const sentinel = original.call(this, endpoint, options === undefined || linger === undefined ? options : { disconnectTimeout: linger, ...options });
        if (options !== undefined && sentinel && typeof sentinel.on === 'function') {
          const where = `${endpoint?.host ?? '127.0.0.1'}:${endpoint?.port ?? 26379}`;
          sentinel.on('error', (err: unknown) => report('sentinel', new Error(`failover detector connection to Sentinel ${where}: ${errorText(err)}`)));
        }
        return sentinel;
      };
      connector.connectToSentinel = wrapped;
      off.push(() => {
        if (connector.connectToSentinel === wrapped) connector.connectToSentinel = original;
      });
    }
  }
  return () => {
    live = false;
    for (const f of off) f();
  };
}
