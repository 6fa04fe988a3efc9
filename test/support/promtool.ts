import { spawnSync } from 'node:child_process';

/** The cache's own metric families (what these tests own in a scrape). */
export const OWN = /^(cache_|redis_cluster_)/;

/** Only the cache's own metric families (HELP/TYPE lines included). */
export function ownFamilies(text: string): string {
  return text
    .split('\n')
    .filter((l) => OWN.test(l.replace(/^# (HELP|TYPE) /, '')))
    .join('\n') + '\n';
}

/** `promtool check metrics` on `text`: the real Prometheus parser and linter. */
export function promtool(text: string): { status: number | null; output: string } {
  return runPromtool(['check', 'metrics'], text);
}

/** promtool with `args` (e.g. `check rules <file>`, `test rules <file>`), `input` on its stdin. */
export function runPromtool(args: string[], input?: string, cwd?: string): { status: number | null; output: string } {
  const r = spawnSync('promtool', args, { input, cwd, encoding: 'utf8' });
  if (r.error && (r.error as NodeJS.ErrnoException).code === 'ENOENT') {
    throw new Error(
      'promtool is not on PATH. This test checks Prometheus output and rules with the real Prometheus tools; install it with ' +
        "`apt-get install -y prometheus` (Debian/Ubuntu: Debian's prometheus package ships promtool) and run the tests again.",
    );
  }
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

/**
 * The whole scrape parses (exit 1 would be a parse error). prom-client's own default metrics draw lint warnings
 * (exit 3, e.g. nodejs_active_handles_total is a gauge); none may be about the cache's families, and those
 * alone must parse and lint clean.
 */
export function expectPromtoolToAccept(text: string): void {
  const all = promtool(text);
  expect([0, 3]).toContain(all.status);
  expect(all.output.split('\n').filter((l) => OWN.test(l))).toEqual([]);
  expect(promtool(ownFamilies(text))).toEqual({ status: 0, output: '' });
}
