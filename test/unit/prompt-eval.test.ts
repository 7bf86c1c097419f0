import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/activity';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { createPromptEvalActivities, promptEvalRunId } from '../../activities/prompt-release/evaluate';
import { LocalTracker } from '../../src/adapters/local-tracker';
import { ErrorType } from '../../src/contracts/errors';
import { parsePromptSpec, type PromptSpecInput } from '../../src/contracts/prompt';
import { parsePromptEvalConfig, parsePromptTestSet, type PromptEvalConfigInput, type PromptEvalInput, type PromptEvalResult, type PromptTestCaseInput } from '../../src/contracts/prompt-eval';
import { fromRows } from '../../src/drift/embeddings';
import { BatchingEmbedder, checkExpectations, evaluatePrompt, PromptJudgeFailedError, promptMessages, type CaseRunRecord, type PromptEvalDeps, type PromptEvalModels, type PromptGeneration } from '../../src/evaluation/prompt-eval';
import { meanConfidenceInterval, type Judge, type JudgeFormat } from '../../src/evaluation/ragas';
import type { Embedder } from '../../src/ports/embedder';
import { ForgelineError } from '../../src/ports/errors';
import type { Tracker } from '../../src/ports/tracker';

const SPEC: PromptSpecInput = {
  name: 'geo-answer',
  template: 'Context: {{context}}\nQuestion: {{question}}',
  variables: { context: { type: 'string' }, question: { type: 'string' } },
  model: { alias: 'tiny-demo', params: { temperature: 0.7, maxTokens: 64 } },
  examples: [{ variables: { context: 'Rome is in Italy.', question: 'Where is Rome?' }, output: 'In Italy.' }],
};
const candidate = { name: 'geo-answer', version: 'aaaaaaaaaaaa', spec: parsePromptSpec(SPEC) };
const production = { name: 'geo-answer', version: 'bbbbbbbbbbbb', spec: parsePromptSpec({ ...SPEC, template: 'Answer from the context.\nContext: {{context}}\nQuestion: {{question}}' }) };

const CASES: PromptTestCaseInput[] = [
  { id: 'paris', variables: { context: 'Paris is in France.', question: 'Where is Paris?' }, contexts: ['Paris is in France.', 'Berlin is in Germany.'], reference: 'Paris is in France.', expect: { contains: ['France'] } },
  { id: 'berlin', variables: { context: 'Berlin is in Germany.', question: 'Where is Berlin?' }, contexts: ['Rome is in Italy.', 'Berlin is in Germany.'], reference: 'Berlin is in Germany.', expect: { contains: ['Germany'] } },
  { id: 'count', variables: { context: 'none', question: 'How many?' }, expect: { regex: '^\\d+$' } },
];
const jsonl = (cases: unknown[]) => cases.map((c) => JSON.stringify(c)).join('\n');

/** Answers by version, run and case: the test's known ground truth. */
type Answers = Record<'candidate' | 'production', Array<Record<string, string>>>;

/** The case a generation is for, from its last user message's question. */
function caseOf(req: PromptGeneration): string {
  const q = /Question: (.*)$/.exec(req.messages[req.messages.length - 1]!.content)![1]!;
  return { 'Where is Paris?': 'paris', 'Where is Berlin?': 'berlin', 'How many?': 'count' }[q]!;
}

/** Scripted generation: the answer table, each call's run counted per (version, case). */
function scriptedGenerate(answers: Answers, seen: PromptGeneration[] = []) {
  const calls = new Map<string, number>();
  return async (req: PromptGeneration): Promise<string> => {
    seen.push(req);
    const version = req.messages[req.messages.length - 1]!.content.startsWith('Answer from') ? 'production' : 'candidate';
    const id = caseOf(req);
    const key = `${version}/${id}`;
    const run = calls.get(key) ?? 0;
    calls.set(key, run + 1);
    return answers[version][run]![id]!;
  };
}

/**
 * A judge whose verdicts are known: statements are the answer's sentences; a statement is
 * supported when a context contains it; a context is useful when it contains the reference;
 * the questions it writes are the answer itself, `n` times.
 */
