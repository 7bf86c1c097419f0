import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { WorkflowNotFoundError, WorkflowUpdateFailedError, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { LocalArtifactStore } from '../../src/adapters/local-artifact-store';
import { describeFailure, ExitCode, exitCodeForOutcome } from '../../src/cli/errors';
import { Output } from '../../src/cli/output';
import { runCli } from '../../src/cli/program';
import { decide, printStatus } from '../../src/cli/release';
import { readSpecFile } from '../../src/cli/spec-file';
import { REPO_ROOT } from '../../src/config/load';
import { ReleaseOutcome, type ReleaseStatus } from '../../src/contracts/release-lifecycle';
import { ModelRegistry } from '../../src/registry/model-registry';

/** A fake stdout/stderr that keeps what was written. */
function sink(isTTY = false) {
  const s = { text: '', isTTY, columns: 100, write: (chunk: string) => ((s.text += chunk), true) };
  return s;
}

async function cli(...argv: string[]) {
  const stdout = sink();
  const stderr = sink();
  const code = await runCli(argv, { stdout, stderr });
  return { code, stdout: stdout.text, stderr: stderr.text };
}

/** The real entry point as a process, the way bin/forgeline runs it. */
function cliProcess(args: string[], env: NodeJS.ProcessEnv = {}) {
  const r = spawnSync(process.execPath, ['--require', require.resolve('tsx/cjs'), path.join(REPO_ROOT, 'src', 'cli', 'main.ts'), ...args], {
    cwd: REPO_ROOT,
    env: { ...process.env, FORGELINE_CONFIG: '', ...env },
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const oneLine = (text: string) => text.trimEnd().split('\n');

describe('forgeline CLI (commander)', function () {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(path.join(os.tmpdir(), 'forgeline-cli-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('has --help for every command, naming its options, exit 0', async function () {
    const commands: Array<[string[], RegExp[]]> = [
      [[], [/dev/, /demo/, /check/, /release/, /registry/, /Exit codes:/]],
      [['dev'], []],
      [['demo'], []],
      [['check'], [/--pool <pool>/, /--timeout <duration>/]],
      [['setup'], []],
      [['config'], []],
      [['release'], [/start/, /status/, /watch/, /approve/, /reject/, /abort/]],
      [['release', 'start'], [/--spec <file>/, /--no-wait/, /--json/]],
      [['release', 'status'], [/<id>/, /--json/]],
      [['release', 'watch'], [/<id>/, /--json/]],
      [['release', 'approve'], [/--by <who>/, /--reason <why>/, /--json/]],
      [['release', 'reject'], [/--by <who>/, /--reason <why>/]],
      [['release', 'abort'], [/--by <who>/, /--reason <why>/]],
      [['registry'], [/list/, /show/]],
      [['registry', 'list'], [/--json/]],
      [['registry', 'show'], [/<model>/, /--json/]],
    ];
    for (const [cmd, mentions] of commands) {
      const r = await cli(...cmd, '--help');
      assert.equal(r.code, 0, cmd.join(' '));
      assert.ok(r.stdout.startsWith(`Usage: ${['forgeline', ...cmd].join(' ')} `), `${cmd.join(' ')}: ${r.stdout.slice(0, 80)}`);
      for (const m of mentions) assert.match(r.stdout, m, `${cmd.join(' ')} --help mentions ${m}`);
      assert.equal(r.stderr, '');
    }
  });

  it('a bad option, argument or command is one line naming it and where to look, exit 2', async function () {
    const cases: Array<[string[], string]> = [
      [['release', 'status', 'release/x/1', '--bogus'], "forgeline: unknown option '--bogus' (see: forgeline release status --help)"],
      [['release', 'approve', 'release/x/1', '--reason', 'ok'], "forgeline: required option '--by <who>' not specified (see: forgeline release approve --help)"],
      [['release', 'status'], "forgeline: missing required argument 'id' (see: forgeline release status --help)"],
      [['release', 'status', 'a', 'b'], "forgeline: too many arguments for 'status'. Expected 1 argument but got 2. (see: forgeline release status --help)"],
      [['relase'], "forgeline: unknown command 'relase' (Did you mean release?) (see: forgeline --help)"],
      [['check', '--pool'], "forgeline: option '--pool <pool>' argument missing (see: forgeline check --help)"],
    ];
    for (const [argv, line] of cases) {
      const r = await cli(...argv);
      assert.equal(r.code, ExitCode.Usage, argv.join(' '));
      assert.deepEqual(oneLine(r.stderr), [line]);
      assert.equal(r.stdout, '', 'nothing on stdout');
    }
  });

  it('without a command, prints the usage to stderr and exits 2', async function () {
    const r = await cli();
    assert.equal(r.code, ExitCode.Usage);
    assert.match(r.stderr, /^Usage: forgeline/);
  });

  it('a malformed --spec file is one line with its line and column, exit 2, no stack trace, no connection tried', function () {
    const spec = path.join(dir, 'release.json');
    writeFileSync(spec, '{\n  "model": "x",\n  "base": }\n');
    // An unreachable server: trying to connect would take seconds and exit 1.
    const r = cliProcess(['release', 'start', '--spec', spec], { TEMPORAL_ADDRESS: '127.0.0.1:9' });
    assert.equal(r.code, ExitCode.Usage);
    assert.deepEqual(oneLine(r.stderr), [`forgeline: --spec ${spec}: invalid JSON at line 3 column 11 (value expected)`]);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
  });

  it('an invalid spec names every bad field before connecting, exit 2', function () {
    const spec = path.join(dir, 'release.json');
    writeFileSync(spec, JSON.stringify({ model: 'x', trainer: { steps: -1 } }));
    const r = cliProcess(['release', 'start', '--spec', spec], { TEMPORAL_ADDRESS: '127.0.0.1:9' });
    assert.equal(r.code, ExitCode.Usage);
    const [first, ...details] = oneLine(r.stderr);
    assert.match(first!, new RegExp(`^forgeline: --spec ${spec}: invalid release spec: .*base.*dataset.*trainer\\.steps`));
    assert.ok(details.every((l) => l.startsWith('  - ')), 'then one line per field');
    assert.doesNotMatch(r.stderr, /\n\s+at /);
  });

  it('reads spec files: missing, a directory, empty, trailing garbage, comments', function () {
    const file = (name: string, text: string) => (writeFileSync(path.join(dir, name), text), path.join(dir, name));
    const message = (f: string) => {
      try {
        readSpecFile(f);
      } catch (err) {
        return (err as Error).message;
      }
      return 'no error';
    };
    assert.equal(message(path.join(dir, 'nope.json')), `--spec ${path.join(dir, 'nope.json')}: file not found`);
    assert.equal(message(dir), `--spec ${dir}: is a directory, not a JSON file`);
    assert.match(message(file('empty.json', '')), /invalid JSON at line 1 column 1 \(value expected\)/);
    assert.match(message(file('two.json', '{"a": 1}\n{"b": 2}')), /invalid JSON at line 2 column 1/);
    assert.match(message(file('comma.json', '{"a": 1 "b": 2}')), /invalid JSON at line 1 column 9 \(comma expected\)/);
    assert.match(message(file('comment.json', '// c\n{}')), /invalid JSON at line 1 column 1 \(invalid comment token\)/);
    assert.deepEqual(readSpecFile(file('ok.json', '{"model": "m"}')), { model: 'm' });
  });

  it('an unreachable Temporal server is one line naming the address, exit 1', function () {
    this.timeout(60_000);
    const r = cliProcess(['release', 'status', 'release/x/1'], { TEMPORAL_ADDRESS: '127.0.0.1:9' });
    assert.equal(r.code, ExitCode.Failure);
    assert.deepEqual(oneLine(r.stderr).length, 1, r.stderr);
    assert.match(r.stderr, /^forgeline: cannot reach Temporal at 127\.0\.0\.1:9 \(namespace default\): .*check TEMPORAL_ADDRESS/);
  });

  it('registry list|show --json print machine-readable JSON only', async function () {
    const home = path.join(dir, 'home');
    const store = new LocalArtifactStore(`file://${home}/artifacts`);
    const files = path.join(dir, 'adapter');
    mkdirSync(files);
    writeFileSync(path.join(files, 'adapter.bin'), 'weights');
    const published = await store.publishDirectory(files, 'models/support-bot/adapter-1/');
    const v = await new ModelRegistry(store).registerVersion({ model: 'support-bot', kind: 'adapter', prefix: published.prefix, lineage: { recipe: 'train' }, createdAt: '2026-12-01T12:00:00.000Z' });

    const all = cliProcess(['registry', 'list', '--json'], { FORGELINE_HOME: home });
    assert.equal(all.code, 0, all.stderr);
    assert.deepEqual(JSON.parse(all.stdout), { models: ['support-bot'] });

    const one = cliProcess(['registry', 'show', 'support-bot', '--json'], { FORGELINE_HOME: home });
    assert.equal(one.code, 0, one.stderr);
    const report = JSON.parse(one.stdout) as { model: string; versions: Array<{ ref: string; kind: string }>; aliases: object };
    assert.equal(report.model, 'support-bot');
    assert.deepEqual(report.versions.map((x) => [x.kind, x.ref]), [['adapter', v.ref]]);
    assert.deepEqual(report.aliases, {});
  });

  it('a decision prints the state the release returns after it, not an assumed one', async function () {
    const after: ReleaseStatus = {
      model: 'm', stage: 'done', outcome: 'Candidate', awaitingApproval: false, versions: {},
      decision: { kind: 'approved', by: 'alice@example.com', reason: 'eval reviewed', at: '2026-12-01T12:00:00.000Z' },
    };
    const sent: unknown[] = [];
    const handle = {
      workflowId: 'release/m/1',
      executeUpdate: async (name: string, opts: { args: unknown[] }) => (sent.push([name, ...opts.args]), after),
    } as unknown as Pick<WorkflowHandle, 'workflowId' | 'executeUpdate'>;
    const stdout = sink();
    const out = new Output(stdout, sink());
    assert.equal(await decide(handle, 'approve', { by: 'alice@example.com', reason: 'eval reviewed' }, out), 0);
    assert.deepEqual(sent, [['approve', { by: 'alice@example.com', reason: 'eval reviewed' }]]);
    assert.equal(stdout.text, 'release release/m/1 is now approved by alice@example.com / Candidate (stage done)\n');

    const json = sink();
    await decide(handle, 'approve', { by: 'a', reason: 'b' }, new Output(json, sink()), true);
    assert.deepEqual(JSON.parse(json.text), { workflowId: 'release/m/1', status: after });
  });

  it('release status (human): outcome, stage, the running step with loss and newest checkpoint, how to decide', function () {
    const lines: string[] = [];
    printStatus(
      {
        workflowId: 'release/m/1',
        execution: 'RUNNING',
        status: { model: 'm', stage: 'train', outcome: 'Running', awaitingApproval: false, versions: {} },
        running: { activity: 'trainAdapter', attempt: 2, beat: { step: 120, totalSteps: 200, loss: 1.5, checkpoint: { step: 100, prefix: 'checkpoints/m/1/attempt-2/step-100/' } } },
      },
      (l) => lines.push(l),
    );
    assert.deepEqual(lines, [
      'release release/m/1: Running, stage train (running)',
      '  running:    trainAdapter (attempt 2) step 120/200, loss 1.5000',
      '  checkpoint: step 100 at checkpoints/m/1/attempt-2/step-100/',
    ]);
    lines.length = 0;
    printStatus(
      { workflowId: 'release/m/1', execution: 'RUNNING', status: { model: 'm', stage: 'approval', outcome: 'Running', awaitingApproval: true, approvalDeadline: '2026-12-02T12:00:00Z', versions: { adapter: 'registry://m/adapter@aaaaaaaaaaaa' } } },
      (l) => lines.push(l),
    );
    assert.deepEqual(lines, [
      'release release/m/1: Running, stage approval (running)',
      '  awaiting approval until 2026-12-02T12:00:00Z:',
      '    forgeline release approve release/m/1 --by WHO --reason WHY   (or reject)',
      '  adapter     registry://m/adapter@aaaaaaaaaaaa',
    ]);
  });

  it('maps outcomes and errors to documented exit codes', function () {
    assert.equal(exitCodeForOutcome(ReleaseOutcome.Candidate), 0);
    assert.equal(exitCodeForOutcome(ReleaseOutcome.Failed), 1);
    assert.equal(exitCodeForOutcome(ReleaseOutcome.Rejected), 3);
    assert.equal(exitCodeForOutcome(ReleaseOutcome.Aborted), 3);
    const refused = describeFailure(new WorkflowUpdateFailedError('Workflow Update failed', ApplicationFailure.nonRetryable('not awaiting approval (stage train)')));
    assert.deepEqual(refused, { message: 'refused, nothing changed: not awaiting approval (stage train)', exitCode: 2 });
    assert.equal(describeFailure(new WorkflowNotFoundError('not found', 'release/x/1', undefined)).exitCode, 2);
    const rpc = Object.assign(new Error('Failed to query Workflow', { cause: new Error('deadline exceeded') }), { name: 'ServiceError' });
    assert.deepEqual(describeFailure(rpc), { message: 'Failed to query Workflow: deadline exceeded', exitCode: 1 }, 'a failed call to Temporal is one line');
    const unexpected = describeFailure(new TypeError('boom'));
    assert.equal(unexpected.exitCode, 1);
    assert.match(unexpected.stack!, /TypeError: boom/);
  });

  it('documents the exit codes in README.md', function () {
    const readme = readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8');
    for (const code of Object.values(ExitCode)) assert.match(readme, new RegExp(`\\| ${code} \\|`), `README exit code table has ${code}`);
  });
});
