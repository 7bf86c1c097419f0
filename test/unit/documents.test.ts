import assert from 'node:assert/strict';
import { mkdtemp, rm, symlink } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { LocalArtifactStore } from '../../src/adapters/local-artifact-store';
import { ErrorType } from '../../src/contracts/errors';
import { listDocuments, loadDocuments, parseDocument } from '../../src/embeddings/documents';
import { ForgelineError } from '../../src/ports/errors';
import { sha256, writeTree } from '../helpers/artifact-fixtures';

const MD = `Intro line before any heading.

# Install

Run the installer.

\`\`\`sh
# not a heading: inside a fence
echo hi
\`\`\`

## On Linux ##

Use the package.

# Configure
Set the key.
`;

const HTML = `<!doctype html><html><head><title>Skip me</title><style>.x { color: red }</style></head>
<body><nav><a href="/">Home</a> <a href="/docs">Docs</a></nav>
<h1>Troubleshooting</h1><p>Start with <a href="https://example.com/status">the status page</a>.</p>
<script>var secret = "not text";</script>
<h2>KST-1042 &amp; friends</h2><p>Disk fills up.</p><h3>Fix</h3><p>Resume the sink.</p>
</body></html>`;

function assertTerminal(err: unknown, pattern: RegExp): true {
  assert.ok(err instanceof ForgelineError, String(err));
  assert.equal(err.terminal, true);
  assert.equal(err.type, ErrorType.InvalidSpec);
  assert.match(err.message, pattern);
  return true;
}

