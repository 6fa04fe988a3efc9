// Runs the compatibility projects: each is a fresh app on its own Nest major (its own package.json and lock)
// that installs the package exactly as a user gets it — the tarball `npm pack` makes of this checkout — and
// uses it through its public entry points only.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
if (!existsSync(join(root, 'dist', 'index.js'))) {
  console.error('dist/ is missing: run `npm run build` first (npm test does).');
  process.exit(1);
}

const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const run = (cwd, cmd, args, extra = {}) => spawnSync(cmd, args, { cwd, stdio: 'inherit', env: process.env, ...extra });

const packDir = mkdtempSync(join(tmpdir(), 'tiered-cache-pack-'));
let failed = false;
try {
  const pack = spawnSync(npm, ['pack', '--json', '--pack-destination', packDir], { cwd: root, encoding: 'utf8', env: process.env });
  if (pack.status !== 0) {
    console.error(pack.stderr);
    process.exit(pack.status ?? 1);
  }
  const [{ filename }] = JSON.parse(pack.stdout);
  const tarball = join(packDir, filename);
  console.log(`# compat: packed ${filename}`);

  for (const name of readdirSync(here, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name)) {
    const dir = join(here, name);
    if (!existsSync(join(dir, 'package.json'))) continue;
    if (!existsSync(join(dir, 'node_modules'))) {
      const install = run(dir, npm, existsSync(join(dir, 'package-lock.json')) ? ['ci', '--no-audit', '--no-fund'] : ['install', '--no-audit', '--no-fund']);
      if (install.status !== 0) process.exit(install.status ?? 1);
    }
    // The tarball, with its own dependencies from the registry; its optional peers come from the project.
    const add = run(dir, npm, ['install', '--no-save', '--no-audit', '--no-fund', '--no-package-lock', tarball]);
    if (add.status !== 0) process.exit(add.status ?? 1);
    console.log(`\n# compat: ${name}`);
    const tests = readdirSync(dir).filter((f) => /\.test\.(mjs|cjs)$/.test(f)).map((f) => join(dir, f));
    const r = run(dir, process.execPath, ['--test', '--test-reporter=spec', ...tests]);
    if (r.status !== 0) failed = true;
  }
} finally {
  rmSync(packDir, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
