import { spawn, type ChildProcess } from 'node:child_process';
import { utimesSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { freePort } from '../support/redis-server';
import { waitFor } from '../support/wait-for';

/**
 * `npm run sample` (scripts/sample.js) as a user runs it: through npm, L1 only (no REDIS_URL, no DATABASE_URL).
 * It compiles only when a source changed, and the signal npm receives ends the app: npm forwards it to its child,
 * which must be the app itself (not a shell left behind with the server still listening).
 */

const ROOT = join(__dirname, '..', '..');

interface Run {
  npm: ChildProcess;
  port: number;
  output(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const runs: Run[] = [];

async function npmRunSample(): Promise<Run> {
  const port = await freePort();
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(CACHE_|REDIS_|DATABASE_URL$|ADMIN_TOKEN$|PORT$|npm_)/.test(k)));
  const npm = spawn('npm', ['run', 'sample'], {
    cwd: ROOT,
    env: { ...env, PORT: String(port), NO_COLOR: '1', npm_config_update_notifier: 'false', npm_config_fund: 'false' },
    stdio: ['ignore', 'pipe', 'pipe'],
    // A process group of its own: the signals below go to npm alone, and groupIsGone() can tell whether anything
    // npm started outlived it.
    detached: true,
  });
  let out = '';
  const keep = (chunk: Buffer) => {
    out = (out + chunk.toString('utf8')).slice(-64 * 1024);
  };
  npm.stdout?.on('data', keep);
  npm.stderr?.on('data', keep);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => npm.once('exit', (code, signal) => resolve({ code, signal })));
  const run = { npm, port, output: () => out, exited };
  runs.push(run);
  return run;
}

async function answers(port: number): Promise<boolean> {
  try {
    return (await fetch(`http://127.0.0.1:${port}/ping`)).status === 200;
  } catch {
    return false;
  }
}

/** Whether this process can listen on `port` (no one else holds it). */
function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

async function untilServing(run: Run): Promise<void> {
  await waitFor(
    `npm run sample to answer on port ${run.port}`,
    async () => {
      if (run.npm.exitCode !== null) throw new Error(`npm run sample exited (${run.npm.exitCode}):\n${run.output()}`);
      return answers(run.port);
    },
    150_000,
  );
}

/** Whether every process of the run's group (npm, and whatever it started) has exited. */
function groupIsGone(run: Run): boolean {
  try {
    process.kill(-run.npm.pid!, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

/** npm's exit, or a failure naming what is still running after `ms`. */
async function exitOf(run: Run, ms = 20_000): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`npm run sample did not exit within ${ms} ms of the signal:\n${run.output()}`)), ms);
  });
  try {
    await Promise.race([run.exited, late]);
  } finally {
    clearTimeout(timer);
  }
}

const buildLine = (run: Run) => /^build: (compiled|up to date)$/m.exec(run.output())?.[0];

afterAll(async () => {
  // A failed test may leave a run going: its whole group (npm and the app) goes.
  for (const r of runs) {
    if (!groupIsGone(r)) process.kill(-r.npm.pid!, 'SIGKILL');
    await r.exited;
  }
});

describe('npm run sample', () => {
  it('compiles after a source changed, serves, and ends with its server on SIGTERM', async () => {
    const now = new Date();
    utimesSync(join(ROOT, 'sample-app', 'src', 'ping.controller.ts'), now, now);

    const run = await npmRunSample();
    await untilServing(run);
    expect(buildLine(run)).toBe('build: compiled');
    expect(run.output()).toContain(`Real-estate sample API on http://127.0.0.1:${run.port} — cache: L1 only`);

    run.npm.kill('SIGTERM');
    await exitOf(run);
    expect(await portIsFree(run.port)).toBe(true);
    expect(groupIsGone(run)).toBe(true);
  }, 200_000);

  it('does not compile again when nothing changed, and ends with its server on SIGINT', async () => {
    const run = await npmRunSample();
    await untilServing(run);
    expect(buildLine(run)).toBe('build: up to date');

    run.npm.kill('SIGINT');
    await exitOf(run);
    expect(await portIsFree(run.port)).toBe(true);
    expect(groupIsGone(run)).toBe(true);
  }, 200_000);
});
