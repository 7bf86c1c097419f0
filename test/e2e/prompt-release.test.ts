import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { devStackEnv, forgeline, processesMentioning, tempHome, type CliProcess } from '../helpers/processes';

/**
 * A prompt release end to end on `forgeline dev`'s own stack: the Temporal dev server, the real
 * control worker (promptReleaseWorkflow and its activities, evaluatePromptVersion included), our
 * gateway and a real vLLM on CPU serving the tiny base model as `tiny-demo`. A load loop sends
 * client requests through `/v1/prompts/faq/completions` all along, as an application would.
 *
 * 1. The first release of `faq` is evaluated (generation through the gateway, `task` gate), then
 *    canaried (alone: a first release) and Promoted: `forgeline prompt release --wait` exits 0.
 * 2. A second version requires a new variable `tone` that the clients do not send: its test set
 *    has it, so the evaluation passes, but in the canary every client request it gets fails (400,
 *    counted as an error of that version), the analysis fails the step, and the release is
 *    RolledBack: the route serves the first version alone again; the CLI exits 3.
 *
 * The tiny model's answers are not judged: the `task` expectation only requires an answer that
 * is not the gateway's error text; what is under test is the lifecycle through the real stack.
 * Costs: vLLM on CPU starts in 20-60 s; each release takes about a minute (20 s canary steps).
 */
/** The JSON object a `--json` command printed last (its log lines go to stderr, which the output also holds). */
function lastJson(output: string): unknown {
  const text = output.trim();
  const start = text.startsWith('{') ? 0 : text.lastIndexOf('\n{') + 1;
  return JSON.parse(text.slice(start));
}

