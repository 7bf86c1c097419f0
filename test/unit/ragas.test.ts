import assert from 'node:assert/strict';
import { fromRows } from '../../src/drift/embeddings';
import {
  answerRelevancy,
  averagePrecision,
  averageRuns,
  ciGate,
  contextPrecision,
  cosineSimilarity,
  faithfulness,
  type Judge,
  JudgeFailureError,
  meanConfidenceInterval,
  MetricInputError,
  regressionGate,
  studentTCdf,
  studentTQuantile,
} from '../../src/evaluation/ragas';
import type { Embedder } from '../../src/ports/embedder';

/** A judge that answers from a script, in order, and records every prompt it was given. */
class ScriptedJudge implements Judge {
  readonly prompts: string[] = [];
  constructor(private readonly answers: string[]) {}
  complete(prompt: string): Promise<string> {
    this.prompts.push(prompt);
    const next = this.answers.shift();
    if (next === undefined) throw new Error(`scripted judge ran out of answers at prompt ${this.prompts.length}`);
    return Promise.resolve(next);
  }
  get remaining(): number {
    return this.answers.length;
  }
}

/** An embedder with fixed vectors per text (for the math; a real model is tested elsewhere). */
function tableEmbedder(table: Record<string, number[]>): Embedder {
  return {
    model: 'table',
    dimensions: 2,
    embed: (texts) =>
      Promise.resolve(
        fromRows(
          texts.map((t) => {
            const v = table[t];
            if (!v) throw new Error(`no vector for ${t}`);
            return v;
          }),
        ),
      ),
  };
}

const close = (actual: number, expected: number, tol = 1e-9) => assert.ok(Math.abs(actual - expected) <= tol, `${actual} is not within ${tol} of ${expected}`);
const json = (v: unknown) => JSON.stringify(v);

const sample = {
  question: 'Where is the Eiffel Tower?',
  answer: 'The Eiffel Tower is in Paris. It was built in 1850.',
  contexts: ['The Eiffel Tower is a wrought-iron tower in Paris, completed in 1889.'],
};

