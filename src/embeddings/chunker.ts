/**
 * Token-aware chunking with the embedding model's own tokenizer.
 *
 * Contract (what `chunkDocument` guarantees):
 * - Every chunk's `tokenCount` is the number of tokens the model receives for `text`, [CLS] and
 *   [SEP] included, and never exceeds `chunkTokens`.
 * - `text` is exactly `doc.text.slice(startChar, endChar)`; it starts and ends with a word (no
 *   separating whitespace, no run of characters that have no tokens).
 * - Sections (from headings) are hard boundaries, except that consecutive sections that fit in
 *   one chunk together are packed into one (a page of short sections is one chunk, not scraps).
 *   A chunk carries the heading path its sections share: its own section's path when it lies in
 *   one section. A section longer than a chunk is chunked alone.
 * - Inside a section, a chunk ends at the best boundary that keeps it at least half full:
 *   paragraph (blank line) > sentence (., !, ?, 。, ！, ？ and the like, then a space or line end)
 *   > line > word (whitespace, punctuation, a CJK ideograph). It ends inside a word only when a
 *   single word is longer than the chunk, then between its wordpieces.
 * - `overlapTokens`: the next chunk of a section starts at the earliest word such that at most
 *   that many tokens of the previous chunk are repeated. 0 ≤ overlap < chunkTokens / 2.
 * - Chunks with no tokens at all (only characters the tokenizer deletes) are not emitted; an empty
 *   or whitespace-only document gives no chunks.
 *
 * The model's limit: sentence-transformers truncates every input at the model's max_seq_length
 * (256 tokens for all-MiniLM-L6-v2), so tokens of a larger chunk past it are not embedded.
 * `chunkTokens` may still go up to 1024 (the spec's range): with `modelLimit: 'warn'` (default)
 * `validateChunking` returns a warning saying so, which the caller logs; with `'refuse'` a
 * larger `chunkTokens` is an InvalidSpec error.
 *
 * Chunk ids are stable content hashes: the first 32 hex digits of sha256 over
 * (id scheme version, model, chunkTokens, overlapTokens, document id, occurrence, text).
 * - model: a vector is only valid for the model that made it;
 * - chunkTokens, overlapTokens: an index version is built with one chunking, and its ids name it
 *   (changing either moves nearly every boundary anyway, so little reuse would be lost);
 * - document id: identical boilerplate in two documents stays two records, each retrieving its
 *   own document (renaming a file re-embeds it);
 * - occurrence (the n-th chunk of the document with this very text): a paragraph repeated inside
 *   one document keeps distinct ids;
 * - not the offsets: an edit above a chunk shifts it without changing its id, so a re-run
 *   re-embeds only the chunks whose text changed.
 *
 * Speed: the section is tokenized once, by whitespace-separated words through the tokenizer's
 * word cache (see tokenizer.ts); the chunk boundaries are then found on prefix sums of token
 * counts, with no re-tokenization except for chunks cut inside a word.
 */
import { createHash } from 'node:crypto';
import { ErrorType } from '../contracts/errors';
import { ForgelineError } from '../ports/errors';
import type { CorpusDocument, DocumentSection } from './documents';
import type { EmbeddingTokenizer } from './tokenizer';

export const DEFAULT_CHUNK_TOKENS = 512;
export const MIN_CHUNK_TOKENS = 16;
export const MAX_CHUNK_TOKENS = 1024;
/** Bump when the id inputs change meaning (every chunk is then re-embedded once). */
export const CHUNK_ID_SCHEME = 1;

export interface ChunkingOptions {
  tokenizer: EmbeddingTokenizer;
  /** Largest chunk in tokens, special tokens included (default 512, 16..1024). */
  chunkTokens?: number;
  /** Tokens repeated from the end of the previous chunk (default 0; below chunkTokens / 2). */
  overlapTokens?: number;
  /** What a chunkTokens above the model's max_seq_length does: warn (default) or refuse. */
  modelLimit?: 'warn' | 'refuse';
}

export interface ValidChunking {
  chunkTokens: number;
  overlapTokens: number;
  /** Things the caller should log (chunks longer than the model embeds). */
  warnings: string[];
}

