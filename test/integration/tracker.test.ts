import { strict as assert } from 'node:assert';
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { appendFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { LocalTracker, localRunPath, readLocalRun } from '../../src/adapters/local-tracker';
import { createTracker } from '../../src/adapters/tracker';
import { wandbAppUrl, type WandbRun, WandbTracker, type WandbTrackerOptions } from '../../src/adapters/wandb-tracker';
import { ErrorType } from '../../src/contracts/errors';
import { ConfigError, ForgelineError } from '../../src/ports/errors';
import type { Tracker } from '../../src/ports/tracker';
import { FakeWandbServer, parseWandbLine } from '../helpers/fake-wandb-server';
import { registerTeardown } from '../setup';

const REPO_ROOT = path.resolve(__dirname, '../..');
const FAST_RETRY = { maxAttempts: 5, baseDelayMs: 5, maxDelayMs: 40 };

interface RecordingLogger {
  warnings: string[];
  infos: string[];
  warn(message: string): void;
  info(message: string): void;
}

function recordingLogger(): RecordingLogger {
  const logger: RecordingLogger = {
    warnings: [],
    infos: [],
    warn: (message) => logger.warnings.push(message),
    info: (message) => logger.infos.push(message),
  };
  return logger;
}

function newRunId(): string {
  return `run-${randomUUID().slice(0, 12)}`;
}

/** A temp FORGELINE_HOME, removed when the run ends. */
async function tmpHome(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'forgeline-tracker-'));
  registerTeardown(`temp dir ${dir}`, () => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function startFake(): Promise<FakeWandbServer> {
  const fake = new FakeWandbServer();
  await fake.start();
  registerTeardown('fake W&B server', () => fake.stop());
  return fake;
}

/** What a backend ended up holding for a run, in one shape for both adapters. */
interface RunView {
  config: Record<string, unknown>;
  history: Array<{ step: number; metrics: Record<string, unknown> }>;
  /** User keys only: no `_step`-style system keys, no table references. */
  summary: Record<string, unknown>;
  tables: Array<{ name: string; columns: unknown[]; rows: unknown[][] }>;
  finished: boolean;
  exitCode?: number;
}

interface Harness {
  tracker: Tracker;
  logger: RecordingLogger;
  read(project: string, runId: string): Promise<RunView>;
  expectedUrl(project: string, runId: string): string;
  dispose(): Promise<void>;
}

function userKeys(values: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(values).filter(([key, value]) => !key.startsWith('_') && !(value !== null && typeof value === 'object' && '_type' in value)),
  );
}

async function localHarness(): Promise<Harness> {
  const home = await tmpHome();
  const logger = recordingLogger();
  return {
    tracker: new LocalTracker({ home, logger }),
    logger,
    async read(project, runId) {
      const run = await readLocalRun(localRunPath(home, project, runId));
      return {
        config: run.config,
        history: run.history.map((row) => ({ step: row.step, metrics: row.metrics })),
        summary: run.summary,
        tables: run.tables.map((t) => ({ name: t.name, columns: t.columns, rows: t.rows })),
        finished: run.finished,
        ...(run.exitCode !== undefined && { exitCode: run.exitCode }),
      };
    },
    expectedUrl: (project, runId) => pathToFileURL(localRunPath(home, project, runId)).href,
    dispose: async () => undefined,
  };
}

async function wandbHarness(): Promise<Harness> {
  const fake = await startFake();
  const logger = recordingLogger();
  return {
    tracker: new WandbTracker({ apiKey: fake.apiKey, baseUrl: fake.baseUrl, logger, retry: FAST_RETRY, flushIntervalMs: 60_000 }),
    logger,
    async read(project, runId) {
      const run = fake.run(project, runId);
      assert.ok(run, `W&B has no run ${project}/${runId}`);
      return {
        config: fake.config(run),
        history: run.history.map((row) => ({ step: row._step as number, metrics: userKeys(row) })),
        summary: userKeys(run.summary),
        tables: fake.tables(run),
        finished: run.state === 'finished',
        ...(run.exitCode !== undefined && { exitCode: run.exitCode }),
      };
    },
    expectedUrl: (project, runId) => `${fake.baseUrl}/${fake.entity}/${project}/runs/${runId}`,
    async dispose() {
      await fake.stop();
      assert.deepEqual(fake.violations, [], 'the client sent something W&B would misread or refuse');
    },
  };
}

async function rejectsInvalid(promise: Promise<unknown>, pattern: RegExp): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof ForgelineError, `expected a ForgelineError, got ${String(err)}`);
    assert.equal(err.type, ErrorType.InvalidSpec);
    assert.equal(err.terminal, true);
    assert.match(err.message, pattern);
    return true;
  });
}

const ADAPTERS: Array<{ name: string; harness: () => Promise<Harness> }> = [
  { name: 'LocalTracker', harness: localHarness },
  { name: 'WandbTracker', harness: wandbHarness },
];