describe('Ragas metrics (scripted judge with fixed JSON answers: tests the metric math and parsing)', function () {
  describe('faithfulness', function () {
    it('scores supported statements / statements: 1 of 2 supported gives 0.5', async function () {
      const judge = new ScriptedJudge([
        json({ statements: ['The Eiffel Tower is in Paris.', 'The Eiffel Tower was built in 1850.'] }),
        json({
          verdicts: [
            { statement: 'The Eiffel Tower is in Paris.', reason: 'stated', verdict: 1 },
            { statement: 'The Eiffel Tower was built in 1850.', reason: 'context says 1889', verdict: 0 },
          ],
        }),
      ]);
      const r = await faithfulness(judge, sample);
      assert.equal(r.score, 0.5);
      assert.equal(judge.prompts.length, 2);
      assert.match(judge.prompts[1]!, /completed in 1889/, 'the verification prompt carries the context');
      assert.match(judge.prompts[1]!, /2\. The Eiffel Tower was built in 1850\./);
    });

    it('accepts an answer in a ```json fence; an answer without statements has no score (null, Ragas NaN), not 0', async function () {
      const judge = new ScriptedJudge(['```json\n{"statements": []}\n```']);
      const r = await faithfulness(judge, { ...sample, answer: 'Hmm.' });
      assert.equal(r.score, null);
    });

    it('retries malformed judge output with the problem stated, then scores', async function () {
      const judge = new ScriptedJudge([
        'Sure! Here are the statements: ...',
        json({ statements: ['The Eiffel Tower is in Paris.'] }),
        json({ verdicts: [{ statement: 'a', reason: 'r', verdict: 'yes' }] }),
        json({ verdicts: [{ statement: 'a', reason: 'r', verdict: 1 }, { statement: 'b', reason: 'r', verdict: 1 }] }),
        json({ verdicts: [{ statement: 'a', reason: 'r', verdict: 1 }] }),
      ]);
      const r = await faithfulness(judge, sample, { maxAttempts: 3 });
      assert.equal(r.score, 1);
      assert.match(judge.prompts[1]!, /previous answer was rejected: not JSON/);
      assert.match(judge.prompts[3]!, /wrong shape: verdicts\.0\.verdict/);
      assert.match(judge.prompts[4]!, /expected 1 verdicts \(one per statement\), got 2/);
    });

    it('after maxAttempts malformed answers it throws a JudgeFailureError (never a silent 0)', async function () {
      const judge = new ScriptedJudge(['nope', '{"statements": "not a list"}']);
      await assert.rejects(faithfulness(judge, sample, { maxAttempts: 2 }), (err: unknown) => {
        assert.ok(err instanceof JudgeFailureError);
        assert.equal(err.step, 'faithfulness/statements');
        assert.equal(err.attempts, 2);
        assert.equal(err.terminal, false);
        assert.match(err.message, /statements: /);
        return true;
      });
      assert.equal(judge.remaining, 0);
    });

    it('rejects empty input naming the field', async function () {
      await assert.rejects(faithfulness(new ScriptedJudge([]), { ...sample, contexts: [] }), (e: unknown) => e instanceof MetricInputError && /contexts: expected at least one/.test(e.message));
      await assert.rejects(faithfulness(new ScriptedJudge([]), { ...sample, answer: '  ' }), /answer: expected non-empty text/);
    });
  });

  describe('answer relevancy', function () {
    const embedder = tableEmbedder({
      'Where is the Eiffel Tower?': [1, 0],
      'In which city is the Eiffel Tower?': [0.6, 0.8],
      'Where can I find the Eiffel Tower?': [1, 0],
      'What is the capital of France?': [0, 1],
    });

    it('is the mean cosine similarity of generated questions with the original: (0.6 + 1 + 0) / 3', async function () {
      const judge = new ScriptedJudge([json({ questions: ['In which city is the Eiffel Tower?', 'Where can I find the Eiffel Tower?', 'What is the capital of France?'], noncommittal: 0 })]);
      const r = await answerRelevancy(judge, embedder, sample, { questions: 3 });
      close(r.score!, 1.6 / 3, 1e-6); // float32 embeddings
      const sims = r.details.similarities as number[];
      close(sims[0]!, 0.6, 1e-6);
      close(sims[1]!, 1, 1e-6);
      close(sims[2]!, 0, 1e-6);
    });

    it('scores a noncommittal answer 0, as Ragas does, whatever the similarities', async function () {
      const judge = new ScriptedJudge([json({ questions: ['Where can I find the Eiffel Tower?'], noncommittal: 1 })]);
      const r = await answerRelevancy(judge, embedder, { question: sample.question, answer: "I don't know." }, { questions: 1 });
      assert.equal(r.score, 0);
      assert.equal(r.details.noncommittal, true);
    });

    it('asks again when the judge gives the wrong number of questions', async function () {
      const judge = new ScriptedJudge([json({ questions: ['Where can I find the Eiffel Tower?'], noncommittal: 0 }), json({ questions: ['Where can I find the Eiffel Tower?', 'Where can I find the Eiffel Tower?'], noncommittal: 0 })]);
      const r = await answerRelevancy(judge, embedder, sample, { questions: 2 });
      assert.equal(r.score, 1);
      assert.match(judge.prompts[1]!, /expected 2 questions, got 1/);
    });

    it('cosine similarity is scale-free and checks lengths', function () {
      close(cosineSimilarity([3, 4], [6, 8]), 1);
      close(cosineSimilarity([1, 0], [0, 2]), 0);
      assert.throws(() => cosineSimilarity([1], [1, 2]), MetricInputError);
    });
  });

  describe('context precision', function () {
    it('average precision of verdicts [1, 0, 1] is (1/1 + 2/3) / 2 = 5/6', async function () {
      const judge = new ScriptedJudge([json({ reason: 'r', verdict: 1 }), json({ reason: 'r', verdict: 0 }), json({ reason: 'r', verdict: 1 })]);
      const r = await contextPrecision(judge, { question: sample.question, reference: 'Paris', contexts: ['a', 'b', 'c'] });
      close(r.score!, 5 / 6);
      assert.equal(judge.prompts.length, 3);
      assert.match(judge.prompts[1]!, /Context: b/);
    });

    it('known answers: [0,1] = 0.5, [0,0] = 0, [1,1,0] = 1, [0,0,1,1] = (1/3 + 2/4)/2', function () {
      assert.equal(averagePrecision([0, 1]), 0.5);
      assert.equal(averagePrecision([0, 0]), 0);
      assert.equal(averagePrecision([1, 1, 0]), 1);
      close(averagePrecision([0, 0, 1, 1]), (1 / 3 + 2 / 4) / 2);
    });
  });

  describe('repeated runs and gates', function () {
    it('Student t quantiles and CDF match scipy.stats.t (1.17.1) to 1e-9', function () {
      close(studentTQuantile(0.975, 2), 4.302652729749462);
      close(studentTQuantile(0.975, 9), 2.262157162798205);
      close(studentTQuantile(0.995, 4), 4.604094871349992);
      close(studentTQuantile(0.025, 9), -2.262157162798205);
      close(studentTCdf(1.5, 3), 0.8847080673775886);
    });

    it('95% CI of [0.5, 0.7, 0.9]: mean 0.7, sd 0.2, half-width t(0.975, 2)·0.2/√3 = 0.496827542350066', function () {
      const ci = meanConfidenceInterval([0.5, 0.7, 0.9]);
      close(ci.mean, 0.7);
      close(ci.std, 0.2);
      close(ci.low, 0.7 - 0.49682754235006604);
      close(ci.high, 0.7 + 0.49682754235006604);
      assert.throws(() => meanConfidenceInterval([0.5]), /at least 2/);
    });

    it('averageRuns counts judge failures and undefined runs apart from the scores', async function () {
      const results: Array<number | null | Error> = [0.5, new JudgeFailureError('faithfulness/statements', 3, 'not JSON'), 0.7, null, 0.9];
      const summary = await averageRuns((run) => {
        const r = results[run]!;
        return r instanceof Error ? Promise.reject(r) : Promise.resolve(r);
      }, 5);
      assert.deepEqual(summary.scores, [0.5, 0.7, 0.9]);
      assert.equal(summary.undefinedRuns, 1);
      assert.equal(summary.judgeFailures.length, 1);
      close(summary.interval.mean, 0.7);
      close(summary.interval.low, 0.7 - 0.49682754235006604);
    });

    it('averageRuns refuses to make an interval from fewer than 2 scores, and passes other errors through', async function () {
      await assert.rejects(averageRuns(() => Promise.reject(new JudgeFailureError('s', 3, 'x')), 3), /only 0 of 3 runs produced a score \(3 judge failure/);
      await assert.rejects(averageRuns(() => Promise.reject(new Error('connection refused')), 3), /connection refused/);
      await assert.rejects(averageRuns(() => Promise.resolve(1), 1), /runs 1: expected a whole number >= 2/);
    });

    it('ciGate passes only when the lower bound clears the threshold, not the mean', function () {
      const ci = meanConfidenceInterval([0.5, 0.7, 0.9]); // [0.2032, 1.1968]
      assert.equal(ciGate('faithfulness', ci, 0.6).passed, false, 'mean 0.7 > 0.6 but the lower bound is not');
      assert.equal(ciGate('faithfulness', ci, 0.2).passed, true);
      assert.match(ciGate('faithfulness', ci, 0.6).reason, /95% CI \[0\.2032, 1\.1968\] \(n=3\); lower bound < threshold 0\.6/);
    });

    it('regressionGate compares the candidate lower bound with production mean minus the tolerated drop', function () {
      const production = meanConfidenceInterval([0.8, 0.8, 0.82, 0.78]);
      const tight = meanConfidenceInterval([0.79, 0.8, 0.81, 0.8]); // low ≈ 0.787
      assert.equal(regressionGate('faithfulness', tight, production).passed, false);
      assert.equal(regressionGate('faithfulness', tight, production, 0.02).passed, true);
      assert.throws(() => regressionGate('f', tight, production, -1), /maxDrop -1/);
    });
  });
});