describe('prompt release (e2e: forgeline dev with the gateway and a real vLLM, CLI, load through /v1/prompts)', function () {
  this.timeout(900_000);
  const started: CliProcess[] = [];
  const home = tempHome('prompt-release');
  const track = (p: CliProcess) => (started.push(p), p);

  after(async function () {
    for (const p of started) {
      if (p.child.exitCode === null) {
        p.child.kill('SIGTERM');
        await Promise.race([p.exited(), new Promise((r) => setTimeout(r, 30_000))]);
        if (p.child.exitCode === null) p.child.kill('SIGKILL');
      }
    }
    for (const pid of processesMentioning(home.dir)) process.kill(pid, 'SIGKILL');
    home.cleanup();
  });

  it('a good prompt is evaluated, canaried and Promoted; a version that breaks its clients is RolledBack and the route restored', async function () {
    const env = await devStackEnv(home.dir, { vllm: true });
    const dev = track(forgeline(['dev'], env));
    await dev.waitFor(/forgeline dev is up[^]*\n {2}routes: curl/, 480_000);
    const gateway = `http://127.0.0.1:${env.FORGELINE_GATEWAY_PORT}`;

    // The prompt's repository: prompts/faq/{prompt.yaml, release.yaml, tests.jsonl}.
    const repo = path.join(home.dir, 'repo');
    mkdirSync(path.join(repo, '.git'), { recursive: true });
    mkdirSync(path.join(repo, 'prompts', 'faq'), { recursive: true });
    const write = (file: string, text: string) => writeFileSync(path.join(repo, 'prompts', 'faq', file), text);
    write(
      'release.yaml',
      [
        'evaluation:',
        '  testSet: prompts/faq/tests.jsonl',
        '  runs: 2',
        '  metrics: [task]',
        '  judge: {model: tiny-demo}',
        '  gates: {task: 0.9}',
        'canary:',
        '  steps: [{weight: 50, durationSeconds: 20}, {weight: 100, durationSeconds: 20}]',
        '  minRequests: 10',
        '  maxExtensions: 3',
        '  analysis:',
        '    metrics: {error_rate: {minSamples: 10}, latency_p95: {enabled: false}, feedback_score: {enabled: false}}',
        '',
      ].join('\n'),
    );
    const cases = (vars: string) => ['a b c', 'd e f', 'x y'].map((q, i) => JSON.stringify({ id: `case-${i}`, variables: JSON.parse(`{"question": "${q}"${vars}}`), expect: { notContains: ['"error"'] } })).join('\n');
    write('tests.jsonl', `${cases('')}\n`);
    write('prompt.yaml', 'template: "reverse : {{question}} ="\nvariables: {question: {type: string}}\nmodel: {alias: tiny-demo, params: {maxTokens: 8, temperature: 0}}\n');

    // Clients: the application calls the prompt by name with its variables, all along.
    const seen = new Map<string, { ok: number; failed: number }>();
    let stopLoad = false;
    const load = (async () => {
      while (!stopLoad) {
        const res = await fetch(`${gateway}/v1/prompts/faq/completions`, {
          method: 'POST',
          headers: { authorization: 'Bearer forgeline-dev', 'content-type': 'application/json' },
          body: JSON.stringify({ variables: { question: 'a b c' } }),
        }).catch(() => undefined);
        const version = res?.headers.get('x-forgeline-prompt-version') ?? res?.headers.get('x-forgeline-version');
        if (res && version) {
          const s = seen.get(version) ?? { ok: 0, failed: 0 };
          if (res.ok) s.ok++;
          else s.failed++;
          seen.set(version, s);
        }
        await res?.arrayBuffer().catch(() => undefined);
        await new Promise((r) => setTimeout(r, 100));
      }
    })();

    try {
      const releaseFile = path.join(repo, 'prompts', 'faq', 'release.yaml');
      const first = track(forgeline(['prompt', 'release', releaseFile, '--wait', '--json'], env));
      assert.equal(await first.exited(), 0, first.output());
      const good = lastJson(first.output()) as { workflowId: string; version: string; outcome: string; result: { evaluation: { passed: boolean; cases: number } } };
      assert.equal(good.outcome, 'Promoted');
      assert.equal(good.result.evaluation.passed, true);
      assert.equal(good.result.evaluation.cases, 3);
      const goodLabel = `faq@${good.version}`;
      assert.ok((seen.get(goodLabel)?.ok ?? 0) > 0, `clients were served by ${goodLabel}: ${JSON.stringify([...seen])}`);

      // A version that requires a variable the clients do not send.
      write('prompt.yaml', 'template: "reverse : {{question}} = ({{tone}})"\nvariables: {question: {type: string}, tone: {type: string}}\nmodel: {alias: tiny-demo, params: {maxTokens: 8, temperature: 0}}\n');
      write('tests.jsonl', `${cases(', "tone": "plain"')}\n`);
      const second = track(forgeline(['prompt', 'release', releaseFile, '--wait', '--json'], env));
      assert.equal(await second.exited(), 3, second.output());
      const bad = lastJson(second.output()) as { workflowId: string; version: string; outcome: string; failure: string };
      assert.equal(bad.outcome, 'RolledBack');
      assert.match(bad.failure, /canary failed at step 1 \(50%\): .*error_rate.*; rolled back/);
      const badLabel = `faq@${bad.version}`;
      assert.ok((seen.get(badLabel)?.failed ?? 0) > 0, `the broken version failed client requests: ${JSON.stringify([...seen])}`);

      const status = track(forgeline(['prompt', 'status', bad.workflowId, '--json'], env));
      assert.equal(await status.exited(), 0, status.output());
      const s = (lastJson(status.output()) as { status: { outcome: string; canary: { weights: Record<string, number>; analyses: Array<{ verdict: string }> } } }).status;
      assert.equal(s.outcome, 'RolledBack');
      assert.deepEqual(s.canary.weights, { [goodLabel]: 100 });
      assert.equal(s.canary.analyses.at(-1)?.verdict, 'Fail');

      // After the rollback the clients are served by the first version alone.
      const before = seen.get(goodLabel)?.ok ?? 0;
      const badBefore = seen.get(badLabel)?.failed ?? 0;
      await new Promise((r) => setTimeout(r, 3_000));
      assert.ok((seen.get(goodLabel)?.ok ?? 0) > before, 'the first version serves again');
      assert.equal(seen.get(badLabel)?.failed ?? 0, badBefore, 'no request reaches the rolled-back version');
    } finally {
      stopLoad = true;
      await load;
    }
  });
});
