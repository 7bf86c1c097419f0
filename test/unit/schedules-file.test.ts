import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { REPO_ROOT } from '../../src/config/load';
import { scheduleOptions } from '../../src/schedules/apply';
import { parseSchedulesFile, SchedulesFileError } from '../../src/schedules/file';
import { schedulesYaml } from '../fixtures/schedules';

function problems(text: string): string[] {
  try {
    parseSchedulesFile(text, 'schedules.yaml');
  } catch (err) {
    assert.ok(err instanceof SchedulesFileError, String(err));
    return err.problems;
  }
  return assert.fail('expected the file to be refused');
}

describe('schedules file (YAML + zod, errors with field path and line)', function () {
  it('parses a valid file with defaults: UTC, skip, 1h catchup, no jitter, paused left alone', function () {
    const f = parseSchedulesFile(schedulesYaml('team-a', 'x'), 'f.yaml');
    assert.equal(f.group, 'team-a');
    const [drift, reembed] = f.schedules;
    assert.deepEqual([drift!.id, drift!.workflow, drift!.timezone, drift!.jitter, drift!.overlap], ['x-drift', 'embeddingDriftWorkflow', 'Europe/Berlin', '30s', 'skip']);
    assert.deepEqual([reembed!.timezone, reembed!.jitter, reembed!.catchupWindow, reembed!.paused, reembed!.pauseOnFailure], ['UTC', '0', '10m', undefined, true]);
    const o = scheduleOptions(reembed!, 'forgeline-control');
    assert.deepEqual(o.spec.intervals, [{ every: 7 * 86_400_000, offset: 7_200_000 }]);
    assert.equal(o.action.taskQueue, 'forgeline-control');
    assert.equal(o.action.workflowType, 'reembedCorpusWorkflow');
    assert.deepEqual(o.policies, { overlap: 'SKIP', catchupWindow: 600_000, pauseOnFailure: true });
    // The input goes as written (the workflow validates it again and fills its defaults).
    assert.deepEqual(o.action.args, [{ corpus: { name: 'docs', source: { folder: '/srv/corpus/docs' } }, store: { index: 'docs', alias: 'live' } }]);
  });

  it('examples/schedules.yaml is valid', function () {
    const f = parseSchedulesFile(readFileSync(path.join(REPO_ROOT, 'examples', 'schedules.yaml'), 'utf8'), 'examples/schedules.yaml');
    assert.deepEqual(new Set(f.schedules.map((s) => s.workflow)), new Set(['reembedCorpusWorkflow', 'embeddingDriftWorkflow', 'scheduledRetrainWorkflow']));
  });

  it('malformed YAML: the line and column', function () {
    const p = problems('group: a\nschedules:\n  - id: x\n    cron: "0 2 * * *\n');
    assert.equal(p.length, 1);
    assert.match(p[0]!, /^line \d+, column \d+: invalid YAML/);
  });

  it('a bad field: its path and line, and what is expected', function () {
    const text = schedulesYaml('g', 'x', { overlap: 'sometimes' });
    const p = problems(text);
    const line = text.split('\n').findIndex((l) => l.includes('overlap: sometimes')) + 1;
    assert.deepEqual(p, [`schedules[0].overlap (line ${line}): expected one of skip, buffer_one, buffer_all, cancel_other, terminate_other, allow_all`]);
  });

  it("the workflow input is validated with the workflow's own schema, problems named inside input", function () {
    const text = schedulesYaml('g', 'x').replace('store: { index: docs, alias: live }\n', 'store: { index: Docs, alias: live }\n');
    const p = problems(text);
    const line = text.split('\n').findIndex((l) => l.includes('index: Docs')) + 1;
    assert.equal(p.length, 1, p.join('\n'));
    assert.match(p[0]!, new RegExp(`^schedules\\[0\\]\\.input\\.reference\\.store\\.index \\(line ${line}\\): expected a index name`));
  });

  it('unknown workflow, unknown keys, a bad time zone and backfill range: each named with its line', function () {
    const text = `group: g
schedules:
  - id: a
    workflow: embeddingDriftWorkflows
    input: {}
  - id: b
    workflow: reembedCorpusWorkflow
    cron: "0 2 * * *"
    timezone: Mars/Olympus
    crons: "x"
    backfill:
      - { from: "2026-12-02T00:00:00Z", to: "2026-12-01T00:00:00Z" }
    input: { corpus: { name: docs, source: { folder: /c } }, store: { index: docs } }
`;
    const p = problems(text).join('\n');
    assert.match(p, /schedules\[0\]\.workflow \(line 4\): expected one of reembedCorpusWorkflow, embeddingDriftWorkflow, modelReleaseWorkflow, scheduledRetrainWorkflow/);
    assert.match(p, /schedules\[1\]\.timezone \(line 9\): expected an IANA time zone/);
    assert.match(p, /schedules\[1\] \(line 6\): Unrecognized key: "crons"|schedules\[1\]\.crons \(line 10\)/);
    assert.match(p, /schedules\[1\]\.backfill\[0\]\.to \(line 12\): expected from before to/);
  });

  it('duplicate ids: the second one named', function () {
    const entry = (id: string) => `  - id: ${id}\n    workflow: reembedCorpusWorkflow\n    every: 1h\n    input: { corpus: { name: docs, source: { folder: /c } }, store: { index: docs } }\n`;
    assert.deepEqual(problems(`schedules:\n${entry('a')}${entry('b')}${entry('a')}`), ['schedules[2].id (line 10): duplicate id a (also schedules.0.id)']);
  });

  it('every needs a positive duration; offset needs every and must be shorter; catchupWindow at least 10s', function () {
    const base = (extra: string) => `schedules:\n  - id: a\n    workflow: reembedCorpusWorkflow\n${extra}    input: { corpus: { name: docs, source: { folder: /c } }, store: { index: docs } }\n`;
    assert.match(problems(base('    cron: "0 2 * * *"\n    offset: 1h\n')).join('\n'), /offset \(line \d\): offset applies to every/);
    assert.match(problems(base('    every: 1h\n    offset: 2h\n')).join('\n'), /offset: .*|offset \(line \d\): expected offset shorter than every/);
    assert.match(problems(base('    every: 1h\n    catchupWindow: 5s\n')).join('\n'), /catchupWindow \(line \d\): expected at least 10s/);
    assert.match(problems(base('    every: soon\n')).join('\n'), /every \(line 4\): expected every as a duration/);
  });
});
