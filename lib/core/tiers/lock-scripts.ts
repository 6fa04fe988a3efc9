import { createHash } from 'node:crypto';

/**
 * The Lua side of the fill lock (get-set/distributed-lock.ts). Every script names a lock and its waiter flag,
 * two keys that share a Cluster slot (the lock key carries the data key's hash tag, the flag is the lock key
 * with a suffix). The lock holds its holder's token: only the holder extends or releases it, and a holder
 * that died is replaced once the lock's PX runs out.
 *
 * The waiter flag exists so that a fill nobody waits for costs no PUBLISH: an instance that finds the lock
 * taken raises it in the same script call (atomically with the failed SET NX, so a release can never fall
 * between "lock seen taken" and "flag raised"), and the release announces itself only when it finds a flag.
 */

/**
 * A fill read that also takes the lock when the key is missing (standalone/Sentinel: the generation is in the
 * same keyspace). KEYS = key, fence, generation, lock, waiter flag; ARGV = token, lock PX, 1 to read the PTTL.
 * Replies {1, value, pttl, fence, generation} on a hit, {0, fence, generation, 1 | 0 (lock taken or not)} on a
 * miss. One script call replaces the MGET + PTTL of a plain fill read, so taking the lock costs no round trip and
 * no command of its own, and a hit takes no lock it would have to give back.
 */
export const READ_OR_LOCK = `local r = redis.call('MGET', KEYS[1], KEYS[2], KEYS[3])
local f = r[2] or ''
local g = r[3] or ''
if r[1] then
  if ARGV[3] == '1' then return {1, r[1], redis.call('PTTL', KEYS[1]), f, g} end
  return {1, r[1], -1, f, g}
end
if redis.call('SET', KEYS[4], ARGV[1], 'NX', 'PX', ARGV[2]) then return {0, f, g, 1} end
local t = redis.call('PTTL', KEYS[4])
if t > 0 then redis.call('SET', KEYS[5], '1', 'PX', t) end
return {0, f, g, 0}`;
export const READ_OR_LOCK_SHA = createHash('sha1').update(READ_OR_LOCK).digest('hex');

/** Takes the lock, or raises the waiter flag for as long as the lock lives. KEYS = lock, flag; ARGV = token, PX. */
export const LOCK_ACQUIRE = `if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
local t = redis.call('PTTL', KEYS[1])
if t > 0 then redis.call('SET', KEYS[2], '1', 'PX', t) end
return 0`;

/** The holder's lock (and its waiters' flag) lives another PX. KEYS = lock, flag; ARGV = token, PX. */
export const LOCK_EXTEND = `if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return 1`;

/**
 * Gives the lock up if it is still the holder's, and announces it on `channel` (message `message`) when someone
 * raised the flag. A lock that expired and was taken by another holder is left alone, flag included: that flag
 * belongs to the new holder's waiters. Lua text over the given expressions; `released` is true when it let go.
 */
export const releaseLock = (lock: string, flag: string, token: string, channel: string, message: string): string => `local released = redis.call('GET', ${lock}) == ${token}
if released then
  redis.call('DEL', ${lock})
  if redis.call('DEL', ${flag}) == 1 then redis.call('PUBLISH', ${channel}, ${message}) end
end`;

/** KEYS = lock, flag; ARGV = token, channel, message. 1 when released. */
export const LOCK_RELEASE = `${releaseLock('KEYS[1]', 'KEYS[2]', 'ARGV[1]', 'ARGV[2]', 'ARGV[3]')}
if released then return 1 end
return 0`;
