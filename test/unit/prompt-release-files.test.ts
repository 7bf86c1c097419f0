import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parsePromptReleaseSpec, changedPrompts, analyzeFirstRelease, PromptReleaseSpecError } from '../../src/contracts/prompt-release';
import { DEFAULT_CANARY_ANALYSIS_POLICY } from '../../src/contracts/canary-analysis';
import { readLocalPromptRelease } from '../../src/cli/prompt';
import { UsageError } from '../../src/cli/errors';
import { versionMetrics } from '../fixtures/serving';

const RELEASE = ['evaluation:', '  testSet: prompts/faq/tests.jsonl', '  judge: {model: tiny-demo}', 'canary:', '  steps: [{weight: 25, durationSeconds: 60}, {weight: 100, durationSeconds: 60}]', ''].join('\n');
const PROMPT = 'template: "Q: {{question}}"\nvariables: {question: {type: string}}\nmodel: {alias: tiny-demo}\n';
const TESTS = '{"variables": {"question": "2+2?"}, "expect": {"contains": ["4"]}}\n';

describe('prompt release spec and files', function () {
  let root: string;
  beforeEach(function () {
    root = mkdtempSync(path.join(os.tmpdir(), 'forgeline-prompt-files-'));
    mkdirSync(path.join(root, '.git'));
    mkdirSync(path.join(root, 'prompts', 'faq'), { recursive: true });
  });
  afterEach(function () {
    rmSync(root, { recursive: true, force: true });
  });
  const write = (files: Record<string, string>) => {
    for (const [f, text] of Object.entries(files)) writeFileSync(path.join(root, f), text);
  };

  it('prompts/<name>/release.yaml: prompt and source default to the folder; the prompt and test set are inlined; version is the content digest', async function () {
    write({ 'prompts/faq/release.yaml': RELEASE, 'prompts/faq/prompt.yaml': PROMPT, 'prompts/faq/tests.jsonl': TESTS });
    const { request, version } = await readLocalPromptRelease(path.join(root, 'prompts/faq/release.yaml'));
    assert.equal(request.prompt, 'faq');
    assert.equal((request.source as { template: string }).template, 'Q: {{question}}');
    assert.deepEqual(request.testSet, { text: TESTS, source: 'prompts/faq/tests.jsonl' });
    assert.match(version, /^[0-9a-f]{12}$/);
    assert.equal((await readLocalPromptRelease(path.join(root, 'prompts/faq/release.yaml'))).version, version, 'same content, same version');
  });

  it('problems name file, field, line and the fix; once the release file is valid, the prompt and the test set files are checked together', async function () {
    write({
      'prompts/faq/release.yaml': RELEASE.replace('weight: 100', 'weight: 90').replace('prompts/faq/tests.jsonl', 'prompts/faq/missing.jsonl'),
      'prompts/faq/prompt.yaml': 'template: "Q: {{question}} {{extra}}"\nvariables: {question: {type: string}}\nmodel: {alias: tiny-demo}\n',
    });
    const err = await readLocalPromptRelease(path.join(root, 'prompts/faq/release.yaml')).catch((e: unknown) => e);
    assert.ok(err instanceof UsageError);
    assert.match(err.message, /prompts\/faq\/release\.yaml: canary\.steps \(line 5\): expected the last step at weight 100 \(all traffic on the candidate\)/);
    // The canary problem stops the release file's validation; fix it and the other files are checked.
    write({ 'prompts/faq/release.yaml': RELEASE.replace('prompts/faq/tests.jsonl', 'prompts/faq/missing.jsonl') });
    const err2 = await readLocalPromptRelease(path.join(root, 'prompts/faq/release.yaml')).catch((e: unknown) => e);
    assert.ok(err2 instanceof UsageError);
    assert.match(err2.message, /prompts\/faq\/prompt\.yaml: template \(line 1\): placeholder \{\{extra\}\} is not declared: add variables\.extra/);
    assert.match(err2.message, /prompts\/faq\/release\.yaml: evaluation\.testSet \(line 2\): prompts\/faq\/missing\.jsonl does not exist at .*: commit the JSONL test set, or fix the path/);
  });

  it('a release file names its prompt; source.name must match it; an unknown field is refused', function () {
    const spec = { prompt: 'faq', source: { name: 'other', template: 'x', model: { alias: 'tiny-demo' } }, evaluation: { testSet: 't.jsonl', judge: { model: 'tiny-demo' } }, colour: 'blue' };
    const err = (() => {
      try {
        parsePromptReleaseSpec(spec, 'release.yaml');
      } catch (e) {
        return e;
      }
    })();
    assert.ok(err instanceof PromptReleaseSpecError);
    assert.deepEqual(err.problems.sort(), ["(spec): Unrecognized key: \"colour\"", "source.name: source.name 'other' differs from prompt 'faq': a release publishes the prompt it names; make them equal"].sort());
  });

  it('changedPrompts: each prompts/<name>/ folder once, sorted; other paths ignored', function () {
    assert.deepEqual(changedPrompts(['prompts/b/prompt.yaml', 'prompts/a/release.yaml', 'prompts/b/tests.jsonl', 'prompts/readme.md', 'README.md', 'prompts/Bad_Name/x']), ['a', 'b']);
  });

  it('analyzeFirstRelease: too few requests is Inconclusive, an error rate above the tolerance fails, a healthy window passes', function () {
    const p = DEFAULT_CANARY_ANALYSIS_POLICY;
    assert.equal(analyzeFirstRelease(versionMetrics('faq@aaaaaaaaaaaa', { requests: 5 }), p, 20).verdict, 'Inconclusive');
    assert.equal(analyzeFirstRelease(versionMetrics('faq@aaaaaaaaaaaa', { requests: 100, errors: 5 }), p, 20).verdict, 'Fail');
    assert.equal(analyzeFirstRelease(versionMetrics('faq@aaaaaaaaaaaa', { requests: 100, errors: 1 }), p, 20).verdict, 'Pass');
  });
});