describe('Tracker conformance', () => {
  for (const adapter of ADAPTERS) {
    describe(adapter.name, () => {
      const project = 'conformance';
      let h: Harness;

      beforeEach(async () => {
        h = await adapter.harness();
      });

      afterEach(async () => {
        await h.dispose();
      });

      it('records config, metrics with steps, a table and the summary, then finishes', async () => {
        const runId = newRunId();
        const run = await h.tracker.openRun({
          runId,
          project,
          name: 'release demo-7b@3f2a1c',
          group: 'demo-7b',
          jobType: 'release',
          tags: ['ci'],
          config: { lr: 0.0002, model: 'demo-7b' },
        });
        assert.equal(run.runId, runId);
        assert.equal(run.url, h.expectedUrl(project, runId));

        await run.setConfig({ rank: 16 });
        await run.log({ loss: 2.5, lr: 0.0002 }, 0);
        await run.log({ loss: 1.75 }, 10);
        await run.log({ loss: 1.5 });
        await run.logTable('eval/results', ['prompt', 'score', 'passed'], [
          ['2+2?', 0.9, true],
          ['capital of France?', 0.4, false],
        ]);
        await run.setSummary({ 'eval/score': 0.65, loss: 1.4 });
        await run.finish(0);

        const view = await h.read(project, runId);
        assert.deepEqual(view.config, { lr: 0.0002, model: 'demo-7b', rank: 16 });
        assert.deepEqual(view.history, [
          { step: 0, metrics: { loss: 2.5, lr: 0.0002 } },
          { step: 10, metrics: { loss: 1.75 } },
          { step: 11, metrics: { loss: 1.5 } },
        ]);
        assert.deepEqual(view.summary, { loss: 1.4, lr: 0.0002, 'eval/score': 0.65 });
        assert.deepEqual(view.tables, [
          {
            name: 'eval/results',
            columns: ['prompt', 'score', 'passed'],
            rows: [
              ['2+2?', 0.9, true],
              ['capital of France?', 0.4, false],
            ],
          },
        ]);
        assert.equal(view.finished, true);
        assert.equal(view.exitCode, 0);
        assert.deepEqual(h.logger.warnings, []);
      });

      it('appends to the same run when the runId is opened again (resume)', async () => {
        const runId = newRunId();
        const first = await h.tracker.openRun({ runId, project, config: { stage: 'train', lr: 1 } });
        await first.log({ loss: 2 }, 0);
        await first.log({ loss: 1 });
        await first.setSummary({ best: 1 });
        await first.finish(0);

        const second = await h.tracker.openRun({ runId, project, config: { stage: 'eval' } });
        assert.equal(second.url, first.url);
        await second.log({ accuracy: 0.8 });
        await second.log({ accuracy: 0.85 }, 5);
        await second.finish(2);

        const view = await h.read(project, runId);
        assert.deepEqual(view.config, { stage: 'eval', lr: 1 });
        assert.deepEqual(
          view.history.map((row) => row.step),
          [0, 1, 2, 5],
        );
        assert.deepEqual(view.summary, { loss: 1, best: 1, accuracy: 0.85 });
        assert.equal(view.finished, true);
        assert.equal(view.exitCode, 2);
      });

      it('numbers steps like W&B: auto steps follow the last one, a lower step is dropped with one warning', async () => {
        const runId = newRunId();
        const run = await h.tracker.openRun({ runId, project });
        await run.log({ a: 1 }, 5);
        await run.log({ a: 2 }, 3);
        await run.log({ a: 3 }, 2);
        await run.log({ a: 4 }, 5);
        await run.log({ a: 5 });
        await run.finish();

        const view = await h.read(project, runId);
        assert.deepEqual(
          view.history.map((row) => [row.step, row.metrics.a]),
          [
            [5, 1],
            [5, 4],
            [6, 5],
          ],
        );
        assert.equal(h.logger.warnings.length, 1);
        assert.match(h.logger.warnings[0]!, /step/);
      });

      it('makes flush and finish safe to repeat and ignores calls after finish', async () => {
        const runId = newRunId();
        const run = await h.tracker.openRun({ runId, project });
        await run.log({ x: 1 });
        await run.flush();
        await run.flush();
        await run.finish(0);
        await run.finish(1);
        await run.flush();
        await run.log({ x: 2 });
        await run.setSummary({ y: 1 });

        const view = await h.read(project, runId);
        assert.deepEqual(view.history, [{ step: 0, metrics: { x: 1 } }]);
        assert.equal(view.exitCode, 0);
        assert.deepEqual(view.summary, { x: 1 });
        assert.equal(h.logger.warnings.length, 1);
        assert.match(h.logger.warnings[0]!, /finished/);
      });

      it('rejects invalid arguments as terminal InvalidSpec errors', async () => {
        await rejectsInvalid(h.tracker.openRun({ runId: 'release/demo/3f2a', project }), /runId/);
        await rejectsInvalid(h.tracker.openRun({ runId: newRunId(), project: 'my project' }), /project/);
        const run = await h.tracker.openRun({ runId: newRunId(), project });
        await rejectsInvalid(run.log({ _step: 1 }), /reserved|_/);
        await rejectsInvalid(run.log({ loss: 1 }, -1), /step/);
        await rejectsInvalid(run.log({ loss: 1 }, 1.5), /step/);
        await rejectsInvalid(run.log({ loss: { nested: 1 } as never }), /scalar|number/);
        await rejectsInvalid(run.logTable('t', ['a', 'b'], [[1]]), /row 0/);
        await rejectsInvalid(run.logTable('t', [], []), /columns/);
        await rejectsInvalid(run.setConfig({ big: BigInt(1) }), /JSON/);
        await run.finish();
      });
    });
  }
});

