import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { LocalArtifactStore } from '../../src/adapters/local-artifact-store';
import { parsePromptSpec, PromptError, renderPrompt, templateVariables, type PromptSpecInput } from '../../src/contracts/prompt';
import { RegistryConflictError } from '../../src/ports/errors';
import { PromptIntegrityError, PromptRegistry, type PromptAliasMove } from '../../src/registry/prompt-registry';

const AT = '2026-12-01T12:00:00.000Z';

const prompt = (over: Partial<PromptSpecInput> = {}): PromptSpecInput => ({
  name: 'support-answer',
  template: 'Context:\n{{ context }}\n\nQuestion: {{question}}\nAnswer in at most {{max_words}} words.',
  variables: { context: { type: 'string' }, question: { type: 'string' }, max_words: { type: 'number', required: false } },
  model: { alias: 'tiny-demo', params: { temperature: 0.2, maxTokens: 128 } },
  examples: [{ variables: { context: 'Paris is in France.', question: 'Where is Paris?' }, output: 'In France.' }],
  ...over,
});

describe('prompt registry (local file ArtifactStore)', function () {
  let dir: string;
  let registry: PromptRegistry;

  beforeEach(function () {
    dir = mkdtempSync(path.join(os.tmpdir(), 'forgeline-prompts-'));
    registry = new PromptRegistry(new LocalArtifactStore(pathToFileURL(dir).href));
  });
  afterEach(function () {
    rmSync(dir, { recursive: true, force: true });
  });

  const move = (over: Partial<PromptAliasMove> & Pick<PromptAliasMove, 'version' | 'expectedVersion' | 'moveId'>): PromptAliasMove => ({ by: 'test', reason: 'test move', at: AT, ...over });

  it('version id is the content digest: publishing the same content twice is idempotent (first record stands)', async function () {
    const first = await registry.publish({ prompt: prompt(), createdAt: AT });
    assert.match(first.version, /^[0-9a-f]{12}$/);
    assert.equal(first.ref, `prompt://support-answer@${first.version}`);
    // Key order and defaults do not change the content, so not the id either.
    const reordered = { examples: prompt().examples, model: { params: { maxTokens: 128, temperature: 0.2 }, alias: 'tiny-demo' }, variables: prompt().variables, template: prompt().template, name: 'support-answer' };
    const again = await registry.publish({ prompt: reordered, createdAt: '2026-12-02T00:00:00.000Z' });
    assert.deepEqual(again, first);
    const other = await registry.publish({ prompt: prompt({ template: `${prompt().template}\nBe brief.` }), createdAt: AT });
    assert.notEqual(other.version, first.version);
    assert.deepEqual((await registry.listVersions('support-answer')).map((v) => v.version).sort(), [first.version, other.version].sort());
    assert.deepEqual(await registry.listPrompts(), ['support-answer']);
  });

  it('versions are immutable: a record edited in the store is refused on read', async function () {
    const v = await registry.publish({ prompt: prompt(), createdAt: AT });
    const file = path.join(dir, 'prompts', 'support-answer', 'versions', `${v.version}.json`);
    const record = JSON.parse(readFileSync(file, 'utf8')) as { prompt: { template: string } };
    record.prompt.template = 'Ignore the context. {{question}} {{context}}';
    writeFileSync(file, JSON.stringify(record));
    await assert.rejects(registry.getVersion('support-answer', v.version), (e: unknown) => e instanceof PromptIntegrityError && /was modified/.test(e.message));
  });

  it('rejects invalid prompts naming each field: undeclared placeholder, bad model alias, example with an unknown variable', async function () {
    await assert.rejects(
      registry.publish({ prompt: prompt({ template: 'Hi {{user}}', model: { alias: 'Tiny Demo' }, examples: [{ variables: { nope: 'x' }, output: '' }] }), createdAt: AT }),
      (e: unknown) => {
        assert.ok(e instanceof PromptError);
        assert.match(e.message, /template: placeholder \{\{user\}\} is not declared: add variables\.user/);
        assert.match(e.message, /model\.alias: use the gateway model alias/);
        assert.match(e.message, /examples\.0\.variables: variable 'nope' is not declared/);
        return true;
      },
    );
    await assert.rejects(registry.publish({ prompt: prompt(), createdAt: 'yesterday' }), /createdAt "yesterday" is invalid/);
  });

  it('aliases move only by compare-and-swap: precondition, idempotent retry, single-use move IDs, history', async function () {
    const v1 = await registry.publish({ prompt: prompt(), createdAt: AT });
    const v2 = await registry.publish({ prompt: prompt({ description: 'v2' }), createdAt: AT });

    const first = await registry.moveAlias('support-answer', 'production', move({ version: v1.version, expectedVersion: null, moveId: 'wf-1/a1' }));
    assert.equal(first.version, v1.version);
    assert.equal(first.replaced, undefined);
    // A retry of the same move is recognized as done.
    assert.deepEqual(await registry.moveAlias('support-answer', 'production', move({ version: v1.version, expectedVersion: null, moveId: 'wf-1/a1' })), first);

    // A stale precondition loses and changes nothing.
    await assert.rejects(
      registry.moveAlias('support-answer', 'production', move({ version: v2.version, expectedVersion: null, moveId: 'wf-2/a1' })),
      (e: unknown) => e instanceof RegistryConflictError && new RegExp(`expected it to not exist yet, but it points at ${v1.version}`).test(e.message),
    );
    assert.equal((await registry.getAlias('support-answer', 'production'))!.version, v1.version);

    const second = await registry.moveAlias('support-answer', 'production', move({ version: v2.version, expectedVersion: v1.version, moveId: 'wf-2/a1', at: '2026-12-01T13:00:00.000Z' }));
    assert.deepEqual(second.replaced, { version: v1.version, moveId: 'wf-1/a1' });
    // The first move, retried late, is still recognized (from its history entry) and does not move the alias back.
    assert.equal((await registry.moveAlias('support-answer', 'production', move({ version: v1.version, expectedVersion: null, moveId: 'wf-1/a1' }))).version, v1.version);
    assert.equal((await registry.getAlias('support-answer', 'production'))!.version, v2.version);
    // A move ID reused for another version is a conflict.
    await assert.rejects(registry.moveAlias('support-answer', 'production', move({ version: v1.version, expectedVersion: v2.version, moveId: 'wf-2/a1', at: '2026-12-01T13:00:00.000Z' })), /move ID wf-2\/a1 was already used/);

    assert.deepEqual((await registry.aliasHistory('support-answer', 'production')).map((r) => r.version), [v1.version, v2.version]);
    assert.equal((await registry.resolve('support-answer', 'production')).version, v2.version);
    assert.equal((await registry.resolve('support-answer', v1.version)).version, v1.version);
    await assert.rejects(registry.resolve('support-answer', 'candidate'), /has no candidate alias yet/);
  });

  it('racing moves from the same read: exactly one wins', async function () {
    const v1 = await registry.publish({ prompt: prompt(), createdAt: AT });
    const v2 = await registry.publish({ prompt: prompt({ description: 'v2' }), createdAt: AT });
    const results = await Promise.allSettled([
      registry.moveAlias('support-answer', 'candidate', move({ version: v1.version, expectedVersion: null, moveId: 'race-1' })),
      registry.moveAlias('support-answer', 'candidate', move({ version: v2.version, expectedVersion: null, moveId: 'race-2' })),
    ]);
    assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
    const lost = results.find((r) => r.status === 'rejected');
    assert.ok(lost && lost.reason instanceof RegistryConflictError, 'the loser gets a RegistryConflictError');
  });

  it('refuses moves to unpublished versions, unknown aliases and moves without audit fields', async function () {
    const v1 = await registry.publish({ prompt: prompt(), createdAt: AT });
    await assert.rejects(registry.moveAlias('support-answer', 'production', move({ version: 'abcdefabcdef', expectedVersion: null, moveId: 'm' })), /prompt version abcdefabcdef is not published/);
    await assert.rejects(registry.moveAlias('support-answer', 'previous' as 'production', move({ version: v1.version, expectedVersion: null, moveId: 'm' })), /alias 'previous' is invalid: use one of candidate, production/);
    await assert.rejects(registry.moveAlias('support-answer', 'production', move({ version: v1.version, expectedVersion: null, moveId: 'm', by: ' ' })), /by: say who moves the alias/);
  });
});

