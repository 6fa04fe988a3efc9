import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { idsFromFile } from '../../lib/cli/id-source';
import { redisFixture } from '../support/redis-fixture';
import { waitFor } from '../support/wait-for';

const ROOT = join(__dirname, '..', '..');
const CLI = join(ROOT, 'dist', 'cli', 'main.js');
const APP = join(ROOT, 'test', 'support', 'warm-cli-app.js');

interface Ran {
  code: number | null;
  out: string;
  err: string;
}

/** The CLI as a child process, its stdout and stderr pipes (no TTY). `during` runs once it has started. */
function cli(args: string[], env: Record<string, string>, during?: (child: ReturnType<typeof spawn>, err: () => string) => void): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out, err }));
    during?.(child, () => err);
  });
}

/** The CLI on a pseudo-terminal (util-linux `script`): what a user at a terminal sees, stdout and stderr together. */
function onTerminal(args: string[], env: Record<string, string>): Promise<{ code: number | null; screen: string }> {
  const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  const command = [process.execPath, CLI, ...args].map(quote).join(' ');
  return new Promise((resolve, reject) => {
    const child = spawn('script', ['-qfec', command, '/dev/null'], { cwd: ROOT, env: { ...process.env, ...env, COLUMNS: '120' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let screen = '';
    child.stdout.on('data', (d) => (screen += d));
    child.stderr.on('data', (d) => (screen += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, screen }));
  });
}

describe('nestjs-tiered-cache warm (the CLI)', () => {
  const fx = redisFixture();
  let prefix = '';
  let dir = '';
  const env = (): Record<string, string> => ({ REDIS_URL: fx.redis.url, KEY_PREFIX: prefix });
  const base = (...rest: string[]) => ['warm', '--app', APP, ...rest];

  beforeAll(() => {
    if (!existsSync(CLI) || statSync(CLI).mtimeMs < statSync(join(ROOT, 'lib', 'cli', 'warm-command.ts')).mtimeMs) {
      throw new Error('dist/cli is missing or older than lib/cli: run `npm run build` before this spec');
    }
    dir = mkdtempSync(join(tmpdir(), 'warm-cli-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  beforeEach(() => {
    prefix = `cli${Math.random().toString(36).slice(2, 8)}:`;
  });

  describe('without a terminal: plain lines and exit codes', () => {
    it('warms the --ids given, prints plain progress and a summary, and exits 0', async () => {
      const r = await cli(base('--warmer', 'items', '--ids', '1,2,3'), env());
      expect(r.code).toBe(0);
      expect(r.out).toMatch(/^warmed "items": 3 ok, 0 failed, 0 skipped in \d+\.\d s, \d+ keys\/s\n$/);
      expect(r.err).toContain('warming "items" from 3 ids from --ids (mode refresh, concurrency 4)\n');
      expect(r.err).toMatch(/^items: 3\/3 keys \(100%\), 3 ok, 0 failed, 0 skipped, \d+ keys\/s$/m);
      // No escape sequences: nothing meant for a terminal.
      expect(r.err).not.toContain('\u001b[');
      expect(await fx.raw.get(`${prefix}item:2`)).toContain('"id":"2"');
      expect(await fx.raw.pttl(`${prefix}item:2`)).toBeGreaterThan(59 * 60_000);
    });

    it("warms the warmer's keys() without ids", async () => {
      const r = await cli(base('--warmer', 'items', '--concurrency', '2'), { ...env(), WARM_KEYS: '25' });
      expect(r.code).toBe(0);
      expect(r.out).toContain('warmed "items": 25 ok, 0 failed, 0 skipped');
      expect(r.err).toContain(`warming "items" from the warmer's keys() (mode refresh, concurrency 2)`);
      expect(await fx.raw.exists(`${prefix}item:25`)).toBe(1);
    });

    it('exits 1 when some keys failed, naming them, after warming the others', async () => {
      const r = await cli(base('--warmer', 'items', '--ids', '1 bad2 3'), env());
      expect(r.code).toBe(1);
      expect(r.err).toContain('  id bad2 failed: no item bad2\n');
      expect(r.out).toContain('warmed "items": 2 ok, 1 failed, 0 skipped');
      expect(await fx.raw.exists(`${prefix}item:1`, `${prefix}item:3`)).toBe(2);
    });

    it('streams the ids of --file (comments, blank lines and commas handled)', async () => {
      const file = join(dir, 'ids.txt');
      const lines = ['# the enterprise customers', '', ...Array.from({ length: 5_000 }, (_, i) => String(i + 1)), '5001, 5002', '   '];
      writeFileSync(file, lines.join('\n') + '\n');
      const r = await cli(base('--warmer', 'items', '--file', file, '--json'), env());
      expect(r.code).toBe(0);
      const result = JSON.parse(r.out);
      expect(result).toMatchObject({ warmer: 'items', trigger: 'manual', status: 'completed', keys: { ok: 5_002, failed: 0, skipped: 0 } });
      expect(r.err).toMatch(/^items: 5002 keys \(100% of the file\), 5002 ok/m);
      expect(await fx.raw.exists(`${prefix}item:1`, `${prefix}item:5000`, `${prefix}item:5002`)).toBe(3);
    });

    it('warms GET routes with --http (the app listens on a loopback port meanwhile), and says to pass it when missing', async () => {
      const without = await cli(base('--warmer', 'pages'), env());
      expect(without.code).toBe(2);
      expect(without.err).toContain(`warmer "pages" requests this app's own HTTP routes: run it with --http`);
      const r = await cli(base('--warmer', 'pages', '--http'), env());
      expect(r.code).toBe(0);
      expect(r.out).toContain('warmed "pages": 2 ok, 0 failed, 0 skipped');
      const keys: string[] = [];
      let cursor = '0';
      do {
        const [next, page] = await fx.raw.scan(cursor, 'MATCH', `${prefix}http:item:*`, 'COUNT', 1000);
        keys.push(...page);
        cursor = next;
      } while (cursor !== '0');
      // The interceptor's own keys: <keyPrefix>:~r<the path, escaped>.
      expect(keys.sort()).toEqual([`${prefix}http:item:~r%2Fitems%2F1`, `${prefix}http:item:~r%2Fitems%2F2`]);
    });

    it('exits 3 when --exclusive finds the lease held by another instance', async () => {
      await fx.raw.set(`${prefix}__tc:warm:{items}`, 'another-instance', 'PX', 60_000);
      const r = await cli(base('--warmer', 'items', '--exclusive'), env());
      expect(r.code).toBe(3);
      expect(r.out).toBe('warm-up "items" not run: another instance holds the lease and runs it\n');
      expect(await fx.raw.exists(`${prefix}item:1`)).toBe(0);
    });

    it('exits 130 on SIGINT: the run is cancelled and the app closed', async () => {
      const r = await cli(base('--warmer', 'items', '--ids', 'slow1,2'), env(), (child, err) => {
        void waitFor('the slow key is loading', () => err().includes('loading slow1'), 20_000).then(() => child.kill('SIGINT'));
      });
      expect(r.code).toBe(130);
      expect(r.out).toMatch(/^warm-up "items" cancelled \(interrupted \(SIGINT\)\): \d ok, 0 failed, 0 skipped/);
    });

    it('exits 2 on a usage error or a boot error, saying what is wrong', async () => {
      const noApp = await cli(['warm', '--warmer', 'items'], env());
      expect(noApp.code).toBe(2);
      expect(noApp.err).toContain('--app is required');
      expect(noApp.err).toContain('Usage: nestjs-tiered-cache warm');
      const missing = await cli(['warm', '--app', 'dist/nope.module.js', '--warmer', 'items'], env());
      expect(missing.code).toBe(2);
      expect(missing.err).toContain('--app dist/nope.module.js: no such file');
      const both = await cli(base('--warmer', 'items', '--ids', '1', '--file', 'x.txt'), env());
      expect(both.code).toBe(2);
      expect(both.err).toContain('give --ids or --file, not both');
      const noFile = await cli(base('--warmer', 'items', '--file', join(dir, 'absent.txt')), env());
      expect(noFile.code).toBe(2);
      expect(noFile.err).toContain('ENOENT');
      const unknown = await cli(base('--warmer', 'nope'), env());
      expect(unknown.code).toBe(2);
      expect(unknown.err).toContain('the app has no warmer named "nope"; its warmers: items, pages');
      const boot = await cli(base('--warmer', 'items'), { ...env(), WARM_BOOT_FAIL: '1' });
      expect(boot.code).toBe(2);
      expect(boot.err).toContain('the app failed to boot');
      expect(boot.err).toContain('l1.maxEntries');
      const badExport = await cli(base('--warmer', 'items', '--export', 'Nope'), env());
      expect(badExport.code).toBe(2);
      expect(badExport.err).toContain('exports no Nope (it exports AppModule)');
    });
  });

  describe('on a terminal: the progress bar', () => {
    it('draws a cli-progress bar of the --ids', async () => {
      const r = await onTerminal(base('--warmer', 'items', '--ids', '1,2,bad3,4'), env());
      expect(r.code).toBe(1);
      // cli-progress: the cursor hidden, the line redrawn in place, the bar full at the end.
      expect(r.screen).toContain('\u001b[?25l');
      expect(r.screen).toMatch(/items \[=+\] 100% 4\/4 \| ok 3 failed 1 skipped 0 \| \d+\/s/);
      expect(r.screen).toContain('id bad3 failed: no item bad3');
      expect(r.screen).toContain('warmed "items": 3 ok, 1 failed, 0 skipped');
    });

    it('measures a --file against its size, and counts the keys of a keys() run', async () => {
      const file = join(dir, 'tty-ids.txt');
      writeFileSync(file, Array.from({ length: 300 }, (_, i) => String(i + 1)).join('\n'));
      const r = await onTerminal(base('--warmer', 'items', '--file', file), env());
      expect(r.code).toBe(0);
      expect(r.screen).toMatch(/items \[=+\] 100% of file, 300 keys \| ok 300 failed 0 skipped 0/);
      const keys = await onTerminal(base('--warmer', 'items'), env());
      expect(keys.code).toBe(0);
      expect(keys.screen).toMatch(/items 3 keys \| ok 3 failed 0 skipped 0/);
    });
  });

  describe('--file is read as the run asks for ids', () => {
    it('has read only a small part of a large file while the consumer waits', async () => {
      const file = join(dir, 'large.txt');
      writeFileSync(file, Array.from({ length: 1_000_000 }, (_, i) => `customer-${i}`).join('\n'));
      const size = statSync(file).size;
      const source = idsFromFile(file);
      const it = source.ids[Symbol.asyncIterator]();
      expect((await it.next()).value).toBe('customer-0');
      expect((await it.next()).value).toBe('customer-1');
      // Let the stream read all it would read ahead, with nobody taking lines.
      for (let i = 0; i < 50; i++) await new Promise((r) => setImmediate(r));
      expect(source.bytesRead()).toBeLessThan(size / 10);
      await it.return?.(undefined);
    });
  });
});