describe('documents', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'forgeline-docs-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('lists and reads md, html and txt from a folder, in id order, reporting what it skips', async () => {
    await writeTree(dir, {
      'b/guide.md': MD,
      'a.html': HTML,
      'notes.TXT': 'plain\r\nwindows\r\nline ends',
      'deep/x/y.markdown': '# Only\nbody',
      'image.png': Buffer.from([0x89, 0x50]),
      '.hidden.md': '# secret',
      '.git/config': 'x',
    });
    const { documents, skipped } = await loadDocuments({ folder: dir });
    assert.deepEqual(documents.map((d) => [d.id, d.format]), [['a.html', 'html'], ['b/guide.md', 'markdown'], ['deep/x/y.markdown', 'markdown'], ['notes.TXT', 'text']]);
    assert.deepEqual(skipped.map((s) => s.id), ['.git', '.hidden.md', 'image.png']);
    assert.match(skipped.find((s) => s.id === 'image.png')!.reason, /unsupported type \(supported: \.txt, \.md/);

    const md = documents[1]!;
    assert.equal(md.sha256, sha256(MD));
    assert.equal(md.text, MD);
    assert.deepEqual(md.sections.map((s) => s.path), [[], ['Install'], ['Install', 'On Linux'], ['Configure']]);
    // Contiguous cover of the text, each section starting at its heading.
    assert.equal(md.sections[0]!.startChar, 0);
    for (let i = 1; i < md.sections.length; i++) assert.equal(md.sections[i]!.startChar, md.sections[i - 1]!.endChar);
    assert.equal(md.sections.at(-1)!.endChar, md.text.length);
    assert.ok(md.text.slice(md.sections[2]!.startChar).startsWith('## On Linux ##'));

    const txt = documents[3]!;
    assert.equal(txt.text, 'plain\nwindows\nline ends', 'CRLF becomes LF');
    assert.equal(txt.sections.length, 1);
  });

  it('strips HTML to text: no script, style, nav or URLs; headings become sections', () => {
    const doc = parseDocument('t.html', Buffer.from(HTML));
    assert.doesNotMatch(doc.text, /secret|color|Home|Skip me|https:/);
    assert.match(doc.text, /Start with the status page\./);
    assert.deepEqual(doc.sections.map((s) => s.path), [['Troubleshooting'], ['Troubleshooting', 'KST-1042 & friends'], ['Troubleshooting', 'KST-1042 & friends', 'Fix']]);
    for (const s of doc.sections) assert.equal(doc.text.slice(s.startChar).split('\n')[0], s.path.at(-1));
    assert.match(doc.text.slice(doc.sections[2]!.startChar, doc.sections[2]!.endChar), /^Fix\n\nResume the sink\.\s*$/);
  });

  it('skips symbolic links and reports them', async () => {
    await writeTree(dir, { 'real/a.md': '# A' });
    await symlink(path.join(dir, 'real', 'a.md'), path.join(dir, 'link.md'));
    await symlink(path.join(dir, 'real'), path.join(dir, 'linked-dir'));
    const { entries, skipped } = await listDocuments({ folder: dir });
    assert.deepEqual(entries.map((e) => e.id), ['real/a.md']);
    assert.deepEqual(skipped, [
      { id: 'link.md', reason: 'symbolic link (not followed)' },
      { id: 'linked-dir', reason: 'symbolic link (not followed)' },
    ]);
  });

  it('reads from an ArtifactStore prefix with ids relative to it', async () => {
    const store = new LocalArtifactStore(pathToFileURL(path.join(dir, 'store')).href);
    await store.put('corpora/docs/z.md', '# Z\nzed');
    await store.put('corpora/docs/sub/a.txt', 'alpha');
    await store.put('corpora/docs/data.csv', 'a,b');
    await store.put('corpora/other.md', 'not in the prefix');
    const { documents, skipped } = await loadDocuments({ artifacts: store, prefix: 'corpora/docs' });
    assert.deepEqual(documents.map((d) => d.id), ['sub/a.txt', 'z.md']);
    assert.deepEqual(documents.map((d) => d.text), ['alpha', '# Z\nzed']);
    assert.deepEqual(skipped.map((s) => s.id), ['data.csv']);
  });

  it('refuses an empty corpus, naming what it skipped', async () => {
    await assert.rejects(loadDocuments({ folder: dir }), (err) => assertTerminal(err, /no supported documents \(it is empty\); add \.txt, \.md/));
    await writeTree(dir, { 'a.pdf': 'x' });
    await assert.rejects(loadDocuments({ folder: dir }), (err) => assertTerminal(err, /no supported documents \(skipped 1: a\.pdf: unsupported type/));
    await assert.rejects(loadDocuments({ folder: path.join(dir, 'missing') }), (err) => assertTerminal(err, /does not exist/));
  });

  it('refuses a file that is not UTF-8, naming it and the offset', async () => {
    await writeTree(dir, { 'ok.txt': 'fine', 'latin1.txt': Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x20, 0x6f, 0x6b]) });
    await assert.rejects(loadDocuments({ folder: dir }), (err) => assertTerminal(err, /document latin1\.txt is not valid UTF-8 \(first bad byte at offset 3\); re-save it as UTF-8/));
    assert.throws(() => parseDocument('end.md', Buffer.from([0x61, 0xc3])), (err) => assertTerminal(err, /offset 1/));
    assert.throws(() => parseDocument('first.md', Buffer.from([0xe9, 0x20])), (err) => assertTerminal(err, /offset 0/));
  });

  it('refuses a file over the size limit before reading anything', async () => {
    await writeTree(dir, { 'big.md': 'x'.repeat(2000), 'small.md': 'y' });
    await assert.rejects(listDocuments({ folder: dir }, { maxDocumentBytes: 1000 }), (err) => assertTerminal(err, /big\.md is 2000 bytes, over the limit of 1000 \(maxDocumentBytes\); split the document or raise the limit/));
    assert.equal((await listDocuments({ folder: dir }, { maxDocumentBytes: 2000 })).entries.length, 2);
  });

  it('gives a whitespace-only document no sections and strips a byte-order mark', () => {
    assert.deepEqual(parseDocument('blank.txt', Buffer.from('  \n\n ')).sections, []);
    const bom = parseDocument('bom.md', Buffer.from('\uFEFF# T\nx'));
    assert.equal(bom.text, '# T\nx');
    assert.deepEqual(bom.sections, [{ path: ['T'], level: 1, startChar: 0, endChar: 5 }]);
  });
});
