import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Tokenizer } from '@huggingface/tokenizers' with { 'resolution-mode': 'import' };
import { resolveMiniLmModelDir } from '../../src/embeddings/tokenizer';

/** tokenizers.js on the MiniLM files, used directly on whole strings: the reference our word-wise tokenization must match. */
export function referenceTokenizer(venv: string): Tokenizer {
  const dir = resolveMiniLmModelDir(venv);
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { Tokenizer: Ctor } = require('@huggingface/tokenizers') as { Tokenizer: new (a: object, b: object) => Tokenizer };
  return new Ctor(JSON.parse(readFileSync(path.join(dir, 'tokenizer.json'), 'utf8')) as object, JSON.parse(readFileSync(path.join(dir, 'tokenizer_config.json'), 'utf8')) as object);
}

const ALPHABET = [
  'the', 'quick', 'Brown', 'fox', 'jumps', 'über', 'naïve', 'café', 'Straße', 'İstanbul', 'ﬁ', 'tokenization', 'antidisestablishmentarianism',
  '東京', '北京欢迎你', 'タワー', '한국어', 'ภาษาไทย', 'العربية', 'हिन्दी', '😀', '👍🏽', '👨‍👩‍👧', '🇫🇷',
  '.', ',', '!', '?', '。', '！', '...', '—', '(', ')', '[', ']', '"', "'", '#', '##', '-', '_', '/', ':', 'https://x.io/a?b=1',
  '[CLS]', '[SEP]', '[MASK]', '\u0000', '\ufffd', '\u200b', '\ufeff', '\u00ad', 'e\u0301', 'x'.repeat(130), '1234567890', 'x'.repeat(40),
];
const SPACES = [' ', ' ', ' ', '', '\n', '\n\n', '\t', '\u00a0', '\u3000', '\u2028', '\u000b', '\u000c', '\r\n', '\u0085', '  '];

/** A deterministic random text of `words` tokens drawn from scripts, symbols, spaces and control characters. */
export function randomText(seed: number, words: number): string {
  let state = seed >>> 0;
  const next = (n: number) => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return Math.floor((state / 4294967296) * n);
  };
  let out = '';
  for (let i = 0; i < words; i++) out += ALPHABET[next(ALPHABET.length)]! + SPACES[next(SPACES.length)]!;
  return out;
}
