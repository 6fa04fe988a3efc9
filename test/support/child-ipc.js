// The parent's side is EngineProcess (engine-process.ts): it sends `{ id, op, args }` and awaits the reply with
// that id. One loop for every child script, so the reply format lives in one place.
'use strict';

/** Answers the parent's calls with `ops[op](...args)`; the child exits when the parent goes away. */
function serveOps(ops) {
  process.on('message', async ({ id, op, args }) => {
    try {
      const value = await ops[op](...(args || []));
      process.send({ id, ok: true, value: value === undefined ? null : value, undef: value === undefined });
    } catch (err) {
      process.send({ id, ok: false, error: err instanceof Error ? `${err.name}: ${err.message}` : String(err) });
    }
  });
  process.on('disconnect', () => process.exit(0));
}

module.exports = { serveOps };