export interface Chunk {
  /** Stable content hash (32 hex digits). */
  id: string;
  documentId: string;
  /** Position of the chunk in its document, from 0. */
  index: number;
  text: string;
  /** Heading path joined with ' > ' ('' before the first heading). */
  section: string;
  sectionPath: string[];
  startChar: number;
  endChar: number;
  /** Tokens the model receives for `text`, [CLS] and [SEP] included. */
  tokenCount: number;
}

const invalid = (message: string): ForgelineError => new ForgelineError(ErrorType.InvalidSpec, message, true);

/** Checks the chunking options against the rules above and the tokenizer's model. */
export function validateChunking(options: ChunkingOptions): ValidChunking {
  const chunkTokens = options.chunkTokens ?? DEFAULT_CHUNK_TOKENS;
  const overlapTokens = options.overlapTokens ?? 0;
  const { tokenizer } = options;
  if (!Number.isInteger(chunkTokens) || chunkTokens < MIN_CHUNK_TOKENS || chunkTokens > MAX_CHUNK_TOKENS) {
    throw invalid(`chunking.chunkTokens: expected a whole number from ${MIN_CHUNK_TOKENS} to ${MAX_CHUNK_TOKENS}, got ${chunkTokens}; ${tokenizer.model} embeds at most ${tokenizer.maxSeqLength} tokens per chunk`);
  }
  if (!Number.isInteger(overlapTokens) || overlapTokens < 0 || overlapTokens * 2 >= chunkTokens) {
    throw invalid(`chunking.overlapTokens: expected a whole number from 0 to below half of chunkTokens (${chunkTokens}), i.e. at most ${Math.ceil(chunkTokens / 2) - 1}, got ${overlapTokens}`);
  }
  const warnings: string[] = [];
  if (chunkTokens > tokenizer.maxSeqLength) {
    const msg = `chunking.chunkTokens ${chunkTokens} is above ${tokenizer.model}'s max_seq_length of ${tokenizer.maxSeqLength} tokens: sentence-transformers truncates each chunk there, so the text of a chunk past its first ${tokenizer.maxSeqLength} tokens is not embedded`;
    if (options.modelLimit === 'refuse') throw invalid(`${msg}; set chunkTokens to at most ${tokenizer.maxSeqLength}`);
    warnings.push(`${msg} (set chunkTokens to at most ${tokenizer.maxSeqLength} to embed all of it)`);
  }
  return { chunkTokens, overlapTokens, warnings };
}

/** The stable id of a chunk (see the module comment for why these inputs). */
export function chunkId(input: { model: string; chunkTokens: number; overlapTokens: number; documentId: string; occurrence: number; text: string }): string {
  const key = JSON.stringify([CHUNK_ID_SCHEME, input.model, input.chunkTokens, input.overlapTokens, input.documentId, input.occurrence, input.text]);
  return createHash('sha256').update(key).digest('hex').slice(0, 32);
}

/** Boundary strength before a piece: higher is a better place to end a chunk. */
const Rank = { Subword: 0, Word: 1, Line: 2, Sentence: 3, Paragraph: 4, Section: 5 } as const;
type Rank = (typeof Rank)[keyof typeof Rank];

/**
 * The section's text as runs whose tokens are known, each no longer than the budget, in parallel
 * arrays (a corpus has millions of them): where each starts and ends, its tokens, and how good a
 * break lies before it.
 */
class Pieces {
  start: number[] = [];
  end: number[] = [];
  tokens: number[] = [];
  rank: Rank[] = [];
  get length(): number {
    return this.start.length;
  }
}

/** Characters that end a sentence, and closing quotes or brackets that may follow them. */
const SENTENCE_END = new Set([...'.!?…。！？‼⁇⁈⁉'].map((c) => c.charCodeAt(0)));
const CLOSERS = new Set([...')]}"\'”’»」』'].map((c) => c.charCodeAt(0)));
const CJK_STOPS = new Set([...'。！？'].map((c) => c.charCodeAt(0)));

function endsSentence(text: string, start: number, end: number): boolean {
  let i = end - 1;
  while (i > start && CLOSERS.has(text.charCodeAt(i))) i--;
  return i >= start && SENTENCE_END.has(text.charCodeAt(i));
}

