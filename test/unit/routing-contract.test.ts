/**
 * The routing table contract (src/contracts/routing.ts) with prompt routes, and the gateway's
 * checks on top of it (src/gateway/routing.ts): what a prompt route may hold, that tables stored
 * before prompt routes still load, and the prompt version pick.
 */
import assert from 'node:assert/strict';
import type { PromptSpec } from '../../src/contracts/prompt';
import { PromptRouteTargetsSchema, promptRouteTarget, promptVersionLabel, RoutingTableSchema, type RoutingTable } from '../../src/contracts/routing';
import { mulberry32 } from '../../src/drift/random';
import { checkTable, InvalidChangeError, parsePromptTargets, pickTarget } from '../../src/gateway/routing';

const spec: PromptSpec = {
  name: 'support-answer',
  template: 'Context: {{context}}\nQ: {{question}}',
  variables: { context: { type: 'string', required: true }, question: { type: 'string', required: true } },
  model: { alias: 'tiny-demo', params: { temperature: 0.2 } },
  examples: [{ variables: { context: 'Paris is in France.', question: 'Where is Paris?' }, output: 'In France.' }],
};
const A = '0123456789ab';
const B = 'abcdef012345';

const issues = (value: unknown) => {
  const r = PromptRouteTargetsSchema.safeParse(value);
  assert.ok(!r.success, 'expected a refusal');
  return r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
};

const legacyTable = {
  version: 3,
  updatedAt: '2026-01-01T00:00:00.000Z',
  updatedBy: 'admin',
  upstreams: { vllm: { urls: ['http://127.0.0.1:8000'] } },
  routes: { 'tiny-demo': { targets: [{ version: 'tiny-demo@stable', upstream: 'vllm', model: 'base', weight: 1 }] } },
};

