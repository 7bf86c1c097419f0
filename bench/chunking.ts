/**
 * Chunking throughput (npm run bench -- chunking), into bench/results/embeddings.json, section
 * `chunking`.
 *
 * Corpus: ≥ 20 MB of text built deterministically from the shipped quality set
 * (examples/corpus/docs, as the loader reads it: HTML already stripped): each benchmark document
 * joins 16 pages drawn at random (about 10 KB, a dozen sections), each page with its paragraphs
 * shuffled and about a fifth of its words replaced by words drawn from a Zipf distribution over
 * 60,000 made-up words, so the vocabulary keeps growing like a real corpus's (a word cache cannot
 * just replay the shipped documents).
 *
 * Sides, all at the same chunk size (256 tokens with [CLS] and [SEP], all-MiniLM-L6-v2's
 * max_seq_length; 254 content tokens where a peer counts without them) and overlap (32 tokens),
 * all counting with the same MiniLM tokenizer.json:
 * - ours: chunkDocument over every document (parsed beforehand; the timed part is chunking),
 *   starting from an empty word cache;
 * - LangChain's RecursiveCharacterTextSplitter (@langchain/textsplitters) with a lengthFunction
 *   counting tokens with the same tokenizer: tokenizers.js on the whole candidate, as a user would
 *   write it (`langchain`), and, to show LangChain at its best, our word-cached counter
 *   (`langchainCachedCounter`); on the first FORGELINE_BENCH_LANGCHAIN_MB MB (default 1) of the
 *   corpus, since it re-counts every candidate piece and would take many minutes on all of it;
 * - semchunk and chonkie (RecursiveChunker, and SentenceChunker, which has an overlap) in their
 *   own venv (bench/peers/chunking-venv.sh), run by bench/peers/chunking_peers.py with the Rust
 *   `tokenizers` library on the same tokenizer.json (truncation and padding off), counting
 *   content tokens (254 budget), on the first FORGELINE_BENCH_PEERS_MB MB (default: all).
 * For each: MB/s (UTF-8 bytes of the documents it chunked / seconds), chunks, and the largest
 * chunk in tokens as the model receives it ([CLS] and [SEP] included), counted the same way for
 * every side.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { RecursiveCharacterTextSplitter } from '@langchain/textsplitters';
import { loadConfig, REPO_ROOT } from '../src/config/load';
import { chunkDocument } from '../src/embeddings/chunker';
import { loadDocuments, parseDocument, type CorpusDocument } from '../src/embeddings/documents';
import { loadMiniLmTokenizer, resolveMiniLmModelDir } from '../src/embeddings/tokenizer';
import { rng } from '../scripts/generate-corpus';
import { referenceTokenizer } from '../test/helpers/tokenizer';
import { round, writeResultSection } from './measure';

const CHUNK_TOKENS = 256;
const OVERLAP_TOKENS = 32;
const TARGET_BYTES = Number(process.env.FORGELINE_BENCH_CHUNKING_MB ?? 20) * 1e6;
const LANGCHAIN_BYTES = Number(process.env.FORGELINE_BENCH_LANGCHAIN_MB ?? 1) * 1e6;
const PEERS_BYTES = Number(process.env.FORGELINE_BENCH_PEERS_MB ?? Infinity) * 1e6;
const VENV = process.env.FORGELINE_CHUNKING_VENV ?? path.join(REPO_ROOT, 'bench', '.venv-chunking');

const PAGES_PER_DOCUMENT = 16;
const SYLLABLES = ['ka', 'ro', 'mi', 'tes', 'lun', 'dar', 'vi', 'no', 'sel', 'qua', 'tor', 'pen', 'ash', 'el', 'im', 'bro', 'gle', 'ux', 'zan', 'fi'];

/** The benchmark corpus: documents (id, markdown/text) of at least `targetBytes` UTF-8 bytes in all. */
export async function benchCorpus(targetBytes: number): Promise<CorpusDocument[]> {
  const { documents: base } = await loadDocuments({ folder: path.join(REPO_ROOT, 'examples', 'corpus', 'docs') });
  const random = rng(42);
  const vocabulary = Array.from({ length: 60_000 }, (_, i) => {
    let w = '';
    for (let n = i + 1; n > 0; n = Math.floor(n / SYLLABLES.length)) w += SYLLABLES[n % SYLLABLES.length];
    return w;
  });
  // Zipf(1): rank r with probability ∝ 1/r, by inverting the harmonic CDF approximately.
  const zipf = () => vocabulary[Math.min(vocabulary.length - 1, Math.floor(Math.exp(random() * Math.log(vocabulary.length + 1))) - 1)]!;
  const variant = (doc: CorpusDocument): string => {
    const paragraphs = doc.text.split(/\n{2,}/);
    // Keep a leading heading first; shuffle the rest.
    for (let i = paragraphs.length - 1; i > 1; i--) {
      const j = 1 + Math.floor(random() * i);
      [paragraphs[i], paragraphs[j]] = [paragraphs[j]!, paragraphs[i]!];
    }
    return paragraphs.join('\n\n').replace(/[A-Za-z]{4,}/g, (w) => (random() < 0.2 ? zipf() : w));
  };
  // Documents of PAGES_PER_DOCUMENT pages each (about 10 KB, several sections): long enough that
  // every splitter has to cut, as in real manuals.
  const out: CorpusDocument[] = [];
  let bytes = 0;
  for (let n = 0; bytes < targetBytes; n++) {
    const pages = Array.from({ length: PAGES_PER_DOCUMENT }, () => variant(base[Math.floor(random() * base.length)]!));
    const parsed = parseDocument(`doc-${String(n).padStart(5, '0')}.md`, Buffer.from(pages.join('\n\n')), 'markdown');
    out.push(parsed);
    bytes += Buffer.byteLength(parsed.text);
  }
  return out;
}