/** Rank of the break between a piece [prevStart, prevEnd) and one starting at `start`. */
function breakRank(text: string, prevStart: number, prevEnd: number, start: number): Rank {
  if (start === prevEnd) return CJK_STOPS.has(text.charCodeAt(prevEnd - 1)) ? Rank.Sentence : Rank.Word;
  let newlines = 0;
  for (let i = prevEnd; i < start; i++) if (text.charCodeAt(i) === 10) newlines++;
  if (newlines >= 2) return Rank.Paragraph;
  if (endsSentence(text, prevStart, prevEnd)) return Rank.Sentence;
  return newlines === 1 ? Rank.Line : Rank.Word;
}

/** The section's text as pieces no longer than `budget` tokens each. */
function piecesOf(doc: CorpusDocument, section: DocumentSection, tokenizer: EmbeddingTokenizer, budget: number): Pieces {
  const text = doc.text;
  const out = new Pieces();
  const add = (start: number, end: number, tokens: number, glued: boolean) => {
    const n = out.start.length;
    out.rank.push(n === 0 ? Rank.Paragraph : glued ? Rank.Subword : breakRank(text, out.start[n - 1]!, out.end[n - 1]!, start));
    out.start.push(start);
    out.end.push(end);
    out.tokens.push(tokens);
  };
  tokenizer.forEachWord(text, section.startChar, section.endChar, (wStart, wEnd, ids) => {
    if (ids.length <= budget) {
      add(wStart, wEnd, ids.length, false);
      return;
    }
    // A run longer than a chunk (CJK text, a long URL): split it at punctuation and ideographs,
    // then, for a single word still too long, between its wordpieces.
    for (const fine of tokenizer.spans(text.slice(wStart, wEnd), { fine: true })) {
      const fStart = wStart + fine.start;
      if (fine.ids.length <= budget) {
        add(fStart, wStart + fine.end, fine.ids.length, false);
        continue;
      }
      const bounds = tokenizer.pieceBounds(text.slice(fStart, wStart + fine.end), fine.ids);
      // A wordpiece with an empty span (bounds spread over a word whose normalization changed
      // its length) joins the next one.
      let from = 0;
      let pending = 0;
      for (let i = 0; i < fine.ids.length; i++) {
        pending++;
        if (bounds[i + 1]! === from) continue;
        add(fStart + from, fStart + bounds[i + 1]!, Math.min(pending, budget), from > 0);
        from = bounds[i + 1]!;
        pending = 0;
      }
    }
  });
  return out;
}

/**
 * Sections packed into groups that chunks never cross: consecutive sections whose tokens fit in
 * one chunk together share a group (a run of short sections makes one chunk, not many scraps); a
 * section larger than a chunk is a group of its own. A group's path is the heading path its
 * sections share.
 */
function sectionGroups(doc: CorpusDocument, tokenizer: EmbeddingTokenizer, budget: number): Array<{ pieces: Pieces; path: string[] }> {
  const groups: Array<{ pieces: Pieces; path: string[]; tokens: number }> = [];
  for (const section of doc.sections) {
    const pieces = piecesOf(doc, section, tokenizer, budget);
    const tokens = pieces.tokens.reduce((a, b) => a + b, 0);
    const last = groups[groups.length - 1];
    if (last && last.tokens + tokens <= budget && tokens <= budget) {
      if (pieces.length) pieces.rank[0] = Rank.Section;
      last.pieces.start.push(...pieces.start);
      last.pieces.end.push(...pieces.end);
      last.pieces.tokens.push(...pieces.tokens);
      last.pieces.rank.push(...pieces.rank);
      last.tokens += tokens;
      let shared = 0;
      while (shared < last.path.length && shared < section.path.length && last.path[shared] === section.path[shared]) shared++;
      last.path = last.path.slice(0, shared);
    } else {
      groups.push({ pieces, path: [...section.path], tokens });
    }
  }
  return groups;
}

