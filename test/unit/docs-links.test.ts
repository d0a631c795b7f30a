// The repository stands alone: every relative link in its Markdown reaches a file (and heading)
// inside the repository, and neither docs nor code point at material a person who clones the
// repository does not have (a sibling `shared` folder, numbered tracker items, a task brief).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const REPO = path.resolve(__dirname, '..', '..');
const SELF = path.resolve(__filename);

/** Never scanned: dependencies, local tools and state, recorded workflow histories. */
const SKIP_DIRS = new Set([
  'node_modules',
  '.git',
  '.tools',
  '.state',
  'coverage',
  path.join('test', 'replay', 'histories'),
]);

/** Folders whose text files must not point outside the repository. */
const SOURCE_DIRS = [
  'docs',
  'rpc',
  'services',
  'sessions',
  'workflows',
  'activities',
  'machines',
  'media',
  'matrix',
  'worker',
  'config',
  'agent',
  'cli',
  'scripts',
  'bench',
  'test',
  'docker',
  '.ci',
];
const ROOT_FILES = [
  'README.md',
  'package.json',
  'jest.config.js',
  'eslint.config.js',
  'tsconfig.json',
  'Dockerfile',
  'docker-compose.yml',
  'docker-compose.cluster.yml',
];
const TEXT_FILE = /\.(ts|js|mjs|cjs|md|sh|toml|json|ya?ml|html|css|py)$|(^|\/)(Dockerfile|run)$/;

/** What a clone does not have: the sibling folder, tracker item numbers, the brief. */
const OUTSIDE_POINTERS: Array<[string, RegExp]> = [
  ['a sibling "shared" folder', /\.\.\/shared\b/],
  ['a numbered issue', /\bissues? #?\d+/i],
  ['"the brief"', /\bthe brief\b/i],
];

function walk(dir: string, out: string[] = []): string[] {
  if (!fs.existsSync(dir)) return out;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    const rel = path.relative(REPO, full);
    if (SKIP_DIRS.has(entry.name) || SKIP_DIRS.has(rel)) continue;
    if (entry.isDirectory()) walk(full, out);
    else if (entry.isFile()) out.push(full);
  }
  return out;
}

const rel = (file: string) => path.relative(REPO, file);

/** README.md and every Markdown file under docs/ and the source folders. */
function markdownFiles(): string[] {
  const files = [path.join(REPO, 'README.md')];
  for (const dir of SOURCE_DIRS) files.push(...walk(path.join(REPO, dir)));
  return [...new Set(files.filter((f) => f.endsWith('.md')))].sort();
}

/** The text with fenced code blocks blanked (line numbers kept). */
function withoutFences(text: string): string {
  let fence: string | null = null;
  return text
    .split('\n')
    .map((line) => {
      const m = /^\s{0,3}(`{3,}|~{3,})/.exec(line);
      if (fence === null && m) {
        fence = m[1]!;
        return '';
      }
      if (fence !== null) {
        if (m && m[1]![0] === fence[0] && m[1]!.length >= fence.length) fence = null;
        return '';
      }
      return line;
    })
    .join('\n');
}

/** GitHub's heading anchor: lower case, punctuation dropped, spaces to hyphens, -1, -2 for repeats. */
function slugsOf(markdown: string): Set<string> {
  const slugs = new Set<string>();
  const seen = new Map<string, number>();
  for (const line of withoutFences(markdown).split('\n')) {
    const m = /^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (!m) continue;
    const text = m[1]!
      .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1') // links and images: their text
      .replace(/<[^>]+>/g, '') // inline HTML
      .replace(/[`*]/g, '');
    const base = text
      .toLowerCase()
      .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '')
      .replace(/ /g, '-');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    slugs.add(n === 0 ? base : `${base}-${n}`);
  }
  for (const m of markdown.matchAll(/<a\s+(?:name|id)="([^"]+)"/g)) slugs.add(m[1]!);
  return slugs;
}

interface Link {
  line: number;
  target: string;
}

