// Runs the compatibility projects: the built package (dist/, CommonJS) loaded by apps on the Nest major
// that the main Jest suite does not use. Each project pins its own Nest in its own package.json.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
if (!existsSync(join(root, 'dist', 'index.js'))) {
  console.error('dist/ is missing: run `npm run build` first (npm test does).');
  process.exit(1);
}

let failed = false;
for (const name of readdirSync(here, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name)) {
  const dir = join(here, name);
  if (!existsSync(join(dir, 'package.json'))) continue;
  const run = (cmd, args) => spawnSync(cmd, args, { cwd: dir, stdio: 'inherit', env: process.env });
  if (!existsSync(join(dir, 'node_modules'))) {
    const install = run('npm', existsSync(join(dir, 'package-lock.json')) ? ['ci', '--no-audit', '--no-fund'] : ['install', '--no-audit', '--no-fund']);
    if (install.status !== 0) process.exit(install.status ?? 1);
  }
  // Install the package as a user would get it: dist/ plus package.json, resolving its peers from this project.
  const target = join(dir, 'node_modules', 'nestjs-tiered-cache');
  rmSync(target, { recursive: true, force: true });
  mkdirSync(target, { recursive: true });
  cpSync(join(root, 'dist'), join(target, 'dist'), { recursive: true });
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
  writeFileSync(join(target, 'package.json'), JSON.stringify({ name: pkg.name, version: pkg.version, main: pkg.main, types: pkg.types }));
  console.log(`\n# compat: ${name}`);
  const tests = readdirSync(dir).filter((f) => f.endsWith('.test.mjs')).map((f) => join(dir, f));
  const r = run(process.execPath, ['--test', '--test-reporter=spec', ...tests]);
  if (r.status !== 0) failed = true;
}
process.exit(failed ? 1 : 0);
