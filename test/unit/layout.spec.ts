import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = join(__dirname, '..', '..');

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? sources(p) : p.endsWith('.ts') ? [p] : [];
  });
}

/** Modules a fresh Node process has loaded after requiring `entry` through the package's own exports map. */
function loadedBy(entry: string): string[] {
  const script = `require(${JSON.stringify(entry)}); process.stdout.write(JSON.stringify(Object.keys(require.cache)));`;
  return JSON.parse(execFileSync(process.execPath, ['-e', script], { cwd: root, encoding: 'utf8' })) as string[];
}

describe('package layout', () => {
  it('nestjs-tiered-cache/core loads no @nestjs module, nor anything of the Nest layer (needs a build: npm test builds)', () => {
    const loaded = loadedBy('nestjs-tiered-cache/core');
    expect(loaded.some((p) => p.includes(join('dist', 'core', 'tiered-cache.js')))).toBe(true);
    expect(loaded.filter((p) => p.includes(`${join('node_modules', '@nestjs')}`))).toEqual([]);
    expect(loaded.filter((p) => p.includes(join('dist', 'nest')))).toEqual([]);
  });

  it('the root entry point still carries the engine and the Nest module', () => {
    const script = `const m = require('nestjs-tiered-cache'); const c = require('nestjs-tiered-cache/core');
      process.stdout.write(JSON.stringify([typeof m.TieredCacheModule, m.TieredCache === c.TieredCache]));`;
    expect(JSON.parse(execFileSync(process.execPath, ['-e', script], { cwd: root, encoding: 'utf8' }))).toEqual(['function', true]);
  });

  it('the root entry point loads nothing of TypeORM; nestjs-tiered-cache/typeorm references typeorm for types only', () => {
    const typeorm = (p: string) => p.includes(`${join('node_modules', 'typeorm')}`) || p.includes(`${join('node_modules', '@nestjs', 'typeorm')}`);
    const main = loadedBy('nestjs-tiered-cache');
    expect(main.filter((p) => typeorm(p) || p.includes(join('dist', 'typeorm')))).toEqual([]);
    // Not in the package's exports map yet: loaded by its path in dist/.
    const entry = loadedBy(join(root, 'dist', 'typeorm', 'index.js'));
    expect(entry.some((p) => p.includes(join('dist', 'typeorm', 'tiered-cache-typeorm.module.js')))).toBe(true);
    expect(entry.filter(typeorm)).toEqual([]);
  });

  it('no source file under lib/core imports @nestjs or the Nest layer', () => {
    const offenders: string[] = [];
    for (const file of sources(join(root, 'lib', 'core'))) {
      const text = readFileSync(file, 'utf8');
      for (const m of text.matchAll(/(?:from|import|require)\s*\(?\s*['"]([^'"]+)['"]/g)) {
        if (m[1].startsWith('@nestjs/') || /(^|\/)nest(\/|$)/.test(m[1])) offenders.push(`${relative(root, file)} -> ${m[1]}`);
      }
    }
    expect(offenders).toEqual([]);
  });
});