describe('routing contract: prompt routes', function () {
  it('promptRouteTarget builds a target from a PromptSpec and version id, which the schema accepts with defaults applied', function () {
    const t = promptRouteTarget(spec, A, 90);
    assert.equal(t.version, 'support-answer@0123456789ab');
    assert.equal(t.version, promptVersionLabel('support-answer', A));
    assert.deepEqual(t.prompt, { version: A, template: spec.template, variables: spec.variables, model: spec.model, examples: spec.examples });
    const parsed = PromptRouteTargetsSchema.parse([t, promptRouteTarget(spec, B, 10)]);
    assert.equal(parsed.length, 2);
    // Defaults as in a PromptSpec: required variables, no params, no examples.
    const [bare] = PromptRouteTargetsSchema.parse([{ version: `x@${A}`, prompt: { version: A, template: 'hi {{who}}', variables: { who: { type: 'string' } }, model: { alias: 'tiny-demo' } }, weight: 1 }]);
    assert.deepEqual(bare!.prompt.variables.who, { type: 'string', required: true });
    assert.deepEqual(bare!.prompt.model.params, {});
    assert.deepEqual(bare!.prompt.examples, []);
  });

  it('refuses bad targets naming the field: label, version id, template, examples, weights, duplicates, mixed aliases or prompts', function () {
    const t = promptRouteTarget(spec, A, 1);
    assert.match(issues([{ ...t, version: 'support-answer@v1' }])[0]!, /^0\.version: expected <promptName>@<12-hex prompt version>/);
    assert.match(issues([{ ...t, version: `support-answer@${B}` }])[0]!, /^0\.version: label ends in @abcdef012345 but prompt\.version is 0123456789ab: use support-answer@0123456789ab/);
    assert.match(issues([{ ...t, prompt: { ...t.prompt, version: 'ABC' } }]).join('\n'), /0\.prompt\.version: expected the 12-hex-digit prompt version id/);
    assert.match(issues([{ ...t, prompt: { ...t.prompt, template: 'Q: {{question}} {{tone}}' } }])[0]!, /^0\.prompt\.template: placeholder \{\{tone\}\} is not declared/);
    assert.match(issues([{ ...t, prompt: { ...t.prompt, examples: [{ variables: { question: 1 }, output: 'x' }] } }]).join('\n'), /0\.prompt\.examples\.0\.variables: .*'question' must be a string/);
    assert.match(issues([{ ...t, prompt: { ...t.prompt, model: { alias: 'Tiny Demo', params: {} } } }])[0]!, /^0\.prompt\.model\.alias/);
    assert.match(issues([{ ...t, weight: 10_001 }])[0]!, /^0\.weight/);
    assert.match(issues([])[0]!, /at least one prompt version/);
    assert.match(issues([{ ...t, weight: 0 }])[0]!, /at least one weight must be > 0/);
    assert.match(issues([t, { ...t }])[0]!, /each version at most once/);
    assert.match(issues([t, promptRouteTarget({ ...spec, name: 'other' }, B, 1)])[0]!, /same prompt/);
    assert.match(issues([t, promptRouteTarget({ ...spec, model: { alias: 'other-model', params: {} } }, B, 1)])[0]!, /same model alias/);
  });

  it('a table stored before prompt routes (no `prompts`) loads with none; a table with prompts round-trips', function () {
    const t = RoutingTableSchema.parse(legacyTable);
    assert.deepEqual(t.prompts, {});
    assert.deepEqual(checkTable(legacyTable, 'routes.json').prompts, {});
    const withPrompts = { ...legacyTable, prompts: { 'support-answer': { targets: [promptRouteTarget(spec, A, 1)] } } };
    assert.deepEqual(RoutingTableSchema.parse(JSON.parse(JSON.stringify(withPrompts))), withPrompts);
    assert.ok(!RoutingTableSchema.safeParse({ ...legacyTable, prompts: { 'Bad Name': { targets: [promptRouteTarget(spec, A, 1)] } } }).success);
  });

  it('the gateway refuses a prompt route whose label names another prompt or whose model alias has no route, in a change and in a stored table', function () {
    const routes: RoutingTable['routes'] = legacyTable.routes;
    assert.deepEqual(parsePromptTargets('support-answer', [promptRouteTarget(spec, A, 1)], routes)[0]!.version, `support-answer@${A}`);
    assert.throws(
      () => parsePromptTargets('other', [promptRouteTarget(spec, A, 1)], routes),
      (err: unknown) => err instanceof InvalidChangeError && err.field === 'targets[0].version' && /names another prompt: expected other@0123456789ab/.test(err.message),
    );
    assert.throws(
      () => parsePromptTargets('support-answer', [promptRouteTarget({ ...spec, model: { alias: 'nope', params: {} } }, A, 1)], routes),
      (err: unknown) => err instanceof InvalidChangeError && err.field === 'targets[0].prompt.model.alias' && /PUT \/admin\/routes\/nope/.test(err.message),
    );
    assert.throws(
      () => parsePromptTargets('support-answer', [{ ...promptRouteTarget(spec, A, 1), weight: -1 }], routes),
      (err: unknown) => err instanceof InvalidChangeError && err.field === 'targets[0].weight',
    );
    const orphan = { ...legacyTable, routes: {}, prompts: { 'support-answer': { targets: [promptRouteTarget(spec, A, 1)] } } };
    assert.throws(() => checkTable(orphan, 'routes.json'), (err: unknown) => err instanceof InvalidChangeError && err.field === 'prompts.support-answer.targets[0].prompt.model.alias' && /in routes\.json/.test(err.message));
  });

  it('picks prompt versions with the model routes\' rules: by weight without a key, sticky with one', function () {
    const targets = [promptRouteTarget(spec, A, 3), promptRouteTarget(spec, B, 1)];
    const rng = mulberry32(5);
    const n = 4000;
    let onB = 0;
    for (let i = 0; i < n; i++) if (pickTarget(targets, undefined, rng).prompt.version === B) onB++;
    const sd = Math.sqrt(n * 0.25 * 0.75);
    assert.ok(Math.abs(onB - n * 0.25) <= 4.5 * sd, `${onB} of ${n} on B`);
    for (const key of ['user-1', 'user-2', 'session-x']) {
      const first = pickTarget(targets, key, rng).version;
      for (let k = 0; k < 5; k++) assert.equal(pickTarget(targets, key, rng).version, first);
    }
    assert.equal(pickTarget([promptRouteTarget(spec, A, 0), promptRouteTarget(spec, B, 1)], 'anyone', rng).prompt.version, B);
  });
});