describe('LocalTracker', () => {
  it('writes one JSON record per line, typed and timestamped, under <home>/runs/<project>/<runId>.jsonl', async () => {
    const home = await tmpHome();
    const tracker = new LocalTracker({ home, logger: recordingLogger() });
    const runId = newRunId();
    const run = await tracker.openRun({ runId, project: 'demo', config: { a: 1 }, tags: ['x'] });
    await run.log({ loss: 1 }, 0);
    await run.logTable('t', ['c'], [[1]]);
    await run.setSummary({ best: 1 });
    await run.finish(0);

    const file = path.join(home, 'runs', 'demo', `${runId}.jsonl`);
    assert.equal(run.url, pathToFileURL(file).href);
    const lines = (await readFile(file, 'utf8')).trimEnd().split('\n');
    const records = lines.map((line) => JSON.parse(line) as { type: string; ts: string });
    assert.deepEqual(
      records.map((r) => r.type),
      ['init', 'config', 'log', 'table', 'summary', 'finish'],
    );
    for (const record of records) assert.ok(!Number.isNaN(Date.parse(record.ts)), `bad ts in ${JSON.stringify(record)}`);
    assert.deepEqual(records[0], { type: 'init', runId, project: 'demo', tags: ['x'], resumed: false, ts: records[0]!.ts });
    assert.deepEqual(records[2], { type: 'log', step: 0, metrics: { loss: 1 }, ts: records[2]!.ts });
  });

  it('keeps NaN and Infinity as strings, since JSON cannot hold them', async () => {
    const home = await tmpHome();
    const run = await new LocalTracker({ home }).openRun({ runId: 'nan', project: 'demo' });
    await run.log({ loss: NaN, grad: Infinity, low: -Infinity });
    await run.finish();
    const data = await readLocalRun(localRunPath(home, 'demo', 'nan'));
    assert.deepEqual(data.history[0]!.metrics, { loss: 'NaN', grad: 'Infinity', low: '-Infinity' });
  });

  it('readLocalRun folds resumes and skips a line torn by a crash', async () => {
    const home = await tmpHome();
    const tracker = new LocalTracker({ home });
    const first = await tracker.openRun({ runId: 'r1', project: 'demo', tags: ['a'] });
    await first.log({ x: 1 });
    await first.finish(0);
    const second = await tracker.openRun({ runId: 'r1', project: 'demo', tags: ['b'], name: 'again' });
    await second.log({ x: 2 });
    await appendFile(localRunPath(home, 'demo', 'r1'), '{"type":"log","step":9,"metr');

    const data = await readLocalRun(localRunPath(home, 'demo', 'r1'));
    assert.equal(data.opens, 2);
    assert.equal(data.finished, false, 'the reopened run is not finished yet');
    assert.equal(data.exitCode, undefined);
    assert.deepEqual(data.tags, ['a', 'b']);
    assert.equal(data.name, 'again');
    assert.deepEqual(
      data.history.map((row) => [row.step, row.metrics.x]),
      [
        [0, 1],
        [1, 2],
      ],
    );
    assert.equal(data.skippedLines, 1);
  });

  it('keeps every line whole when several processes append to one run at once', async function () {
    this.timeout(60_000);
    const home = await tmpHome();
    const writers = 4;
    const rowsPerWriter = 150;
    const script = `
      const { LocalTracker } = require(${JSON.stringify(path.join(REPO_ROOT, 'src/adapters/local-tracker.ts'))});
      (async () => {
        const run = await new LocalTracker({ home: process.env.FL_HOME }).openRun({ runId: 'shared', project: 'demo' });
        const pad = 'x'.repeat(6000);
        const writes = [];
        for (let i = 0; i < ${rowsPerWriter}; i++) writes.push(run.log({ writer: process.env.FL_WRITER, i, pad }));
        await Promise.all(writes);
        await run.finish(0);
      })().catch((err) => { console.error(err); process.exit(1); });
    `;
    const run = promisify(execFile);
    await Promise.all(
      Array.from({ length: writers }, (_, writer) =>
        run(process.execPath, ['--require', 'tsx/cjs', '-e', script], {
          cwd: REPO_ROOT,
          env: { ...process.env, FL_HOME: home, FL_WRITER: String(writer) },
        }),
      ),
    );

    const data = await readLocalRun(localRunPath(home, 'demo', 'shared'));
    assert.equal(data.skippedLines, 0, 'a line was torn or interleaved');
    assert.equal(data.opens, writers);
    assert.equal(data.history.length, writers * rowsPerWriter);
    for (let writer = 0; writer < writers; writer += 1) {
      const mine = data.history.filter((row) => row.metrics.writer === String(writer)).map((row) => row.metrics.i);
      assert.deepEqual(mine, Array.from({ length: rowsPerWriter }, (_, i) => i), `writer ${writer} rows out of order`);
    }
  });

  it('reports a home it cannot write as a ConfigError naming FORGELINE_HOME', async () => {
    const base = await tmpHome();
    const blocker = path.join(base, 'a-file');
    await writeFile(blocker, 'not a directory');
    const tracker = new LocalTracker({ home: path.join(blocker, 'home') });
    await assert.rejects(tracker.openRun({ runId: 'r', project: 'demo' }), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.match(err.message, /FORGELINE_HOME/);
      return true;
    });
  });
});

