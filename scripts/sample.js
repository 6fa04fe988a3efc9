'use strict';
/**
 * The sample app's launcher (`npm run sample`, `npm run sample:warm`):
 *   node scripts/sample.js [main]      builds if needed, then runs the API (sample-app/src/main.ts)
 *   node scripts/sample.js warm …      builds if needed, then the warm-up (sample-app/src/warm.ts) with the arguments
 *   node scripts/sample.js build       builds if needed, and exits
 *
 * Builds with `tsc -p sample-app/tsconfig.json` only when a source is newer than the last successful build, and
 * prints "build: compiled" or "build: up to date" (on stderr, as tsc's messages: stdout stays the entry's own, e.g.
 * the warm-up's --json report). The built entry is then require()d in this very process, not
 * spawned: a SIGTERM or SIGINT sent to this process (npm forwards its own to it) reaches the app's shutdown hooks,
 * and no child is left behind when it ends.
 */
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const ROOT = path.join(__dirname, '..');
const OUT = path.join(ROOT, 'dist-sample');
const ENTRIES = {
  main: path.join(OUT, 'sample-app', 'src', 'main.js'),
  warm: path.join(OUT, 'sample-app', 'src', 'warm.js'),
};
/** What the build reads: the sample, the library it compiles along, and both tsconfig files. */
const SOURCES = ['sample-app/src', 'lib', 'sample-app/tsconfig.json', 'tsconfig.json'].map((p) => path.join(ROOT, p));
/** Written after a build that succeeded (tsc emits even when it reports errors: the output alone proves nothing). */
const STAMP = path.join(OUT, '.sample-build.json');

/**
 * The newest mtime of `p` and everything below it. Directories count too: deleting or renaming a file changes
 * only its directory's mtime.
 */
function newestMtime(p) {
  const st = fs.statSync(p);
  if (!st.isDirectory()) return st.mtimeMs;
  let max = st.mtimeMs;
  for (const e of fs.readdirSync(p)) max = Math.max(max, newestMtime(path.join(p, e)));
  return max;
}

function lastBuild() {
  try {
    const stamp = JSON.parse(fs.readFileSync(STAMP, 'utf8'));
    return typeof stamp.sources === 'number' ? stamp.sources : undefined;
  } catch {
    return undefined;
  }
}

/** Compiles unless the last successful build saw every source as it is now; returns whether it compiled. */
function buildIfStale() {
  // Taken before compiling: a source saved while tsc runs is newer than this and makes the next run build again.
  const sources = Math.max(...SOURCES.map(newestMtime));
  const built = lastBuild();
  if (built !== undefined && built >= sources && Object.values(ENTRIES).every((f) => fs.existsSync(f))) {
    console.error('build: up to date');
    return false;
  }
  const tsc = require.resolve('typescript/bin/tsc', { paths: [ROOT] });
  const res = spawnSync(process.execPath, [tsc, '-p', path.join(ROOT, 'sample-app', 'tsconfig.json')], { cwd: ROOT, stdio: ['ignore', 2, 2] });
  if (res.status !== 0) {
    console.error(`build: failed (tsc -p sample-app/tsconfig.json exited with ${res.status ?? res.signal})`);
    process.exit(res.status ?? 1);
  }
  fs.writeFileSync(STAMP, `${JSON.stringify({ sources })}\n`);
  console.error('build: compiled');
  return true;
}

function main(argv) {
  const [command = 'main', ...rest] = argv;
  if (command !== 'main' && command !== 'warm' && command !== 'build') {
    console.error(`usage: node scripts/sample.js [main | warm [warm options…] | build]  (got "${command}")`);
    process.exit(2);
  }
  buildIfStale();
  if (command === 'build') return;
  if (command === 'main') {
    // main.js boots the app as it loads and calls enableShutdownHooks(): SIGTERM/SIGINT close it and end this process.
    require(ENTRIES.main);
    return;
  }
  // warm.js runs itself only as the main module; here it is required, so it is called.
  require(ENTRIES.warm)
    .warm(rest)
    .then((code) => process.exit(code));
}

if (require.main === module) main(process.argv.slice(2));

module.exports = { buildIfStale };
