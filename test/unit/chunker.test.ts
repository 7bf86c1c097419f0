import assert from 'node:assert/strict';
import { loadConfig } from '../../src/config/load';
import { ErrorType } from '../../src/contracts/errors';
import { chunkDocument, validateChunking, type Chunk } from '../../src/embeddings/chunker';
import { parseDocument, type CorpusDocument } from '../../src/embeddings/documents';
import { loadMiniLmTokenizer } from '../../src/embeddings/tokenizer';
import { ForgelineError } from '../../src/ports/errors';
import { randomText, referenceTokenizer } from '../helpers/tokenizer';

const doc = (id: string, text: string): CorpusDocument => parseDocument(id, Buffer.from(text));

/** Sentences of about 10 tokens, numbered so that every one is distinct. */
const sentence = (i: number) => `Sentence number ${i} says that the pipeline keeps running smoothly.`;
const paragraph = (from: number, n: number) => Array.from({ length: n }, (_, i) => sentence(from + i)).join(' ');

describe('chunker', function () {
  this.timeout(120_000);
  const venv = loadConfig().venv;
  const tokenizer = loadMiniLmTokenizer(venv);
  const ref = referenceTokenizer(venv);
  /** Tokens the model gets for a text, counted by tokenizers.js on the whole string. */
  const count = (text: string) => ref.encode(text).ids.length;

  function checkChunks(d: CorpusDocument, chunks: Chunk[], chunkTokens: number): void {
    for (const c of chunks) {
      assert.equal(c.text, d.text.slice(c.startChar, c.endChar));
      assert.doesNotMatch(c.text, /^[\t\n\r\p{Zs}\u2028\u2029]|[\t\n\r\p{Zs}\u2028\u2029]$/u, 'starts and ends with a word');
      assert.equal(c.tokenCount, count(c.text), `token count of ${JSON.stringify(c.text.slice(0, 60))}`);
      assert.ok(c.tokenCount <= chunkTokens, `${c.tokenCount} > ${chunkTokens}`);
      assert.equal(c.documentId, d.id);
      assert.match(c.id, /^[0-9a-f]{32}$/);
    }
    assert.deepEqual(chunks.map((c) => c.index), chunks.map((_, i) => i));
    // Every token of the document is in some chunk: the chunks cover all text that has tokens.
    let covered = 0;
    for (const c of chunks) {
      if (c.startChar > covered) assert.equal(count(d.text.slice(covered, c.startChar)), 2, `uncovered text ${JSON.stringify(d.text.slice(covered, c.startChar))}`);
      covered = Math.max(covered, c.endChar);
    }
    assert.equal(count(d.text.slice(covered)), 2, 'text after the last chunk');
  }

  it('never exceeds chunkTokens, [CLS] and [SEP] included, and counts exactly', () => {
    const d = doc('a.md', `# Title\n\n${paragraph(0, 30)}\n\n${paragraph(30, 50)}\n`);
    for (const chunkTokens of [16, 64, 128, 256, 512]) {
      const chunks = chunkDocument(d, { tokenizer, chunkTokens, overlapTokens: 0 });
      checkChunks(d, chunks, chunkTokens);
      assert.ok(chunks.length >= Math.ceil((count(d.text) - 2) / (chunkTokens - 2)));
      // Filled: all but each section's last chunk hold at least half the budget.
      for (const c of chunks.slice(0, -1)) assert.ok(c.tokenCount - 2 >= (chunkTokens - 2) / 2, `underfilled chunk of ${c.tokenCount}`);
    }
  });

  it('prefers paragraph, then sentence, then word boundaries', () => {
    // Paragraphs of ~80 tokens, chunks of 200: each chunk ends at a paragraph end.
    const text = Array.from({ length: 6 }, (_, p) => paragraph(p * 8, 8)).join('\n\n');
    const d = doc('p.txt', text);
    const chunks = chunkDocument(d, { tokenizer, chunkTokens: 200, overlapTokens: 0 });
    checkChunks(d, chunks, 200);
    for (const c of chunks) assert.ok(c.endChar === d.text.length || d.text.startsWith('\n\n', c.endChar), `ends mid-paragraph: ${JSON.stringify(c.text.slice(-30))}`);
    // One long paragraph: chunks end at sentence ends.
    const long = doc('s.txt', paragraph(0, 40));
    for (const c of chunkDocument(long, { tokenizer, chunkTokens: 64, overlapTokens: 0 })) assert.match(c.text, /\.$/);
    // No sentence ends at all: chunks end between words, never inside one.
    const words = doc('w.txt', Array.from({ length: 300 }, (_, i) => `word${i}`).join(' '));
    const wc = chunkDocument(words, { tokenizer, chunkTokens: 32, overlapTokens: 0 });
    checkChunks(words, wc, 32);
    for (const c of wc) assert.match(c.text, /^word\d+( word\d+)*$/);
  });

  it('splits a single word longer than a chunk between its wordpieces', () => {
    // 93 characters: one word of many wordpieces (BERT makes a word over 100 characters one [UNK]).
    const d = doc('long.txt', `before ${'zqx'.repeat(31)} after`);
    const chunks = chunkDocument(d, { tokenizer, chunkTokens: 16, overlapTokens: 0 });
    checkChunks(d, chunks, 16);
    assert.ok(chunks.length > 3);
  });

  it('overlaps consecutive chunks by at most overlapTokens, starting at a word', () => {
    const d = doc('o.txt', Array.from({ length: 400 }, (_, i) => `w${i}`).join(' '));
    const chunks = chunkDocument(d, { tokenizer, chunkTokens: 64, overlapTokens: 16 });
    checkChunks(d, chunks, 64);
    for (let i = 1; i < chunks.length; i++) {
      const [a, b] = [chunks[i - 1]!, chunks[i]!];
      assert.ok(b.startChar < a.endChar && b.startChar > a.startChar, 'overlaps and moves on');
      assert.ok(b.endChar > a.endChar);
      const shared = count(d.text.slice(b.startChar, a.endChar)) - 2;
      assert.ok(shared > 0 && shared <= 16, `shared ${shared} tokens`);
      assert.ok(/\s/.test(d.text[b.startChar - 1]!), 'starts at a word');
    }
    const none = chunkDocument(d, { tokenizer, chunkTokens: 64, overlapTokens: 0 });
    for (let i = 1; i < none.length; i++) assert.ok(none[i]!.startChar >= none[i - 1]!.endChar);
  });

  it('keeps chunks inside sections, packing short neighbours, and carries the shared heading path', () => {
    const d = doc('s.md', `Preamble text.\n\n# Install\n\n${paragraph(0, 3)}\n\n## Linux\n\nUse apt.\n\n## macOS\n\nUse brew.\n\n# Configure\n\n${paragraph(3, 30)}\n\n# Tail\n\nShort.\n`);
    const chunks = chunkDocument(d, { tokenizer, chunkTokens: 128, overlapTokens: 8 });
    checkChunks(d, chunks, 128);
    const sectionsOf = (c: Chunk) => d.sections.filter((x) => c.startChar < x.endChar && c.endChar > x.startChar);
    for (const c of chunks) {
      const touched = sectionsOf(c);
      if (touched.length > 1) {
        // Several sections only when they fit whole: from the first one's start to the last one's end.
        assert.equal(c.startChar, touched[0]!.startChar);
        assert.equal(d.text.slice(c.endChar, touched.at(-1)!.endChar).trim(), '');
      }
      const shared = touched.map((x) => x.path).reduce((a, p) => a.slice(0, a.findIndex((t, i) => p[i] !== t) < 0 ? a.length : a.findIndex((t, i) => p[i] !== t)));
      assert.deepEqual(c.sectionPath, shared);
      assert.equal(c.section, shared.join(' > '));
    }
    // Preamble + Install + its two subsections fit one chunk; Configure is long and chunked alone; Tail alone after it.
    assert.equal(chunks[0]!.text, d.text.slice(0, d.text.indexOf('# Configure')).trim());
    assert.equal(chunks[0]!.section, '');
    const configure = chunks.filter((c) => c.section === 'Configure');
    assert.ok(configure.length > 1);
    assert.equal(configure.map((c) => c.text).join(' ').includes('# Tail'), false);
    assert.equal(chunks.at(-1)!.text, '# Tail\n\nShort.');
    // A small chunk size: Install is chunked alone; its two short subsections still fit together,
    // under the path they share.
    const small = chunkDocument(d, { tokenizer, chunkTokens: 16, overlapTokens: 0 });
    checkChunks(d, small, 16);
    const linux = small.find((c) => c.text.startsWith('## Linux'))!;
    assert.equal(linux.text, '## Linux\n\nUse apt.\n\n## macOS\n\nUse brew.');
    assert.deepEqual(linux.sectionPath, ['Install']);
    assert.deepEqual(small.find((c) => c.text.startsWith('# Install'))!.sectionPath, ['Install']);
  });

  it('handles Unicode: CJK without spaces, emoji, accents, never splitting a surrogate pair', () => {
    const cjk = '东京是日本的首都，也是世界上人口最多的城市之一。'.repeat(30);
    const d = doc('u.md', `# 東京\n\n${cjk}\n\nEmoji 😀👍🏽 ${'🇫🇷'.repeat(40)} naïve café Straße ${'ﬁ'.repeat(50)}\n`);
    const chunks = chunkDocument(d, { tokenizer, chunkTokens: 48, overlapTokens: 8 });
    checkChunks(d, chunks, 48);
    for (const c of chunks) {
      assert.ok(!/^[\uDC00-\uDFFF]/.test(c.text) && !/[\uD800-\uDBFF]$/.test(c.text), 'surrogate pair split');
    }
    // CJK chunks end at the ideographic full stop where one is in reach.
    const cjkChunks = chunks.filter((c) => c.text.includes('东京') && !c.text.includes('#'));
    assert.ok(cjkChunks.slice(0, -1).every((c) => c.text.endsWith('。')), cjkChunks.map((c) => c.text.slice(-3)).join(' | '));
  });

  it('gives empty and whitespace-only documents no chunks', () => {
    for (const text of ['', '   \n\n\t ', '\u0000\u200b']) assert.deepEqual(chunkDocument(doc('e.txt', text), { tokenizer, chunkTokens: 64 }), []);
    assert.deepEqual(chunkDocument(doc('h.md', '# \n\n'), { tokenizer, chunkTokens: 64 }).map((c) => c.text), ['#']);
  });

  it('gives stable ids: the same text gets the same id, an edit changes only its own chunks', () => {
    const base = `# A\n\n${paragraph(0, 10)}\n\n# B\n\n${paragraph(10, 10)}\n`;
    const opts = { tokenizer, chunkTokens: 64, overlapTokens: 0 };
    const one = chunkDocument(doc('d.md', base), opts);
    assert.deepEqual(chunkDocument(doc('d.md', base), opts).map((c) => c.id), one.map((c) => c.id));
    const edited = chunkDocument(doc('d.md', base.replace('Sentence number 3 says', 'Sentence number 3 claims')), opts);
    const b = (cs: Chunk[]) => cs.filter((c) => c.section === 'B').map((c) => c.id);
    assert.deepEqual(b(edited), b(one), 'section B unchanged');
    assert.notDeepEqual(edited.filter((c) => c.section === 'A').map((c) => c.id), one.filter((c) => c.section === 'A').map((c) => c.id));
    // Offsets shift, ids do not: text inserted above section B.
    const shifted = chunkDocument(doc('d.md', base.replace('# B', 'One more line.\n\n# B')), opts);
    assert.deepEqual(b(shifted), b(one));
    assert.notEqual(shifted.find((c) => c.section === 'B')!.startChar, one.find((c) => c.section === 'B')!.startChar);
    // Other document, model params or repeated text: other ids.
    assert.notEqual(chunkDocument(doc('other.md', base), opts)[0]!.id, one[0]!.id);
    assert.notEqual(chunkDocument(doc('d.md', base), { ...opts, overlapTokens: 4 })[0]!.id, one[0]!.id);
    const twice = chunkDocument(doc('t.txt', `${sentence(1)}\n\n${sentence(1)}`), { tokenizer, chunkTokens: 16 });
    assert.equal(twice.length, 2);
    assert.notEqual(twice[0]!.id, twice[1]!.id);
  });

  it('validates chunkTokens and overlapTokens with clear messages, and warns past the model limit', () => {
    const fails = (o: object, re: RegExp) =>
      assert.throws(() => validateChunking({ tokenizer, ...o }), (err) => err instanceof ForgelineError && err.terminal && err.type === ErrorType.InvalidSpec && re.test(err.message));
    fails({ chunkTokens: 8 }, /chunking\.chunkTokens: expected a whole number from 16 to 1024, got 8/);
    fails({ chunkTokens: 2048 }, /from 16 to 1024, got 2048/);
    fails({ chunkTokens: 100.5 }, /got 100\.5/);
    fails({ chunkTokens: 64, overlapTokens: 32 }, /chunking\.overlapTokens: expected a whole number from 0 to below half of chunkTokens \(64\), i\.e\. at most 31, got 32/);
    fails({ chunkTokens: 64, overlapTokens: -1 }, /got -1/);
    fails({ chunkTokens: 512, modelLimit: 'refuse' }, /above sentence-transformers\/all-MiniLM-L6-v2's max_seq_length of 256 tokens.*set chunkTokens to at most 256/);
    assert.deepEqual(validateChunking({ tokenizer, chunkTokens: 256, overlapTokens: 32 }), { chunkTokens: 256, overlapTokens: 32, warnings: [] });
    const dflt = validateChunking({ tokenizer });
    assert.equal(dflt.chunkTokens, 512);
    assert.equal(dflt.overlapTokens, 0);
    assert.match(dflt.warnings[0]!, /past its first 256 tokens is not embedded/);
  });

  it('fuzz: random texts never give a chunk over the limit, with exact counts and full coverage', () => {
    for (let seed = 1; seed <= 120; seed++) {
      const text = randomText(seed * 7919, 20 + ((seed * 37) % 400));
      const d = doc(`f${seed}.md`, seed % 3 === 0 ? `# H${seed}\n\n${text}\n## Sub\n${text.slice(0, 200)}` : text);
      const chunkTokens = [16, 17, 32, 100, 256][seed % 5]!;
      const overlapTokens = seed % 2 ? 0 : Math.floor((chunkTokens - 1) / 2);
      checkChunks(d, chunkDocument(d, { tokenizer, chunkTokens, overlapTokens }), chunkTokens);
    }
  });
});
