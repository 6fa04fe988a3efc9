'use strict';

/** Number of distinct keys the read and write cases cycle through. */
const KEYS = 1000;
const TTL_MS = 60_000;

/**
 * A ~200-byte (as JSON) object with its own strings, built fresh on every call so a heap measurement counts
 * the whole object and a freeze/clone benchmark never sees an object it has already processed.
 */
function makeValue(i) {
  return {
    id: i,
    name: `user-${i}`,
    email: `user.${i}@example.com`,
    active: (i & 1) === 0,
    score: i * 1.5,
    roles: ['reader', 'writer'],
    address: { city: `City ${i % 97}`, zip: String(10000 + (i % 89999)) },
    createdAt: '2024-05-01T12:00:00.000Z',
    note: `n${i}`.padEnd(8, '.'),
  };
}

/**
 * The same object as it arrives from a database driver or an HTTP body: parsed, so its strings are flat.
 * Template-literal strings start as cons-strings that shrink once something flattens them (JSON.stringify in
 * a cache's encoder does), which would make a cache that serializes look smaller than one that does not.
 */
function makeParsedValue(i) {
  return JSON.parse(JSON.stringify(makeValue(i)));
}

const keyOf = (i) => `item:${i}`;
const keys = Array.from({ length: KEYS }, (_, i) => keyOf(i));

module.exports = { KEYS, TTL_MS, makeValue, makeParsedValue, keyOf, keys };
