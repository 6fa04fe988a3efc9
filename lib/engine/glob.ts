/** Redis glob (`*`, `?`, `[...]`, `\` escapes) to an anchored RegExp, for matching L1 keys the way SCAN MATCH does. */
export function globToRegExp(glob: string): RegExp {
  let re = '^';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === '\\' && i + 1 < glob.length) {
      re += escapeRe(glob[++i]);
    } else if (c === '*') {
      re += '[\\s\\S]*';
    } else if (c === '?') {
      re += '[\\s\\S]';
    } else if (c === '[') {
      const end = glob.indexOf(']', i + 1);
      if (end === -1) {
        re += '\\[';
      } else {
        let body = glob.slice(i + 1, end);
        if (body.startsWith('^')) body = '^' + body.slice(1).replace(/\\/g, '\\\\');
        else body = body.replace(/\\/g, '\\\\');
        re += `[${body}]`;
        i = end;
      }
    } else {
      re += escapeRe(c);
    }
  }
  return new RegExp(re + '$');
}

/** Escapes a literal (a key prefix, a user-supplied segment) so SCAN MATCH treats it as plain text. */
export function escapeGlob(literal: string): string {
  return literal.replace(/[\\*?[\]]/g, (c) => '\\' + c);
}

function escapeRe(c: string): string {
  return c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}