class ScriptedJudge implements Judge {
  formats: string[] = [];
  constructor(private readonly garbageFor?: RegExp) {}
  async complete(prompt: string, format?: JudgeFormat): Promise<string> {
    this.formats.push(format?.name ?? '');
    if (this.garbageFor?.test(prompt)) return 'I am not sure what you want';
    if (format?.name === 'faithfulness_statements') {
      const answer = /Answer: (.*)$/m.exec(prompt)![1]!;
      return JSON.stringify({ statements: answer.split(/(?<=\.)\s+/).filter(Boolean) });
    }
    if (format?.name === 'faithfulness_verdicts') {
      const contexts = [...prompt.matchAll(/^\[\d+\] (.*)$/gm)].map((m) => m[1]!);
      const statements = [...prompt.split('Statements:\n')[1]!.matchAll(/^\d+\. (.*)$/gm)].map((m) => m[1]!);
      return JSON.stringify({ verdicts: statements.map((s) => ({ statement: s, reason: '-', verdict: contexts.some((c) => c.includes(s)) ? 1 : 0 })) });
    }
    if (format?.name.startsWith('context_precision')) {
      const reference = /Reference answer: (.*)$/m.exec(prompt)![1]!;
      const context = /^Context: (.*)$/m.exec(prompt)![1]!;
      return JSON.stringify({ reason: '-', verdict: context.includes(reference) ? 1 : 0 });
    }
    if (format?.name === 'answer_relevancy_questions') {
      const n = Number(/Write (\d+) different questions/.exec(prompt)![1]);
      const answer = /Answer: (.*)$/m.exec(prompt)![1]!;
      return JSON.stringify({ questions: Array.from({ length: n }, () => answer), noncommittal: /don't know/.test(answer) ? 1 : 0 });
    }
    throw new Error(`unexpected judge step ${format?.name}`);
  }
}

/** Two-dimensional embeddings from a table (unknown texts: [0, 1]); counts calls. */
class TableEmbedder implements Embedder {
  readonly model = 'table';
  readonly dimensions = 2;
  calls: string[][] = [];
  constructor(private readonly table: Record<string, [number, number]>) {}
  async embed(texts: readonly string[]) {
    this.calls.push([...texts]);
    return fromRows(texts.map((t) => this.table[t] ?? [0, 1]));
  }
}

const baseConfig = (over: Partial<PromptEvalConfigInput> = {}) => parsePromptEvalConfig({ testSet: 'prompts/geo-answer/tests.jsonl', judge: { model: 'judge' }, ...over });

const approx = (actual: number, expected: number, what: string) => assert.ok(Math.abs(actual - expected) < 1e-12, `${what}: ${actual} != ${expected}`);

describe('prompt evaluation', function () {
  describe('JSONL test set', function () {
    it('parses one case per line, skipping blank and // lines; ids default to line-<n>', function () {
      const cases = parsePromptTestSet(`// geo\n${JSON.stringify(CASES[0])}\n\n${JSON.stringify({ variables: { question: 'q' } })}\n`, 'tests.jsonl');
      assert.deepEqual(
        cases.map((c) => [c.id, c.line]),
        [
          ['paris', 2],
          ['line-4', 4],
        ],
      );
    });

    it('names the source, line and field of every problem at once', function () {
      const text = [
        JSON.stringify(CASES[0]),
        '{"variables": {"question": "q"}', // not JSON
        JSON.stringify({ variables: { q: 'x' }, expected: {} }), // unknown field
        JSON.stringify({ variables: { q: 'x' }, expect: { regex: '(' } }),
        JSON.stringify({ variables: { q: 'x' }, expect: {} }),
        JSON.stringify({ variables: { q: null } }),
        JSON.stringify({ id: 'paris', variables: {} }),
        JSON.stringify({ variables: {}, contexts: [] }),
      ].join('\n');
      assert.throws(
        () => parsePromptTestSet(text, 'prompts/geo/tests.jsonl'),
        (e: unknown) => {
          assert.ok(e instanceof ForgelineError && e.terminal && e.type === ErrorType.InvalidSpec);
          const m = e.message;
          assert.match(m, /prompts\/geo\/tests\.jsonl:2: not JSON/);
          assert.match(m, /tests\.jsonl:3: \(case\): Unrecognized key: "expected"/);
          assert.match(m, /tests\.jsonl:4: expect\.regex: expect\.regex: not a valid regular expression/);
          assert.match(m, /tests\.jsonl:5: expect: expect: give at least one of contains/);
          assert.match(m, /tests\.jsonl:6: variables\.q: expected a string, number or boolean/);
          assert.match(m, /tests\.jsonl:7: id: 'paris' is already used on line 1/);
          assert.match(m, /tests\.jsonl:8: contexts: contexts: give at least one context/);
          return true;
        },
      );
    });

    it('refuses an empty test set, saying what a line looks like', function () {
      assert.throws(() => parsePromptTestSet('\n// nothing\n', 't.jsonl'), /t\.jsonl has no cases: write one JSON object per line/);
    });
  });

  describe('config', function () {
    it('defaults: 3 runs, 95%, maxRegression 0.05, judge attempts 3, failure rate 0.1, concurrency 4', function () {
      const c = baseConfig();
      assert.deepEqual([c.runs, c.confidence, c.gates.maxRegression, c.judge.maxAttempts, c.judge.maxFailureRate, c.concurrency, c.metrics], [3, 0.95, 0.05, 3, 0.1, 4, undefined]);
    });

    it('names each bad field and the fix', function () {
      assert.throws(() => parsePromptEvalConfig({ testSet: '', runs: 1, judge: { model: 'Big Judge' }, metrics: ['bleu'], gates: { task: 1.5 } }), (e: unknown) => {
        const m = (e as Error).message;
        assert.match(m, /^invalid prompt evaluation config: testSet, runs, judge\.model, metrics\.0, gates\.task/);
        assert.match(m, /runs: runs: at least 2 \(a confidence interval needs two runs\)/);
        assert.match(m, /judge\.model: use a gateway model alias/);
        return true;
      });
    });
  });

  describe('task metric', function () {
    it('known answers for each expectation', function () {
      assert.equal(checkExpectations('Paris is in France.', { contains: ['France', 'Paris'] }), undefined);
      assert.equal(checkExpectations('Paris is in France.', { contains: ['Spain'], notContains: ['Paris'] }), 'answer does not contain "Spain"; contains "Paris"');
      assert.equal(checkExpectations(' 42 \n', { regex: '^\\s*\\d+\\s*$', equals: '42' }), undefined);
      assert.equal(checkExpectations('forty-two', { regex: '^\\d+$' }), 'answer does not match /^\\d+$/u');
      assert.equal(checkExpectations('42', { equals: '43' }), 'answer is not equal to "43"');
      assert.equal(checkExpectations('```json\n{"a": 1}\n```', { json: true }), undefined);
      assert.equal(checkExpectations('{"a": 1', { json: true }), 'answer is not JSON');
    });

    it('messages: few-shot examples as user/assistant turns, then the rendered case', function () {
      assert.deepEqual(promptMessages(candidate.spec, { context: 'C', question: 'Q?' }), [
        { role: 'user', content: 'Context: Rome is in Italy.\nQuestion: Where is Rome?' },
        { role: 'assistant', content: 'In Italy.' },
        { role: 'user', content: 'Context: C\nQuestion: Q?' },
      ]);
    });
  });

  describe('orchestration with a scripted judge', function () {
    // Candidate runs: faithfulness per case (paris, berlin) = (1, 1/2), (1/2, 1), (0, 1) -> runs 0.75, 0.75, 0.5.
    // Task (contains France, contains Germany, digits only) = (1,1,1), (1,1,1), (0,1,0) -> 1, 1, 1/3.
    // Context precision does not depend on the answer: paris [1,0] -> 1, berlin [0,1] -> 1/2 -> 0.75 every run.
    const CANDIDATE_ANSWERS: Answers['candidate'] = [
      { paris: 'Paris is in France.', berlin: 'Berlin is in Germany. Berlin is big.', count: '42' },
      { paris: 'Paris is in France. Paris is old.', berlin: 'Berlin is in Germany.', count: '42' },
      { paris: 'Paris is in Spain.', berlin: 'Berlin is in Germany.', count: 'forty-two' },
    ];
    const deps = (answers: Answers, judge: Judge = new ScriptedJudge(), seen: PromptGeneration[] = []): PromptEvalDeps => ({ generate: scriptedGenerate(answers, seen), judge, embedder: new TableEmbedder({}) });

    it('scores each run exactly, makes t intervals over the runs, and gates on their lower bounds', async function () {
      const seen: PromptGeneration[] = [];
      const config = baseConfig({ metrics: ['faithfulness', 'context_precision', 'task'], gates: { faithfulness: 0.2, contextPrecision: 0.7, task: 0.5 }, concurrency: 3 });
      const r = await evaluatePrompt({ candidate, cases: parsePromptTestSet(jsonl(CASES)), config }, deps({ candidate: CANDIDATE_ANSWERS, production: [] }, new ScriptedJudge(), seen));

      assert.deepEqual(r.metrics.faithfulness!.runs, [0.75, 0.75, 0.5]);
      assert.deepEqual(r.metrics.faithfulness!.candidate, meanConfidenceInterval([0.75, 0.75, 0.5], 0.95));
      approx(r.metrics.faithfulness!.candidate.mean, 2 / 3, 'faithfulness mean');
      // half-width t(0.975, 2) * s / sqrt(3), s = sqrt(3/144)
      approx(r.metrics.faithfulness!.candidate.high - r.metrics.faithfulness!.candidate.mean, 4.302652729749464 * Math.sqrt(3 / 144) / Math.sqrt(3), 'faithfulness half-width');
      assert.deepEqual(r.metrics.task!.runs, [1, 1, 1 / 3]);
      assert.deepEqual(r.metrics.context_precision!.runs, [0.75, 0.75, 0.75]);
      assert.deepEqual([r.metrics.context_precision!.candidate.low, r.metrics.context_precision!.candidate.high], [0.75, 0.75]);
      assert.deepEqual([r.metrics.faithfulness!.cases, r.metrics.context_precision!.cases, r.metrics.task!.cases], [2, 2, 3]);
      assert.equal(r.metrics.answer_relevancy, undefined);

      assert.deepEqual(
        r.gates.map((g) => [g.gate, g.kind, g.passed]),
        [
          ['faithfulness >= 0.2', 'threshold', true],
          ['context_precision >= 0.7', 'threshold', true],
          ['task >= 0.5', 'threshold', false],
          ['regression vs production', 'regression', true],
        ],
      );
      assert.match(r.gates[2]!.reason, /^task: mean 0\.7778, 95% CI \[-0\.\d+, \d\.\d+\] \(n=3\); lower bound < threshold 0\.5$/);
      assert.match(r.gates[3]!.reason, /no production version of this prompt yet: absolute \(threshold\) gates only/);
      assert.equal(r.passed, false);
      assert.deepEqual([r.cases, r.runs, r.judgeFailures, r.undefinedMetrics], [3, 3, 0, []]);
      assert.deepEqual(r.failedCases, [
        { id: 'paris', version: 'candidate', run: 2, reason: 'task: answer does not contain "France"' },
        { id: 'count', version: 'candidate', run: 2, reason: 'task: answer does not match /^\\d+$/u' },
      ]);
      // Generation: the prompt's alias and params as bound, few-shot turns first.
      assert.equal(seen.length, 9);
      assert.deepEqual(seen[0]!.params, { temperature: 0.7, maxTokens: 64 });
      assert.equal(seen[0]!.model, 'tiny-demo');
      assert.equal(seen[0]!.messages.length, 3);
      // The result is JSON: it goes into workflow history.
      assert.deepEqual(JSON.parse(JSON.stringify(r)), r);
    });

    const good = { paris: 'Paris is in France.', berlin: 'Berlin is in Germany.', count: '42' };
    const weak = { paris: 'Paris is in Spain.', berlin: 'Berlin is in Germany.', count: 'many' };

    it('regression gate passes when the candidate is at least as good as production on the same cases', async function () {
      const config = baseConfig({ metrics: ['faithfulness', 'task'] });
      const r = await evaluatePrompt({ candidate, production, cases: parsePromptTestSet(jsonl(CASES)), config }, deps({ candidate: [good, good, good], production: [good, weak, good] }));
      assert.deepEqual(r.metrics.task!.runs, [1, 1, 1]);
      assert.deepEqual(r.metrics.task!.productionRuns, [1, 1 / 3, 1]);
      assert.deepEqual(r.metrics.faithfulness!.productionRuns, [1, 0.5, 1]);
      assert.deepEqual(r.production, { version: 'bbbbbbbbbbbb' });
      assert.deepEqual(
        r.gates.map((g) => [g.gate, g.passed]),
        [
          ['faithfulness vs production', true],
          ['task vs production', true],
        ],
      );
      assert.match(r.gates[1]!.reason, /task: candidate CI \[1\.0000, 1\.0000\] \(mean 1\.0000\) vs production mean 0\.7778 - 0\.05: lower bound >= 0\.7278/);
      assert.equal(r.passed, true);
      assert.equal(r.failedCases.filter((f) => f.version === 'production').length, 2);
    });

    it('regression gate fails when the candidate is worse than production by more than maxRegression', async function () {
      const config = baseConfig({ metrics: ['task'], gates: { maxRegression: 0.1 } });
      const r = await evaluatePrompt({ candidate, production, cases: parsePromptTestSet(jsonl(CASES)), config }, deps({ candidate: [weak, good, weak], production: [good, good, good] }));
      assert.deepEqual(r.metrics.task!.runs, [1 / 3, 1, 1 / 3]);
      assert.deepEqual(r.metrics.task!.production, meanConfidenceInterval([1, 1, 1]));
      assert.deepEqual(
        r.gates.map((g) => [g.gate, g.kind, g.passed]),
        [['task vs production', 'regression', false]],
      );
      assert.match(r.gates[0]!.reason, /vs production mean 1\.0000 - 0\.1: lower bound < 0\.9000/);
      assert.equal(r.passed, false);
    });

    it('a production version that cannot render the test set is not compared, and the gate says so', async function () {
      const other = { name: 'geo-answer', version: 'cccccccccccc', spec: parsePromptSpec({ ...SPEC, template: '{{topic}}', variables: { topic: { type: 'string' } }, examples: [] }) };
      const r = await evaluatePrompt({ candidate, production: other, cases: parsePromptTestSet(jsonl(CASES)), config: baseConfig({ metrics: ['task'] }) }, deps({ candidate: [good, good, good], production: [] }));
      assert.equal(r.production, undefined);
      assert.equal(r.metrics.task!.production, undefined);
      assert.equal(r.gates.length, 1);
      assert.match(r.gates[0]!.reason, /^production cccccccccccc cannot render the test set \(case paris \(line 1\): cannot render prompt: variable 'context' is not declared.*; and 2 more\): not compared, absolute \(threshold\) gates only$/);
    });

    it('answer relevancy: cosine of the judge questions with the question, embedded in few batched calls', async function () {
      const table: Record<string, [number, number]> = {
        'Where is Paris?': [1, 0],
        'Where is Berlin?': [0, 1],
        'Paris is in France.': [0.6, 0.8],
        'Berlin is in Germany.': [0.8, 0.6],
        'How many?': [1, 0],
        '42': [0, 1],
      };
      const embedder = new TableEmbedder(table);
      const config = baseConfig({ metrics: ['answer_relevancy'], judge: { model: 'judge', questions: 2 }, concurrency: 4 });
      const r = await evaluatePrompt({ candidate, cases: parsePromptTestSet(jsonl(CASES)), config }, { generate: scriptedGenerate({ candidate: [good, good, good], production: [] }), judge: new ScriptedJudge(), embedder });
      // (0.6 + 0.6 + 0) / 3 per run
      // float32 embeddings: 0.6 to ~1e-8
      assert.equal(r.metrics.answer_relevancy!.runs.length, 3);
      for (const x of r.metrics.answer_relevancy!.runs) assert.ok(Math.abs(x - 0.4) < 1e-6, `answer relevancy run ${x} != 0.4`);
      const texts = embedder.calls.flat();
      assert.equal(new Set(texts).size, texts.length, 'every text is embedded once (cached across runs)');
      assert.ok(embedder.calls.length < 9, `concurrent cases share embed calls: ${embedder.calls.length} calls for 9 case runs`);
    });

    it('a case the judge cannot judge is reported and left out of the mean when few fail', async function () {
      const config = baseConfig({ metrics: ['faithfulness'], judge: { model: 'judge', maxAttempts: 2, maxFailureRate: 0.5 } });
      const judge = new ScriptedJudge(/Question: Where is Berlin\?/);
      const r = await evaluatePrompt({ candidate, cases: parsePromptTestSet(jsonl(CASES)), config }, deps({ candidate: CANDIDATE_ANSWERS, production: [] }, judge));
      // Only paris is judged: 1, 1/2, 0.
      assert.deepEqual(r.metrics.faithfulness!.runs, [1, 0.5, 0]);
      assert.equal(r.judgeFailures, 3);
      assert.deepEqual(
        r.failedCases.map((f) => [f.id, f.run]),
        [
          ['berlin', 0],
          ['berlin', 1],
          ['berlin', 2],
        ],
      );
      assert.match(r.failedCases[0]!.reason, /^faithfulness: judge failed at faithfulness\/statements: no valid JSON answer in 2 attempt\(s\)/);
      assert.equal(judge.formats.filter((f) => f === 'faithfulness_statements').length, 3 + 3 * 2, 'each failed judgement was asked maxAttempts times');
    });

    it('more judge failures than judge.maxFailureRate fail the evaluation with a terminal JudgeFailed', async function () {
      const config = baseConfig({ metrics: ['faithfulness'], judge: { model: 'judge', maxAttempts: 1, maxFailureRate: 0.2 } });
      await assert.rejects(
        evaluatePrompt({ candidate, cases: parsePromptTestSet(jsonl(CASES)), config }, deps({ candidate: CANDIDATE_ANSWERS, production: [] }, new ScriptedJudge(/Question: Where is Berlin\?/))),
        (e: unknown) => e instanceof PromptJudgeFailedError && e.terminal && e.type === ErrorType.JudgeFailed && /judge judge failed 3 of 6 judgements of the candidate prompt \(50\.0% > judge\.maxFailureRate 20%\)/.test(e.message),
      );
    });

    it('a metric with fewer than 2 scored runs has no interval, and its gate fails saying why', async function () {
      const silent = { paris: '   ', berlin: '', count: '42' };
      const config = baseConfig({ metrics: ['faithfulness', 'task'], gates: { faithfulness: 0.5 } });
      const r = await evaluatePrompt({ candidate, cases: parsePromptTestSet(jsonl(CASES)), config }, deps({ candidate: [silent, silent, silent], production: [] }));
      assert.equal(r.metrics.faithfulness, undefined);
      assert.deepEqual(r.undefinedMetrics, [{ metric: 'faithfulness', version: 'candidate', reason: r.undefinedMetrics[0]!.reason }]);
      assert.match(r.undefinedMetrics[0]!.reason, /only 0 of 3 runs produced a score/);
      assert.deepEqual(r.gates[0]!.passed, false);
      assert.equal(r.passed, false);
    });

    it('input errors before any model call: a gate without a metric, a metric the test set cannot feed, a case that does not render', async function () {
      const never = { generate: async () => assert.fail('no generation expected'), judge: new ScriptedJudge(), embedder: new TableEmbedder({}) };
      const noRag = parsePromptTestSet(jsonl([CASES[2]]));
      await assert.rejects(evaluatePrompt({ candidate, cases: noRag, config: baseConfig({ gates: { faithfulness: 0.5 } }) }, never), /gates\.faithfulness: 'faithfulness' needs cases with contexts, and no case has them/);
      await assert.rejects(evaluatePrompt({ candidate, cases: noRag, config: baseConfig({ metrics: ['context_precision'] }) }, never), /metrics: 'context_precision' needs cases with contexts and reference/);
      await assert.rejects(evaluatePrompt({ candidate, cases: parsePromptTestSet(jsonl(CASES)), config: baseConfig({ metrics: ['task'], gates: { faithfulness: 0.5 } }) }, never), /gates\.faithfulness: 'faithfulness' is not among metrics \(task\)/);
      const bad = parsePromptTestSet(`${JSON.stringify(CASES[0])}\n${JSON.stringify({ id: 'typo', variables: { context: 'c', qustion: 'q' } })}`);
      await assert.rejects(evaluatePrompt({ candidate, cases: bad, config: baseConfig() }, never), (e: unknown) => e instanceof ForgelineError && e.terminal && /case typo \(line 2\): cannot render prompt: variable 'qustion' is not declared/.test(e.message));
    });
  });

  describe('BatchingEmbedder', function () {
    it('serves concurrent calls with one inner call and caches texts', async function () {
      const inner = new TableEmbedder({ a: [1, 0], b: [0, 1] });
      const e = new BatchingEmbedder(inner);
      const [x, y] = await Promise.all([e.embed(['a', 'b']), e.embed(['b', 'c'])]);
      assert.deepEqual(inner.calls, [['a', 'b', 'c']]);
      assert.deepEqual(Array.from(x.data), [1, 0, 0, 1]);
      assert.deepEqual(Array.from(y.data), [0, 1, 0, 1]);
      await e.embed(['a']);
      assert.equal(inner.calls.length, 1);
    });
  });

  describe('evaluatePromptVersion activity', function () {
    let dir: string;
    beforeEach(() => (dir = mkdtempSync(path.join(os.tmpdir(), 'forgeline-prompt-eval-'))));
    afterEach(() => rmSync(dir, { recursive: true, force: true }));

    const input = (over: Partial<PromptEvalInput> = {}): PromptEvalInput => ({
      releaseId: 'prompt-release/geo-answer/abc123',
      prompt: { name: 'geo-answer', version: 'aaaaaaaaaaaa', spec: SPEC },
      production: { version: 'bbbbbbbbbbbb', spec: production.spec },
      config: { testSet: 'prompts/geo-answer/tests.jsonl', judge: { model: 'judge' }, metrics: ['task', 'faithfulness'], runs: 2 },
      testSet: { text: jsonl(CASES), source: 'prompts/geo-answer/tests.jsonl@abc123' },
      ...over,
    });
    const good = { paris: 'Paris is in France.', berlin: 'Berlin is in Germany.', count: '42' };
    const models = (urls: Array<string | undefined>): PromptEvalModels => ({
      connect(url) {
        urls.push(url);
        return { generate: scriptedGenerate({ candidate: [good, good], production: [good, good] }), judge: () => new ScriptedJudge() };
      },
    });

    it('evaluates, heartbeats progress, and logs one tracker run per version in the release group', async function () {
      const env = new MockActivityEnvironment({}, { logger: new DefaultLogger('ERROR') });
      const beats: unknown[] = [];
      env.on('heartbeat', (d: unknown) => beats.push(d));
      const urls: Array<string | undefined> = [];
      const tracker = new LocalTracker({ home: dir });
      const { evaluatePromptVersion } = createPromptEvalActivities({ tracker, trackerProject: 'forgeline', embedder: new TableEmbedder({}), promptModels: models(urls) });
      const r = (await env.run(evaluatePromptVersion, input({ gatewayUrl: 'http://127.0.0.1:9999' }))) as PromptEvalResult;
      assert.equal(r.passed, true);
      assert.deepEqual(urls, ['http://127.0.0.1:9999']);
      assert.deepEqual(Object.keys(r.metrics).sort(), ['faithfulness', 'task']);
      // 2 versions x 2 runs x 3 cases
      const last = beats.at(-1) as { done: number; total: number };
      assert.deepEqual([last.done, last.total], [12, 12]);
      const runId = promptEvalRunId('prompt-release/geo-answer/abc123', 'aaaaaaaaaaaa');
      assert.equal(runId, 'prompt-release-geo-answer-abc123-eval-aaaaaaaaaaaa');
      assert.equal(r.trackerRun?.id, runId);
      const lines = (id: string) => readFileSync(path.join(dir, 'runs', 'forgeline', `${id}.jsonl`), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
      const cand = JSON.stringify(lines(runId));
      assert.match(cand, /"group":"prompt-release-geo-answer-abc123"/);
      assert.match(cand, /"templateDigest":"[0-9a-f]{64}"/);
      assert.match(cand, /prompt_eval_gates/);
      assert.match(cand, /"task\/mean":1/);
      const prod = JSON.stringify(lines(promptEvalRunId('prompt-release/geo-answer/abc123', 'bbbbbbbbbbbb')));
      assert.match(prod, /"role":"production"/);
      assert.doesNotMatch(prod, /prompt_eval_gates/);
    });

    it('a retried attempt resumes from the last heartbeat: finished cases are not generated or judged again', async function () {
      const first = new MockActivityEnvironment({}, { logger: new DefaultLogger('ERROR') });
      const beats: Array<{ done: number; completed: CaseRunRecord[] }> = [];
      first.on('heartbeat', (d: { done: number; completed: CaseRunRecord[] }) => beats.push(d));
      const deps = { tracker: new LocalTracker({ home: dir }), trackerProject: 'forgeline', embedder: new TableEmbedder({}), promptModels: models([]) };
      const full = (await first.run(createPromptEvalActivities(deps).evaluatePromptVersion, input())) as PromptEvalResult;
      // The attempt died after 5 of 12 tasks: its last heartbeat then.
      const at5 = beats.find((b) => b.done === 5)!;
      assert.equal(at5.completed.length, 5);
      let generated = 0;
      const counting: PromptEvalModels = {
        connect(url) {
          const m = models([]).connect(url);
          return { generate: (r) => (generated++, m.generate(r)), judge: m.judge };
        },
      };
      const retry = new MockActivityEnvironment({ heartbeatDetails: JSON.parse(JSON.stringify(at5)), attempt: 2 }, { logger: new DefaultLogger('ERROR') });
      const resumed = (await retry.run(createPromptEvalActivities({ ...deps, promptModels: counting }).evaluatePromptVersion, input())) as PromptEvalResult;
      assert.equal(generated, 12 - 5);
      assert.deepEqual(resumed.metrics, full.metrics);
      assert.deepEqual(resumed.gates, full.gates);
    });

    it('bad input is a non-retryable InvalidSpec naming the field; a tracker outage leaves the result standing', async function () {
      const env = new MockActivityEnvironment({}, { logger: new DefaultLogger('ERROR') });
      const broken: Tracker = { kind: 'local', openRun: async () => Promise.reject(new Error('tracker down')) };
      const { evaluatePromptVersion } = createPromptEvalActivities({ tracker: broken, trackerProject: 'forgeline', embedder: new TableEmbedder({}), promptModels: models([]) });
      await assert.rejects(env.run(evaluatePromptVersion, input({ config: { testSet: 'x', judge: { model: 'judge' }, runs: 0 } })), (e: unknown) => e instanceof ApplicationFailure && e.nonRetryable === true && e.type === ErrorType.InvalidSpec && /config\.runs: runs: at least 2/.test(e.message));
      await assert.rejects(env.run(evaluatePromptVersion, input({ prompt: { name: 'other-prompt', version: 'aaaaaaaaaaaa', spec: SPEC } })), (e: unknown) => e instanceof ApplicationFailure && e.nonRetryable === true && /prompt\.spec\.name: the spec is prompt 'geo-answer', not 'other-prompt'/.test(e.message));
      await assert.rejects(env.run(evaluatePromptVersion, input({ testSet: { text: '{"variables": {}', source: 'tests.jsonl' } })), (e: unknown) => e instanceof ApplicationFailure && e.nonRetryable === true && /tests\.jsonl:1: not JSON/.test(e.message));
      const r = (await env.run(evaluatePromptVersion, input())) as PromptEvalResult;
      assert.equal(r.trackerRun, undefined);
      assert.equal(r.passed, true);
    });

    it('without the gateway configured it fails at once, non-retryable, saying what is missing', async function () {
      const env = new MockActivityEnvironment({}, { logger: new DefaultLogger('ERROR') });
      const { evaluatePromptVersion } = createPromptEvalActivities({ tracker: new LocalTracker({ home: dir }), trackerProject: 'forgeline', embedder: new TableEmbedder({}) });
      await assert.rejects(env.run(evaluatePromptVersion, input()), (e: unknown) => e instanceof ApplicationFailure && e.nonRetryable === true && e.type === ErrorType.ServingNotConfigured && /FORGELINE_GATEWAY_CLIENT_KEY/.test(e.message));
    });
  });
});
