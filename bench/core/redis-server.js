'use strict';
const { spawn } = require('node:child_process');
const net = require('node:net');

/** A free loopback port (never 6379: the OS picks one). */
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function canConnect(port) {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1' });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/**
 * The benchmark's own redis-server: persistence off so a flush between cases costs nothing and nothing
 * touches the disk. `stop()` is safe to call more than once.
 */
async function startRedis() {
  const port = await freePort();
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no'], {
    stdio: 'ignore',
  });
  let exited = false;
  const spawnError = new Promise((_, reject) => proc.once('error', (err) => reject(new Error(`cannot start redis-server: ${err.message}`))));
  spawnError.catch(() => undefined);
  proc.once('exit', () => (exited = true));
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (exited) throw new Error(`redis-server exited early on port ${port}`);
    const up = await Promise.race([canConnect(port), spawnError]);
    if (up) break;
    if (Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error(`redis-server did not start on port ${port} within 10s`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  const stop = () =>
    new Promise((resolve) => {
      if (exited) return resolve();
      proc.once('exit', () => resolve());
      proc.kill('SIGTERM');
      setTimeout(() => !exited && proc.kill('SIGKILL'), 2_000).unref();
    });
  return { port, url: `redis://127.0.0.1:${port}`, pid: proc.pid, stop, get running() { return !exited; } };
}

module.exports = { startRedis, freePort };