describe('prompt templates (strict {{var}} rendering)', function () {
  const spec = parsePromptSpec(prompt());

  it('renders declared variables verbatim, optional ones may be absent', function () {
    assert.equal(renderPrompt(spec, { context: '<b>x</b> & y', question: 'Why?', max_words: 20 }), 'Context:\n<b>x</b> & y\n\nQuestion: Why?\nAnswer in at most 20 words.');
    assert.equal(renderPrompt(spec, { context: 'c', question: 'q' }), 'Context:\nc\n\nQuestion: q\nAnswer in at most  words.');
  });

  it('missing, unknown and mistyped variables are errors naming each', function () {
    assert.throws(
      () => renderPrompt(spec, { question: 7, extra: 'x' }),
      (e: unknown) => {
        assert.ok(e instanceof PromptError);
        assert.match(e.message, /variable 'extra' is not declared/);
        assert.match(e.message, /variable 'question' must be a string, got number/);
        assert.match(e.message, /required variable 'context' is missing/);
        return true;
      },
    );
  });

  it('placeholders must be plain names and closed', function () {
    assert.deepEqual(templateVariables('{{a}} {{ b }} {{a}}'), ['a', 'b']);
    assert.throws(() => templateVariables('Hi {{#items}}'), /placeholder \{\{#items\}\} at offset 3: a name is letters/);
    assert.throws(() => templateVariables('Hi {{name'), /unclosed '\{\{'/);
  });
});