interface SideResult {
  what: string;
  documents: number;
  megabytes: number;
  seconds: number;
  mbPerSecond: number;
  chunks: number;
  maxChunkTokens: number;
  chunksOverLimit: number;
}

const mb = (docs: readonly CorpusDocument[]) => docs.reduce((a, d) => a + Buffer.byteLength(d.text), 0) / 1e6;

function prefixOf(docs: readonly CorpusDocument[], maxBytes: number): CorpusDocument[] {
  const out: CorpusDocument[] = [];
  let bytes = 0;
  for (const d of docs) {
    if (bytes >= maxBytes) break;
    out.push(d);
    bytes += Buffer.byteLength(d.text);
  }
  return out;
}

export async function chunkingBenchmark(): Promise<number> {
  const cfg = loadConfig();
  const log = (line: string) => console.log(`bench chunking: ${line}`);
  const loadAtStart = os.loadavg().map((x) => round(x, 2));
  const corpus = await benchCorpus(TARGET_BYTES);
  log(`corpus: ${corpus.length} documents, ${mb(corpus).toFixed(1)} MB`);
  const tokenizer = loadMiniLmTokenizer(cfg.venv);
  const countAll = (texts: Iterable<string>) => {
    let chunks = 0;
    let max = 0;
    let over = 0;
    for (const t of texts) {
      const n = tokenizer.countTokens(t);
      chunks++;
      max = Math.max(max, n);
      if (n > CHUNK_TOKENS) over++;
    }
    return { chunks, maxChunkTokens: max, chunksOverLimit: over };
  };
  const side = (what: string, docs: readonly CorpusDocument[], seconds: number, texts: string[]): SideResult => {
    const megabytes = mb(docs);
    return { what, documents: docs.length, megabytes: round(megabytes, 2), seconds: round(seconds, 3), mbPerSecond: round(megabytes / seconds, 3), ...countAll(texts) };
  };

  // Ours, from an empty word cache (the tokenizer was just loaded; countAll runs after).
  let t0 = performance.now();
  const ours = corpus.flatMap((d) => chunkDocument(d, { tokenizer, chunkTokens: CHUNK_TOKENS, overlapTokens: OVERLAP_TOKENS }));
  const oursSeconds = (performance.now() - t0) / 1000;
  const results: Record<string, unknown> = {
    ours: side('chunkDocument (src/embeddings/chunker.ts), tokenizers.js word-cached, cold cache', corpus, oursSeconds, ours.map((c) => c.text)),
  };
  log(`ours: ${JSON.stringify(results.ours)}`);

  // LangChain as a user would plug the tokenizer in: tokenizers.js encoding each candidate piece.
  const lcDocs = prefixOf(corpus, LANGCHAIN_BYTES);
  const raw = referenceTokenizer(cfg.venv);
  const langchain = async (name: string, what: string, lengthFunction: (t: string) => number) => {
    const splitter = new RecursiveCharacterTextSplitter({ chunkSize: CHUNK_TOKENS, chunkOverlap: OVERLAP_TOKENS, lengthFunction });
    const start = performance.now();
    const texts: string[] = [];
    for (const d of lcDocs) texts.push(...(await splitter.splitText(d.text)));
    results[name] = side(what, lcDocs, (performance.now() - start) / 1000, texts);
    log(`${name}: ${JSON.stringify(results[name])}`);
  };
  await langchain('langchain', `@langchain/textsplitters RecursiveCharacterTextSplitter, lengthFunction = tokenizers.js encode(text).ids.length on the same tokenizer.json ([CLS]/[SEP] included), first ${LANGCHAIN_BYTES / 1e6} MB`, (t) => raw.encode(t).ids.length);
  await langchain('langchainCachedCounter', `the same splitter with our word-cached counter as lengthFunction (LangChain at its best, helped by our tokenizer; cache warm from ours), first ${LANGCHAIN_BYTES / 1e6} MB`, (t) => tokenizer.countTokens(t));

  // Ours on LangChain's slice too, so the ratio is on the same text (the cache is warm by now: noted).
  t0 = performance.now();
  const oursSlice = lcDocs.flatMap((d) => chunkDocument(d, { tokenizer, chunkTokens: CHUNK_TOKENS, overlapTokens: OVERLAP_TOKENS }));
  results.oursOnLangchainSlice = side('ours on the same slice as LangChain (word cache warm from the full run)', lcDocs, (performance.now() - t0) / 1000, oursSlice.map((c) => c.text));

  const setup = spawnSync('bash', [path.join(REPO_ROOT, 'bench', 'peers', 'chunking-venv.sh')], { encoding: 'utf8', env: { ...process.env, FORGELINE_CHUNKING_VENV: VENV } });
  if (setup.status !== 0) {
    results.python = { skipped: `bench/peers/chunking-venv.sh failed (exit ${setup.status}): ${setup.stderr.slice(-500)}` };
  } else {
    const peerDocs = prefixOf(corpus, PEERS_BYTES);
    const dir = path.join(REPO_ROOT, 'bench', '.tmp');
    mkdirSync(dir, { recursive: true });
    const file = path.join(dir, 'chunking-corpus.jsonl');
    writeFileSync(file, peerDocs.map((d) => JSON.stringify(d.text)).join('\n') + '\n');
    const tokenizerJson = path.join(resolveMiniLmModelDir(cfg.venv), 'tokenizer.json');
    const run = spawnSync(path.join(VENV, 'bin', 'python'), [path.join(REPO_ROOT, 'bench', 'peers', 'chunking_peers.py'), '--corpus', file, '--tokenizer', tokenizerJson, '--chunk-tokens', String(CHUNK_TOKENS), '--overlap', String(OVERLAP_TOKENS)], {
      encoding: 'utf8',
      maxBuffer: 1 << 26,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    if (run.status !== 0) results.python = { skipped: `bench/peers/chunking_peers.py failed (exit ${run.status})` };
    else {
      const peers = JSON.parse(run.stdout.trim().split('\n').at(-1)!) as { versions: Record<string, string>; sides: Record<string, { what: string; seconds: number; texts: string[] }> };
      results.pythonVersions = peers.versions;
      for (const [name, p] of Object.entries(peers.sides)) {
        results[name] = side(p.what, peerDocs, p.seconds, p.texts);
        log(`${name}: ${JSON.stringify(results[name])}`);
      }
    }
  }

  const o = results.ours as SideResult;
  const ratio = (name: string) => {
    const r = results[name] as SideResult | undefined;
    return r && 'mbPerSecond' in r ? round(o.mbPerSecond / r.mbPerSecond, 2) : undefined;
  };
  const out = writeResultSection('embeddings', 'chunking', {
    what: `chunking throughput on a ${mb(corpus).toFixed(1)} MB corpus generated from examples/corpus (bench/chunking.ts), chunk ${CHUNK_TOKENS} tokens with [CLS]/[SEP], overlap ${OVERLAP_TOKENS}, all-MiniLM-L6-v2's tokenizer everywhere; maxChunkTokens = the largest chunk as the model receives it, counted with the same tokenizer for every side; one process, one thread`,
    chunkTokens: CHUNK_TOKENS,
    overlapTokens: OVERLAP_TOKENS,
    sides: results,
    speedup: {
      vsLangchain: ratio('langchain'),
      vsLangchainCachedCounter: ratio('langchainCachedCounter'),
      vsSemchunk: ratio('semchunk'),
      vsChonkieRecursive: ratio('chonkieRecursive'),
      vsChonkieSentence: ratio('chonkieSentence'),
    },
    loadAtEnd: os.loadavg().map((x) => round(x, 2)),
    loadAtStart,
    note: 'the machine is shared (2 cores, several engineers): loadavg at start and end are recorded; sides ran one after another in one run',
  });
  log(`wrote ${path.relative(process.cwd(), out)}`);
  return 0;
}

if (require.main === module) {
  chunkingBenchmark().then(
    (rc) => process.exit(rc),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
