import { PostgresTier } from '../../lib/core/tiers/postgres.tier';
import type { Tier } from '../../lib/core/tiers/tier';
import { describeTierContract } from '../contract/tier-contract';
import { PostgresServer } from '../support/postgres-server';

/** The PostgreSQL tier against the shared tier contract, on a server of its own (never the machine's 5432). */

const MAX_BYTES = 64 * 1024;
let server: PostgresServer;
let namespaces = 0;
const errors = new Map<Tier<string>, string[]>();

beforeAll(async () => {
  server = await PostgresServer.start();
}, 60_000);
afterAll(async () => {
  await server?.stop();
});

async function build(namespace: string): Promise<Tier<string>> {
  const seen: string[] = [];
  const tier = new PostgresTier({ url: server.url, namespace, commandTimeout: 2_000, maxBytes: MAX_BYTES, maintenanceInterval: 60_000 }, (op, err) => seen.push(`${op}: ${String(err)}`));
  errors.set(tier, seen);
  expect(await tier.connect()).toBe(true);
  return tier;
}

const namespaceOf = new Map<Tier<string>, string>();

describeTierContract<string>('PostgresTier', {
  create: async () => {
    const ns = `ns[${++namespaces}]*?%_`;
    const t = await build(ns);
    namespaceOf.set(t, ns);
    return t;
  },
  peer: async (t) => build(namespaceOf.get(t) as string),
  sample: (i) => `payload ${i} · ✓ ключ`,
  destroy: async (t) => {
    await t.close();
    expect(errors.get(t)).toEqual([]);
  },
  tagIndex: 'exact',
  afterClose: 'fails',
  maxBytes: MAX_BYTES,
});