/** Index of the last prefix sum `<= limit` in `sums[from..to]` (sums ascending). */
function lastWithin(sums: readonly number[], from: number, to: number, limit: number): number {
  let lo = from;
  let hi = to;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (sums[mid]! <= limit) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/** Cuts a document into chunks (see the module comment for the contract). */
export function chunkDocument(doc: CorpusDocument, options: ChunkingOptions): Chunk[] {
  const { chunkTokens, overlapTokens } = validateChunking(options);
  const { tokenizer } = options;
  const specials = tokenizer.specialTokens;
  const budget = chunkTokens - specials;
  const chunks: Chunk[] = [];
  const occurrences = new Map<string, number>();
  const emit = (path: readonly string[], start: number, end: number, tokenCount: number) => {
    const text = doc.text.slice(start, end);
    const occurrence = occurrences.get(text) ?? 0;
    occurrences.set(text, occurrence + 1);
    chunks.push({
      id: chunkId({ model: tokenizer.model, chunkTokens, overlapTokens, documentId: doc.id, occurrence, text }),
      documentId: doc.id,
      index: chunks.length,
      text,
      section: path.join(' > '),
      sectionPath: [...path],
      startChar: start,
      endChar: end,
      tokenCount,
    });
  };

  for (const { pieces, path } of sectionGroups(doc, tokenizer, budget)) {
    const n = pieces.length;
    const sums = new Array<number>(n + 1);
    sums[0] = 0;
    for (let i = 0; i < n; i++) sums[i + 1] = sums[i]! + pieces.tokens[i]!;
    let s = 0;
    let prevEnd = 0;
    while (s < n) {
      let e = lastWithin(sums, s + 1, n, sums[s]! + budget);
      if (e < n) e = bestBreak(pieces, sums, s, Math.max(s + 1, prevEnd + 1), e, budget);
      // Cut inside a word: the pieces' counts are those of the whole word; count the real text
      // and give back wordpieces until it fits.
      let tokens = sums[e]! - sums[s]!;
      if (pieces.rank[s] === Rank.Subword || (e < n && pieces.rank[e] === Rank.Subword)) {
        tokens = tokenizer.countTokens(doc.text.slice(pieces.start[s]!, pieces.end[e - 1]!)) - specials;
        while (tokens > budget && e > s + 1) {
          e--;
          tokens = tokenizer.countTokens(doc.text.slice(pieces.start[s]!, pieces.end[e - 1]!)) - specials;
        }
      }
      if (tokens > 0) {
        // Pieces without tokens (only characters the tokenizer deletes) do not start or end a chunk.
        let first = s;
        let last = e - 1;
        while (pieces.tokens[first] === 0) first++;
        while (pieces.tokens[last] === 0) last--;
        emit(path, pieces.start[first]!, pieces.end[last]!, tokens + specials);
      }
      if (e >= n) break;
      // The next chunk starts as early as the overlap allows, at a word, and early enough
      // only that it can still take the next piece (so it gets past this chunk's end).
      let next = e;
      while (next - 1 > s && sums[e]! - sums[next - 1]! <= overlapTokens && sums[e + 1]! - sums[next - 1]! <= budget) next--;
      while (next < e && pieces.rank[next] === Rank.Subword) next++;
      prevEnd = e;
      s = next;
    }
  }
  return chunks;
}

/**
 * Where to end a chunk starting at piece `s` that may end as late as `maxEnd` (exclusive): the
 * strongest boundary that leaves it at least half full, the latest of equals; boundaries at or
 * before `minEnd - 1` are not allowed (the next chunk must get past the previous one's end).
 */
function bestBreak(pieces: Pieces, sums: readonly number[], s: number, minEnd: number, maxEnd: number, budget: number): number {
  const half = sums[s]! + budget / 2;
  let best = -1;
  let bestRank = -1;
  for (const needFill of [true, false]) {
    for (let k = maxEnd; k >= minEnd; k--) {
      if (needFill && sums[k]! < half) break;
      const rank = pieces.rank[k]!;
      if (rank > bestRank) {
        best = k;
        bestRank = rank;
        if (rank === Rank.Paragraph) break;
      }
    }
    if (best >= 0 && (bestRank > Rank.Subword || !needFill)) return best;
  }
  return best >= 0 ? best : maxEnd;
}