describe('WandbTracker against a local HTTP endpoint that checks the W&B wire format', () => {
  let fake: FakeWandbServer;
  let logger: RecordingLogger;

  function tracker(options: Partial<WandbTrackerOptions> = {}): WandbTracker {
    return new WandbTracker({
      apiKey: fake.apiKey,
      baseUrl: fake.baseUrl,
      logger,
      retry: FAST_RETRY,
      flushIntervalMs: 60_000,
      ...options,
    });
  }

  beforeEach(async () => {
    fake = await startFake();
    logger = recordingLogger();
  });

  afterEach(async () => {
    await fake.stop();
    assert.deepEqual(fake.violations, [], 'the client sent something W&B would misread or refuse');
  });

  it('authenticates API calls with Basic api:<key> and keeps the key away from upload URLs', async () => {
    const run = await tracker().openRun({ runId: newRunId(), project: 'auth' });
    await run.log({ loss: 1 });
    await run.logTable('eval', ['q', 'ok'], [['a', true]]);
    await run.finish(0);

    const expected = `Basic ${Buffer.from(`api:${fake.apiKey}`).toString('base64')}`;
    const api = fake.requests.filter((r) => r.route === 'graphql' || r.route === 'file_stream');
    assert.ok(api.length >= 4);
    for (const request of api) assert.equal(request.authorization, expected, `${request.route} ${request.operationName ?? ''}`);
    const uploads = fake.requests.filter((r) => r.route === 'storage');
    assert.equal(uploads.length, 1);
    assert.equal(uploads[0]!.authorization, undefined);
  });

  it('asks Viewer for the default entity once, then creates the run with UpsertBucket', async () => {
    const t = tracker();
    const runId = newRunId();
    const run = await t.openRun({
      runId,
      project: 'shapes',
      name: 'release demo-7b@3f2a1c',
      group: 'demo-7b',
      jobType: 'release',
      tags: ['ci', 'nightly'],
      config: { lr: 0.0002, lora: { rank: 16 } },
    });
    await t.openRun({ runId: newRunId(), project: 'shapes' });

    assert.equal(fake.graphqlRequests('Viewer').length, 1, 'the default entity is asked once per tracker');
    const viewer = fake.graphqlRequests('Viewer')[0]!;
    assert.match(viewer.query!, /query Viewer\s*{\s*viewer\s*{[^}]*entity/);

    const upsert = fake.graphqlRequests('UpsertBucket')[0]!;
    assert.match(upsert.query!, /mutation UpsertBucket\(/);
    assert.match(upsert.query!, /upsertBucket\(\s*input:/);
    const vars = upsert.variables!;
    assert.equal(vars.name, runId);
    assert.equal(vars.project, 'shapes');
    assert.equal(vars.entity, fake.entity);
    assert.equal(vars.groupName, 'demo-7b');
    assert.equal(vars.displayName, 'release demo-7b@3f2a1c');
    assert.equal(vars.jobType, 'release');
    assert.deepEqual(vars.tags, ['ci', 'nightly']);
    assert.equal(typeof vars.config, 'string', 'config is a JSONString');
    assert.deepEqual(JSON.parse(vars.config as string), { lr: { value: 0.0002 }, lora: { value: { rank: 16 } } });

    const resume = fake.graphqlRequests('RunResumeStatus')[0]!;
    assert.deepEqual(resume.variables, { project: 'shapes', entity: fake.entity, name: runId });

    await run.setConfig({ epochs: 3 });
    await run.finish(0);
    const update = fake.graphqlRequests('UpsertBucket').at(-1)!;
    assert.equal(update.variables!.id, fake.run('shapes', runId)!.storageId, 'config updates name the run by storage id');
    assert.deepEqual(JSON.parse(update.variables!.config as string), {
      lr: { value: 0.0002 },
      lora: { value: { rank: 16 } },
      epochs: { value: 3 },
    });

    const stored = fake.run('shapes', runId)!;
    assert.deepEqual([stored.group, stored.jobType, stored.displayName, stored.tags], ['demo-7b', 'release', 'release demo-7b@3f2a1c', ['ci', 'nightly']]);
  });

  it('skips Viewer when WANDB_ENTITY is configured', async () => {
    const run = await tracker({ entity: fake.entity }).openRun({ runId: newRunId(), project: 'entity' });
    await run.finish();
    assert.equal(fake.graphqlRequests('Viewer').length, 0);
    assert.equal(fake.graphqlRequests('UpsertBucket')[0]!.variables!.entity, fake.entity);
  });

  it('streams history at increasing offsets, the summary as one line, then complete with the exit code', async () => {
    const runId = newRunId();
    const run = await tracker().openRun({ runId, project: 'stream' });
    await run.log({ loss: 3 }, 0);
    await run.log({ loss: 2 }, 1);
    await run.log({ loss: 1.5 }, 2);
    await run.flush();
    await run.log({ loss: 1 });
    await run.log({ loss: 0.5 });
    await run.setSummary({ best: 0.5 });
    await run.finish(3);

    const bodies = fake.fileStreamRequests(runId).map((r) => r.body as Record<string, any>);
    const history = bodies.filter((b) => b.files?.['wandb-history.jsonl']).map((b) => b.files['wandb-history.jsonl']);
    assert.deepEqual(
      history.map((chunk) => [chunk.offset, chunk.content.length]),
      [
        [0, 3],
        [3, 2],
      ],
    );
    const rows = history.flatMap((chunk) => chunk.content.map((line: string) => JSON.parse(line)));
    assert.deepEqual(
      rows.map((row) => row._step),
      [0, 1, 2, 3, 4],
    );
    for (const row of rows) {
      assert.equal(typeof row._runtime, 'number');
      assert.ok(Math.abs(row._timestamp - Date.now() / 1000) < 60, '_timestamp is in seconds');
    }
    for (const body of bodies.filter((b) => b.files?.['wandb-summary.json'])) {
      const chunk = body.files['wandb-summary.json'];
      assert.equal(chunk.offset, 0);
      assert.equal(chunk.content.length, 1);
    }
    assert.deepEqual(bodies.at(-1), { complete: true, exitcode: 3 });
    const stored = fake.run('stream', runId)!;
    assert.equal(stored.state, 'finished');
    assert.equal(stored.exitCode, 3);
    assert.equal(stored.summary.best, 0.5);
    assert.equal(stored.summary._step, 4);
  });

  it('continues the history offset of a resumed run from RunResumeStatus', async () => {
    const runId = newRunId();
    const t = tracker();
    const first = await t.openRun({ runId, project: 'resume' });
    for (let i = 0; i < 4; i += 1) await first.log({ i });
    await first.finish(0);
    const second = await tracker().openRun({ runId, project: 'resume' });
    await second.log({ i: 4 });
    await second.finish(0);

    const offsets = fake
      .fileStreamRequests(runId)
      .map((r) => (r.body as Record<string, any>).files?.['wandb-history.jsonl']?.offset)
      .filter((o) => o !== undefined);
    assert.deepEqual(offsets, [0, 4]);
    assert.deepEqual(
      fake.run('resume', runId)!.history.map((row) => row._step),
      [0, 1, 2, 3, 4],
    );
  });

  it('uploads tables as W&B table files referenced from the summary', async () => {
    const runId = newRunId();
    const run = await tracker().openRun({ runId, project: 'tables' });
    await run.logTable('eval/results', ['prompt', 'score'], [
      ['a', 1],
      ['b', 0.5],
    ]);
    await run.finish(0);

    const stored = fake.run('tables', runId)!;
    const ref = stored.summary['eval/results'] as Record<string, unknown>;
    assert.equal(ref._type, 'table-file');
    assert.match(String(ref.path), /^media\/table\/eval\/results_0_[0-9a-f]{20}\.table\.json$/);
    assert.deepEqual([ref.ncols, ref.nrows], [2, 2]);
    assert.deepEqual(JSON.parse(stored.files.get(String(ref.path))!.toString()), {
      columns: ['prompt', 'score'],
      data: [
        ['a', 1],
        ['b', 0.5],
      ],
    });
    assert.deepEqual([...stored.reportedUploads], [ref.path]);
    const createRunFiles = fake.graphqlRequests('CreateRunFiles')[0]!;
    assert.deepEqual(createRunFiles.variables, { entity: fake.entity, project: 'tables', run: runId, files: [ref.path] });
  });

  it('links runs as <appUrl>/<entity>/<project>/runs/<id>', async () => {
    const runId = newRunId();
    const run = await tracker().openRun({ runId, project: 'links' });
    assert.equal(run.url, `${fake.baseUrl}/${fake.entity}/links/runs/${runId}`);
    await run.finish();
    const custom = await tracker({ appUrl: 'https://wandb.example.com/' }).openRun({ runId, project: 'links' });
    assert.equal(custom.url, `https://wandb.example.com/${fake.entity}/links/runs/${runId}`);
    await custom.finish();
    assert.equal(wandbAppUrl('https://api.wandb.ai'), 'https://wandb.ai');
    assert.equal(wandbAppUrl('https://wandb.internal.example.com/'), 'https://wandb.internal.example.com');
  });

  it('writes NaN and Infinity as bare tokens, as the Python SDK does', async () => {
    const runId = newRunId();
    const run = await tracker().openRun({ runId, project: 'nan' });
    await run.log({ loss: NaN, grad: Infinity, low: -Infinity, label: 'NaN' });
    await run.finish();
    const stored = fake.run('nan', runId)!;
    assert.match(stored.historyLines[0]!, /"loss":NaN,"grad":Infinity,"low":-Infinity,"label":"NaN"/);
    const row = stored.history[0]!;
    assert.ok(Number.isNaN(row.loss));
    assert.deepEqual([row.grad, row.low, row.label], [Infinity, -Infinity, 'NaN']);
    assert.deepEqual(parseWandbLine(stored.summaryLine!), stored.summary);
  });

  it('retries 5xx answers with exponential backoff and loses nothing', async () => {
    const runId = newRunId();
    fake.failNext(2, { route: 'graphql', status: 502 });
    const run = await tracker().openRun({ runId, project: 'retry' });
    fake.failNext(3, { route: 'file_stream', status: 503 });
    for (let i = 0; i < 5; i += 1) await run.log({ i }, i);
    await run.flush();
    await run.finish(0);

    const statuses = fake.fileStreamRequests(runId).map((r) => r.status);
    assert.deepEqual(statuses.slice(0, 4), [503, 503, 503, 200]);
    const stored = fake.run('retry', runId)!;
    assert.deepEqual(
      stored.history.map((row) => row.i),
      [0, 1, 2, 3, 4],
    );
    assert.equal(stored.state, 'finished');
    assert.deepEqual(logger.warnings, [], 'retries that succeed are not worth a warning');
  });

  it('keeps logging while W&B is down: no throw, exactly one warning, everything delivered once it is back', async () => {
    const runId = newRunId();
    const run = await tracker().openRun({ runId, project: 'outage', config: { a: 1 } });
    await run.log({ step0: 1 });
    await run.flush();

    await fake.stop();
    for (let i = 1; i <= 20; i += 1) await run.log({ loss: 1 / i });
    await run.setConfig({ b: 2 });
    await run.setSummary({ best: 0.05 });
    await run.logTable('eval', ['q', 'score'], [['x', 1]]);
    await run.flush();
    await run.flush();
    await run.finish(0);
    assert.equal(logger.warnings.length, 1, `warnings: ${logger.warnings.join(' | ')}`);
    assert.match(logger.warnings[0]!, /W&B/);
    assert.equal((run as WandbRun).bufferStats.pendingRows, 20);

    await fake.start();
    await run.flush();
    const stored = fake.run('outage', runId)!;
    assert.equal(stored.history.length, 21);
    assert.equal(stored.history.at(-1)!.loss, 1 / 20);
    assert.deepEqual(fake.config(stored), { a: 1, b: 2 });
    assert.equal(stored.summary.best, 0.05);
    assert.equal(fake.tables(stored).length, 1);
    assert.equal(stored.state, 'finished');
    assert.equal(logger.warnings.length, 1);
    assert.ok(logger.infos.some((m) => /again/.test(m)), 'recovery is reported');
    assert.deepEqual((run as WandbRun).bufferStats, {
      connected: true,
      pendingRows: 0,
      pendingTables: 0,
      droppedRows: 0,
      droppedTables: 0,
      completed: true,
    });
  });

  it('bounds the buffer while W&B is down: the oldest rows are dropped and counted', async () => {
    const runId = newRunId();
    const run = await tracker({ maxBufferedRows: 5 }).openRun({ runId, project: 'bounded' });
    await fake.stop();
    for (let step = 0; step < 12; step += 1) await run.log({ step_value: step }, step);
    await run.flush();
    assert.equal((run as WandbRun).bufferStats.pendingRows, 5);
    assert.equal((run as WandbRun).bufferStats.droppedRows, 7);

    await fake.start();
    await run.finish(0);
    assert.deepEqual(
      fake.run('bounded', runId)!.history.map((row) => row._step),
      [7, 8, 9, 10, 11],
    );
    assert.equal(logger.warnings.length, 1);
    assert.ok(logger.infos.some((m) => /overflowed/.test(m)));
  });

  it('opens a run while W&B is unreachable and creates it once W&B is back', async () => {
    const runId = newRunId();
    await fake.stop();
    const run = await tracker({ entity: fake.entity }).openRun({ runId, project: 'late', config: { a: 1 }, tags: ['t'] });
    assert.equal(run.url, `${fake.baseUrl}/${fake.entity}/late/runs/${runId}`);
    await run.log({ x: 1 });
    await run.setSummary({ y: 2 });
    await run.log({ x: 2 });
    await run.flush();
    assert.equal(logger.warnings.length, 1);

    await fake.start();
    await run.finish(0);
    const stored = fake.run('late', runId)!;
    assert.deepEqual(fake.config(stored), { a: 1 });
    assert.deepEqual(stored.tags, ['t']);
    assert.deepEqual(
      stored.history.map((row) => [row._step, row.x]),
      [
        [0, 1],
        [1, 2],
      ],
    );
    assert.equal(stored.summary.y, 2);
    assert.equal(stored.state, 'finished');
  });

  it('delivers in the background, without flush, once W&B is back', async () => {
    const runId = newRunId();
    const run = await tracker({ flushIntervalMs: 20 }).openRun({ runId, project: 'background' });
    await fake.stop();
    await run.log({ x: 1 });
    await run.flush();
    await fake.start();
    const deadline = Date.now() + 5_000;
    while (fake.run('background', runId)!.history.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.equal(fake.run('background', runId)!.history.length, 1);
    await run.finish(0);
  });

  it('refuses a bad API key at openRun with a ConfigError naming WANDB_API_KEY', async () => {
    for (const entity of [undefined, fake.entity]) {
      const bad = tracker({ apiKey: 'wrong-key', ...(entity && { entity }) });
      await assert.rejects(bad.openRun({ runId: newRunId(), project: 'auth' }), (err: unknown) => {
        assert.ok(err instanceof ConfigError, String(err));
        assert.equal(err.terminal, true);
        assert.match(err.message, /WANDB_API_KEY/);
        return true;
      });
    }
    assert.ok(fake.requests.every((r) => r.status === 401));
    assert.deepEqual(logger.warnings, []);
  });

  it('degrades instead of throwing when the key is refused after openRun', async () => {
    const runId = newRunId();
    const run = await tracker().openRun({ runId, project: 'revoked' });
    const original = fake.apiKey;
    fake.apiKey = 'rotated';
    await run.log({ x: 1 });
    await run.flush();
    await run.finish(0);
    assert.equal(logger.warnings.length, 1);
    assert.match(logger.warnings[0]!, /401/);

    fake.apiKey = original;
    await run.flush();
    assert.equal(fake.run('revoked', runId)!.state, 'finished');
  });

  it('accepts the traffic of the official @wandb/sdk, so these checks model real W&B', async function () {
    this.timeout(30_000);
    // The SDK registers process-wide handlers on init and never removes them: take them back.
    const events = ['SIGINT', 'SIGTERM', 'beforeExit'] as NodeJS.Signals[];
    const listeners = () => new Map(events.map((e) => [e, process.rawListeners(e)]));
    const before = listeners();
    try {
      const { default: wandb } = await import('@wandb/sdk');
      const run = await wandb.init({
        id: 'sdk-oracle',
        project: 'oracle',
        name: 'official sdk',
        settings: { apiKey: fake.apiKey, baseUrl: fake.baseUrl, silent: true },
      });
      run.log({ loss: 1 }, 0);
      run.log({ loss: 0.5 }, 1);
      await run.finish(0);
    } finally {
      for (const [event, now] of listeners()) {
        for (const listener of now) {
          if (!before.get(event)!.includes(listener)) process.removeListener(event, listener as () => void);
        }
      }
    }
    const stored = fake.run('oracle', 'sdk-oracle')!;
    assert.deepEqual(
      stored.history.map((row) => [row._step, row.loss]),
      [
        [0, 1],
        [1, 0.5],
      ],
    );
    assert.equal(stored.state, 'finished');
    assert.equal(stored.displayName, 'official sdk');
  });
});

describe('the fake W&B backend refuses what W&B would misread', () => {
  let fake: FakeWandbServer;

  beforeEach(async () => {
    fake = await startFake();
  });

  afterEach(async () => {
    await fake.stop();
  });

  function post(route: string, body: unknown, authorization = `Basic ${Buffer.from(`api:${fake.apiKey}`).toString('base64')}`): Promise<Response> {
    return fetch(`${fake.baseUrl}${route}`, { method: 'POST', headers: { authorization, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  }

  const CREATE_RUN = 'mutation UpsertBucket($name: String, $project: String, $config: JSONString) { upsertBucket(input: {name: $name, modelName: $project, config: $config}) { bucket { id } } }';

  it('answers 401 unless the request carries Basic api:<key>', async () => {
    const query = { query: 'query Viewer { viewer { entity } }' };
    assert.equal((await post('/graphql', query, `Bearer ${fake.apiKey}`)).status, 401);
    assert.equal((await post('/graphql', query, `Basic ${Buffer.from(fake.apiKey).toString('base64')}`)).status, 401);
    assert.equal((await post('/graphql', query)).status, 200);
  });

  it('validates GraphQL against the W&B schema: undeclared variables, wrong types, unknown fields', async () => {
    const cases = [
      { query: 'mutation UpsertBucket { upsertBucket(input: {name: $name}) { inserted } }', variables: { name: 'r' } },
      { query: 'mutation UpsertBucket($tags: String) { upsertBucket(input: {tags: $tags}) { inserted } }', variables: { tags: 'a' } },
      { query: 'mutation UpsertBucket($config: JSONString) { upsertBucket(input: {config: $config}) { inserted } }', variables: { config: { lr: 1 } } },
      { query: 'query Viewer { viewer { apiKey } }' },
    ];
    for (const body of cases) assert.equal((await post('/graphql', body)).status, 400, body.query);
    assert.equal(fake.violations.length, cases.length);
  });

  it('refuses config that is not {key: {value}} (what @wandb/sdk 0.5.1 sends)', async () => {
    const res = await post('/graphql', { query: CREATE_RUN, variables: { name: 'r', project: 'p', config: '{"lr":0.1}' } });
    const payload = (await res.json()) as { errors?: unknown[] };
    assert.ok(payload.errors?.length);
    assert.match(fake.violations.join('\n'), /config\.lr must be \{"value": \.\.\.\}/);
  });

  it('refuses history that leaves a gap, rewrites lines or lacks _step', async () => {
    await post('/graphql', { query: CREATE_RUN, variables: { name: 'r', project: 'p' } });
    const stream = (offset: number, content: string[]) => post(`/files/${fake.entity}/p/r/file_stream`, { files: { 'wandb-history.jsonl': { offset, content } } });
    const line = (step: number) => JSON.stringify({ x: step, _step: step, _runtime: 1, _timestamp: 1 });
    assert.equal((await stream(0, [line(0), line(1)])).status, 200);
    assert.equal((await stream(1, [line(1), line(2)])).status, 200, 'resending a line unchanged is fine');
    assert.equal((await stream(5, [line(5)])).status, 400);
    assert.equal((await stream(0, [line(7)])).status, 400);
    assert.equal((await stream(3, ['{"x":1}'])).status, 400);
    assert.equal((await stream(3, [line(1)])).status, 400);
    const violations = fake.violations.join('\n');
    for (const expected of [/leaves a gap/, /resent with different content/, /no integer _step/, /goes below 2/]) assert.match(violations, expected);
    assert.deepEqual(
      fake.run('p', 'r')!.history.map((row) => row._step),
      [0, 1, 2],
    );
  });

  it('refuses file_stream for a run that was never created, and exitcode without complete', async () => {
    assert.equal((await post(`/files/${fake.entity}/p/ghost/file_stream`, { complete: true, exitcode: 0 })).status, 404);
    await post('/graphql', { query: CREATE_RUN, variables: { name: 'r', project: 'p' } });
    assert.equal((await post(`/files/${fake.entity}/p/r/file_stream`, { exitcode: 0 })).status, 400);
    assert.equal((await post(`/files/${fake.entity}/p/r/file_stream`, { complete: true })).status, 400);
    assert.equal(fake.violations.length, 3);
  });
});

describe('createTracker', () => {
  it('builds a local tracker', async () => {
    const tracker = createTracker({ kind: 'local', home: await tmpHome() });
    assert.equal(tracker.kind, 'local');
    assert.ok(tracker instanceof LocalTracker);
  });

  it('builds a W&B tracker when a key is given', () => {
    const tracker = createTracker({ kind: 'wandb', home: '/unused', wandb: { apiKey: 'k', baseUrl: 'http://127.0.0.1:9' } });
    assert.equal(tracker.kind, 'wandb');
  });

  it('refuses kind wandb without a key, naming WANDB_API_KEY', () => {
    for (const wandb of [undefined, {}, { apiKey: '' }]) {
      assert.throws(
        () => createTracker({ kind: 'wandb', home: '/unused', ...(wandb && { wandb }) }),
        (err: unknown) => err instanceof ConfigError && /WANDB_API_KEY/.test(err.message),
      );
    }
  });
});
