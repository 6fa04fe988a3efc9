import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ts from 'typescript';

// Every option a user can set, read off the types themselves (not a list kept by hand), must be documented in
// docs/options.md under its full path, in backticks: `redis.commandTimeout`, `tiers[].postgres.schema`.
const root = join(__dirname, '..', '..');
const optionsFile = join(root, 'lib', 'core', 'tiered-cache-options.interface.ts');
const resolvedFile = join(root, 'lib', 'core', 'options.ts');
const reference = readFileSync(join(root, 'docs', 'options.md'), 'utf8');

const program = ts.createProgram([optionsFile, resolvedFile], { strict: true, skipLibCheck: true, types: [] });
const checker = program.getTypeChecker();

function exportedType(file: string, name: string): ts.Type {
  const source = program.getSourceFile(file);
  if (!source) throw new Error(`${file} not in the program`);
  const symbol = checker.getSymbolAtLocation(source);
  const exported = symbol && checker.getExportsOfModule(symbol).find((s) => s.name === name);
  if (!exported) throw new Error(`${name} is not exported by ${file}`);
  return checker.getDeclaredTypeOfSymbol(exported);
}

/** Types whose fields are not ours to document one by one (ioredis' own options, callbacks, codecs). */
function isLeafType(type: ts.Type): boolean {
  if (type.getCallSignatures().length > 0) return true;
  const decl = (type.aliasSymbol ?? type.getSymbol())?.getDeclarations()?.[0];
  if (!decl) return false;
  const file = decl.getSourceFile().fileName;
  if (!file.startsWith(join(root, 'lib'))) return true; // RedisOptions, ClusterOptions, built-ins
  const name = (type.aliasSymbol ?? type.getSymbol())?.name ?? '';
  return ['CacheCodec', 'CacheLogger', 'CacheTracer', 'MetricsRegistry', 'Date', 'RegExp'].includes(name);
}

function objectMembers(type: ts.Type): ts.Type[] {
  const members = type.isUnion() ? type.types : [type];
  return members.filter((t) => (t.flags & ts.TypeFlags.Object) !== 0 && (checker.isArrayType(t) || !isLeafType(t)));
}

function optionPaths(type: ts.Type, prefix: string, depth: number, out: Set<string>): void {
  if (depth > 6) return;
  for (const member of objectMembers(type)) {
    if (checker.isArrayType(member)) {
      const element = checker.getTypeArguments(member as ts.TypeReference)[0];
      if (element) optionPaths(element, `${prefix}[]`, depth + 1, out);
      continue;
    }
    for (const prop of checker.getPropertiesOfType(member)) {
      const path = prefix ? `${prefix}.${prop.name}` : prop.name;
      out.add(path);
      const propType = checker.getNonNullableType(checker.getTypeOfSymbol(prop));
      optionPaths(propType, path, depth + 1, out);
    }
  }
}

// Shapes the reference documents once and says so where they recur ("the fields of `redis`"): a recurring path
// is looked up under the path it is documented at.
const sameShapeAs: ReadonlyArray<readonly [string, string]> = [
  ['tiers[].redis.', 'redis.'],
  ['tiers[].writeBehind.', 'writeBehind.'],
  ['tiers[].compression.', 'l2.compression.'],
  ['tiers[].breaker.', 'redis.breaker.'],
  ['tiers[].hitRateTarget.', 'l1.hitRateTarget.'],
  ['l2.hitRateTarget.', 'l1.hitRateTarget.'],
];

function documentedAs(path: string): string {
  for (const [from, to] of sameShapeAs) if (path.startsWith(from)) return to + path.slice(from.length);
  return path;
}

describe('docs/options.md, the options reference', () => {
  it('names every option of TieredCacheOptions, nested ones by their full path', () => {
    const paths = new Set<string>();
    optionPaths(exportedType(optionsFile, 'TieredCacheOptions'), '', 0, paths);
    // A sanity check of the walk itself: it must reach nested, union and array members.
    for (const expected of ['redis.commandTimeout', 'redis.sentinels', 'redis.clusterOptions', 'tiers[].postgres.schema', 'resilience.timeout.hard']) {
      expect(paths.has(expected)).toBe(true);
    }
    const missing = [...paths].map(documentedAs).filter((p) => !reference.includes('`' + p + '`'));
    expect(missing).toEqual([]);
  });

  it('names every field of the resolved options that a user sets (derived fields are listed here with why)', () => {
    // Computed from other options, not set by a user: documented where they come from.
    const derived = new Set([
      'entryTtl', // l2.ttl, l1.ttl or defaultTtl
      'tierNames', // tiers[].name
      'hitRateTargets', // l1/l2.hitRateTarget, tiers[].hitRateTarget
      'lower', // tiers below the first Redis tier
      'warnings', // logged at boot
    ]);
    const fields = checker.getPropertiesOfType(exportedType(resolvedFile, 'ResolvedOptions')).map((p) => p.name);
    expect(fields.length).toBeGreaterThan(10);
    const missing = fields.filter((f) => !derived.has(f) && !reference.includes('`' + f));
    expect(missing).toEqual([]);
  });
});
