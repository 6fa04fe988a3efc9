import { templateSegment } from './key-segment';

type Part = { literal: string } | { root: string; path: readonly string[] };

const PLACEHOLDER = /\{([A-Za-z_$][\w$]*|\d+)((?:\.[\w$]+)*)\}/g;

/**
 * `'property:{id}'`, `'lead:{0}:{1}'`, `'tenant:{dto.tenantId}'`: text with placeholders naming an
 * argument (by parameter name or position) and an optional property path into it. Each filled value
 * becomes one escaped segment (see key-segment.ts), so `{id}` = `'1:*'` cannot address other keys.
 */
export class KeyTemplate {
  private constructor(
    readonly source: string,
    private readonly parts: readonly Part[],
  ) {}

  static parse(source: string, option: string): KeyTemplate {
    if (typeof source !== 'string' || source.length === 0) {
      throw new TypeError(`${option} must be a non-empty string, got ${String(source)}`);
    }
    const parts: Part[] = [];
    let last = 0;
    let prevWasPlaceholder = false;
    for (const m of source.matchAll(PLACEHOLDER)) {
      const at = m.index ?? 0;
      if (at > last) parts.push({ literal: source.slice(last, at) });
      else if (prevWasPlaceholder) {
        // '{a}{b}' would give 'a=1,b=23' and 'a=12,b=3' the same key.
        throw new TypeError(`${option} '${source}': placeholders must be separated by literal text`);
      }
      parts.push({ root: m[1], path: m[2] ? m[2].slice(1).split('.') : [] });
      last = at + m[0].length;
      prevWasPlaceholder = true;
    }
    if (last < source.length) parts.push({ literal: source.slice(last) });
    return new KeyTemplate(source, parts);
  }

  get isStatic(): boolean {
    return this.parts.every((p) => 'literal' in p);
  }

  /** The argument names and positions the template refers to. */
  get roots(): string[] {
    return this.parts.flatMap((p) => ('root' in p ? [p.root] : []));
  }

  /** Fills the template; `lookup(root)` gives the value of a name or position. */
  render(lookup: (root: string) => unknown, segment: (value: unknown) => string = templateSegment): string {
    let out = '';
    for (const p of this.parts) {
      if ('literal' in p) {
        out += p.literal;
        continue;
      }
      let v = lookup(p.root);
      for (const k of p.path) v = v === null || v === undefined ? undefined : (v as Record<string, unknown>)[k];
      out += segment(v);
    }
    return out;
  }

  /** Binds roots to argument positions once, so rendering is a few array reads. */
  bind(
    paramNames: ReadonlyArray<string | undefined>,
    where: string,
    segment: (value: unknown) => string = templateSegment,
  ): (args: readonly unknown[]) => string {
    const index = new Map<string, number>();
    for (const root of this.roots) {
      if (/^\d+$/.test(root)) {
        index.set(root, Number(root));
        continue;
      }
      const i = paramNames.indexOf(root);
      if (i < 0) {
        const known = paramNames.filter((n) => n !== undefined).join(', ') || 'none';
        throw new TypeError(`${where}: template '${this.source}' names '${root}', which is not a parameter (parameters: ${known}); use a position such as {0}`);
      }
      index.set(root, i);
    }
    if (this.isStatic) {
      const fixed = this.source;
      return () => fixed;
    }
    const compiled = this.parts.map((p) => ('literal' in p ? p : { at: index.get(p.root) as number, path: p.path }));
    return (args) => {
      let out = '';
      for (const p of compiled) {
        if ('literal' in p) {
          out += p.literal;
          continue;
        }
        let v = args[p.at];
        for (const k of p.path) v = v === null || v === undefined ? undefined : (v as Record<string, unknown>)[k];
        out += segment(v);
      }
      return out;
    };
  }
}
