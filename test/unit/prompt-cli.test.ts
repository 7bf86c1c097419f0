import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { LocalArtifactStore } from '../../src/adapters/local-artifact-store';
import { ExitCode } from '../../src/cli/errors';
import { runCli } from '../../src/cli/program';
import { PromptRegistry } from '../../src/registry/prompt-registry';

function sink() {
  const s = { text: '', isTTY: false, columns: 100, write: (chunk: string) => ((s.text += chunk), true) };
  return s;
}

async function cli(...argv: string[]) {
  const stdout = sink();
  const stderr = sink();
  const code = await runCli(argv, { stdout, stderr });
  return { code, stdout: stdout.text, stderr: stderr.text };
}

describe('forgeline prompt list|show (read-only, against a local artifact store)', function () {
  let dir: string;
  let saved: string | undefined;
  let v1: string;
  let v2: string;

  beforeEach(async function () {
    dir = mkdtempSync(path.join(os.tmpdir(), 'forgeline-prompt-cli-'));
    saved = process.env.FORGELINE_ARTIFACT_URI;
    process.env.FORGELINE_ARTIFACT_URI = pathToFileURL(dir).href;
    const registry = new PromptRegistry(new LocalArtifactStore(pathToFileURL(dir).href));
    const base = { name: 'support-answer', template: 'Q: {{question}}', variables: { question: { type: 'string' } }, model: { alias: 'tiny-demo', params: { temperature: 0 } } };
    v1 = (await registry.publish({ prompt: base, createdAt: '2026-12-01T12:00:00.000Z' })).version;
    v2 = (await registry.publish({ prompt: { ...base, description: 'second' }, createdAt: '2026-12-01T13:00:00.000Z' })).version;
    await registry.moveAlias('support-answer', 'production', { version: v1, expectedVersion: null, by: 'test', reason: 'first', at: '2026-12-01T12:00:00.000Z', moveId: 'm1' });
  });
  afterEach(function () {
    if (saved === undefined) delete process.env.FORGELINE_ARTIFACT_URI;
    else process.env.FORGELINE_ARTIFACT_URI = saved;
    rmSync(dir, { recursive: true, force: true });
  });

  it('prompt list --json names the prompts and where their aliases point', async function () {
    const r = await cli('prompt', 'list', '--json');
    assert.equal(r.code, ExitCode.Ok, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { prompts: [{ name: 'support-answer', aliases: { production: v1 } }] });
  });

  it('prompt list <name> shows versions oldest first, marking the alias', async function () {
    const r = await cli('prompt', 'list', 'support-answer');
    assert.equal(r.code, ExitCode.Ok, r.stderr);
    assert.deepEqual(r.stdout.trimEnd().split('\n'), [`${v1}  2026-12-01T12:00:00.000Z  model tiny-demo  [production]`, `${v2}  2026-12-01T13:00:00.000Z  model tiny-demo`]);
    const j = JSON.parse((await cli('prompt', 'list', 'support-answer', '--json')).stdout) as { versions: Array<{ version: string }>; aliases: { production: { version: string } } };
    assert.deepEqual(j.versions.map((v) => v.version), [v1, v2]);
    assert.equal(j.aliases.production.version, v1);
  });

  it('prompt show resolves production by default, a version or an alias; unknown ones exit 2 with a hint', async function () {
    const byDefault = await cli('prompt', 'show', 'support-answer');
    assert.equal(byDefault.code, ExitCode.Ok, byDefault.stderr);
    assert.match(byDefault.stdout, new RegExp(`^prompt://support-answer@${v1} `));
    assert.match(byDefault.stdout, /model: tiny-demo \(temperature=0\)\nvariables: question: string\n/);
    const json = JSON.parse((await cli('prompt', 'show', `support-answer@${v2}`, '--json')).stdout) as { version: string; prompt: { description: string } };
    assert.equal(json.version, v2);
    assert.equal(json.prompt.description, 'second');
    const missing = await cli('prompt', 'show', 'support-answer@candidate');
    assert.equal(missing.code, ExitCode.Usage);
    assert.match(missing.stderr, /has no candidate alias yet/);
    const none = await cli('prompt', 'list', 'nope');
    assert.equal(none.code, ExitCode.Usage);
    assert.match(none.stderr, /prompt 'nope' has no published versions/);
  });
});
