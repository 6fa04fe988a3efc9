import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';

// The README is a front page that links into docs/; a moved or renamed section must not leave a dead link.
const root = join(__dirname, '..', '..');
const pages = [join(root, 'README.md'), join(root, 'CHANGELOG.md'), ...readdirSync(join(root, 'docs')).filter((f) => f.endsWith('.md')).map((f) => join(root, 'docs', f))];

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to dashes. */
function anchors(markdown: string): Set<string> {
  const out = new Set<string>();
  let fenced = false;
  for (const line of markdown.split('\n')) {
    if (line.startsWith('```')) fenced = !fenced;
    const m = !fenced && /^#{1,6} (.*)$/.exec(line);
    if (!m) continue;
    const slug = m[1].trim().toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-');
    out.add(slug);
  }
  return out;
}

function withoutCode(markdown: string): string {
  return markdown.replace(/```[\s\S]*?```/g, '').replace(/`[^`\n]*`/g, '');
}

describe('documentation links', () => {
  it.each(pages.filter((p) => existsSync(p)).map((p) => [relative(root, p), p]))('%s links only to files and headings that exist', (_name, page) => {
    const text = readFileSync(page, 'utf8');
    const dead: string[] = [];
    for (const [, target] of withoutCode(text).matchAll(/\]\(([^)\s]+)\)/g)) {
      if (/^[a-z]+:/.test(target)) continue; // http(s), mailto
      const [file, anchor] = target.split('#');
      const path = file ? join(dirname(page), file) : page;
      if (!existsSync(path)) {
        dead.push(target);
        continue;
      }
      if (anchor && path.endsWith('.md') && !anchors(readFileSync(path, 'utf8')).has(anchor)) dead.push(target);
    }
    expect(dead).toEqual([]);
  });
});
