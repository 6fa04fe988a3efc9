'use strict';
/**
 * Preloaded (`node --require`) into the sample app that bench/http.bench.js starts, over an IPC channel:
 * - the app exits as soon as the channel closes, so it never outlives the bench process, however that
 *   ends (even SIGKILL);
 * - `{ cpu: id }` answers with this process's `process.cpuUsage()` (µs), read between load runs.
 */
if (typeof process.send === 'function') {
  process.on('disconnect', () => process.exit(0));
  process.on('message', (m) => {
    if (m && m.cpu !== undefined) process.send({ cpu: m.cpu, usage: process.cpuUsage() });
  });
  // The channel alone must not keep the app alive (e.g. after Nest's own shutdown on SIGTERM).
  process.channel?.unref();
}
