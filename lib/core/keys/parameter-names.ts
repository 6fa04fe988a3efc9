/**
 * Parameter names of a function, read from its source. Destructured parameters have no name (`undefined`:
 * address them by position); minified code has meaningless names, which is why positions always work.
 */
export function parameterNames(fn: (...args: never[]) => unknown): Array<string | undefined> {
  const src = Function.prototype.toString.call(fn);
  const open = src.indexOf('(');
  if (open < 0) return [];
  let depth = 0;
  let current = '';
  const params: string[] = [];
  for (let i = open + 1; i < src.length; i++) {
    const c = src[i];
    if (c === '(' || c === '[' || c === '{') depth++;
    else if (c === ')' || c === ']' || c === '}') {
      if (depth === 0) break;
      depth--;
    } else if (c === ',' && depth === 0) {
      params.push(current);
      current = '';
      continue;
    } else if ((c === '"' || c === "'" || c === '`') && depth >= 0) {
      const end = skipString(src, i);
      current += src.slice(i, end + 1);
      i = end;
      continue;
    }
    current += c;
  }
  if (current.trim().length > 0) params.push(current);
  return params.map((p) => {
    const m = /^\s*(?:\.\.\.)?\s*([A-Za-z_$][\w$]*)\s*(?:=[\s\S]*)?$/.exec(stripComments(p));
    return m ? m[1] : undefined;
  });
}

function skipString(src: string, start: number): number {
  const q = src[start];
  for (let i = start + 1; i < src.length; i++) {
    if (src[i] === '\\') i++;
    else if (src[i] === q) return i;
  }
  return src.length - 1;
}

function stripComments(s: string): string {
  return s.replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/[^\n]*/g, '');
}