/** Inline links and images, reference definitions and HTML href/src, outside code. */
function linksOf(markdown: string): Link[] {
  const links: Link[] = [];
  withoutFences(markdown)
    .split('\n')
    .forEach((raw, i) => {
      const line = raw.replace(/`[^`]*`/g, 'code');
      for (const m of line.matchAll(/\]\(\s*<?([^)\s>]*)>?(?:\s+["'(][^)]*)?\)/g)) {
        links.push({ line: i + 1, target: m[1]! });
      }
      const def = /^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)/.exec(line);
      if (def) links.push({ line: i + 1, target: def[1]! });
      for (const m of line.matchAll(/\b(?:href|src)="([^"]*)"/g)) {
        links.push({ line: i + 1, target: m[1]! });
      }
    });
  return links;
}

/** Why `target`, linked from `file`, is broken; null when it resolves inside `root`. */
function brokenLink(file: string, target: string, root: string): string | null {
  if (/^[a-z][a-z0-9+.-]*:/i.test(target) || target.startsWith('//')) return null; // a URL
  const hash = target.indexOf('#');
  const pathPart = decodeURIComponent(hash === -1 ? target : target.slice(0, hash));
  const anchor = hash === -1 ? null : decodeURIComponent(target.slice(hash + 1));
  const resolved =
    pathPart === ''
      ? file
      : pathPart.startsWith('/')
        ? path.join(root, pathPart)
        : path.resolve(path.dirname(file), pathPart);
  if (resolved !== root && !resolved.startsWith(root + path.sep)) {
    return 'points outside the repository';
  }
  if (!fs.existsSync(resolved)) return 'no such file';
  if (anchor && resolved.endsWith('.md') && fs.statSync(resolved).isFile()) {
    if (!slugsOf(fs.readFileSync(resolved, 'utf8')).has(anchor)) return `no heading #${anchor}`;
  }
  return null;
}

/** Every broken relative link of the given Markdown files, as `file:line: target (why)`. */
function brokenLinks(files: string[], root = REPO): string[] {
  const problems: string[] = [];
  for (const file of files) {
    for (const { line, target } of linksOf(fs.readFileSync(file, 'utf8'))) {
      const why = brokenLink(file, target, root);
      if (why) problems.push(`${rel(file)}:${line}: ${target} (${why})`);
    }
  }
  return problems;
}

/** Lines of the given files that point outside the repository, as `file:line: what: text`. */
function outsidePointers(files: string[]): string[] {
  const hits: string[] = [];
  for (const file of files) {
    if (path.resolve(file) === SELF) continue;
    fs.readFileSync(file, 'utf8')
      .split('\n')
      .forEach((text, i) => {
        for (const [what, pattern] of OUTSIDE_POINTERS) {
          if (pattern.test(text)) hits.push(`${rel(file)}:${i + 1}: ${what}: ${text.trim()}`);
        }
      });
  }
  return hits;
}

function scannedFiles(): string[] {
  const files = ROOT_FILES.map((f) => path.join(REPO, f)).filter((f) => fs.existsSync(f));
  for (const dir of SOURCE_DIRS) files.push(...walk(path.join(REPO, dir)));
  return files.filter((f) => TEXT_FILE.test(f)).sort();
}

describe('the repository stands alone', () => {
  test('README.md and the docs are found', () => {
    const files = markdownFiles().map(rel);
    expect(files).toContain('README.md');
    expect(files).toContain(path.join('docs', 'api.md'));
    expect(files).toContain(path.join('docs', 'architecture.md'));
  });

  test('every relative link in the Markdown reaches a file and heading in the repository', () => {
    expect(brokenLinks(markdownFiles())).toEqual([]);
  });

  test('no doc or source file points at material outside the repository', () => {
    const files = scannedFiles();
    expect(files.length).toBeGreaterThan(100);
    expect(outsidePointers(files)).toEqual([]);
  });
});

describe('the checks themselves', () => {
  let dir = '';
  beforeAll(() => {
    dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'armorclaw-links-')));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
  const write = (name: string, text: string) => {
    const file = path.join(dir, name);
    fs.writeFileSync(file, text);
    return file;
  };

  test('catch a missing file, a missing heading, a link out of the repository', () => {
    write('target.md', '# A `code.name` heading\n\n## Twice\n\n## Twice\n');
    const file = write(
      'source.md',
      [
        '[ok](target.md#a-codename-heading) [ok](target.md#twice-1) [ok](#local) [web](https://x.org/y)',
        '# Local',
        '[gone](missing.md) [bad anchor](target.md#nowhere)',
        '[out](../elsewhere/README.md)',
        '```',
        '[in code](not-checked.md)',
        '```',
      ].join('\n'),
    );
    expect(brokenLinks([file], dir).map((p) => p.replace(/^.*source\.md:/, ''))).toEqual([
      '3: missing.md (no such file)',
      '3: target.md#nowhere (no heading #nowhere)',
      '4: ../elsewhere/README.md (points outside the repository)',
    ]);
  });

  test('catch pointers to outside material', () => {
    const file = write(
      'pointers.ts',
      [
        '// see ' + '../' + 'shared/spec',
        '// (Issue' + ' 12)',
        '// as the ' + 'brief says',
        '// fine',
      ].join('\n'),
    );
    expect(
      outsidePointers([file]).map((h) => h.replace(/^.*pointers\.ts:/, '').split(':')[0]),
    ).toEqual(['1', '2', '3']);
  });
});
