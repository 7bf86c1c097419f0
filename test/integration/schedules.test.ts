import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import { Command } from 'commander';
import { UsageError } from '../../src/cli/errors';
import { Output, type Stream } from '../../src/cli/output';
import { addScheduleCommands, scheduleApply } from '../../src/cli/schedule';
import type { ForgelineConfig } from '../../src/config/schema';
import { DECLARATION_MEMO, MANAGED_MEMO } from '../../src/schedules/apply';
import { schedulesYaml } from '../fixtures/schedules';
import { getLocalEnv } from '../helpers/temporal';

class Capture implements Stream {
  text = '';
  write(s: string): boolean {
    this.text += s;
    return true;
  }
}

/** `forgeline schedule ...` in process, against the test's client; returns what it printed. */
async function cli(client: Client, taskQueue: string, args: string[]): Promise<{ code: number; stdout: string }> {
  const stdout = new Capture();
  const out = new Output(stdout, new Capture());
  const result = { code: -1 };
  const program = new Command('forgeline').exitOverride();
  const run =
    <A extends unknown[]>(fn: (...a: A) => Promise<number>) =>
    async (...a: A) => {
      result.code = await fn(...a);
    };
  addScheduleCommands(program, out, run, () => ({ taskQueues: { control: taskQueue } }) as ForgelineConfig, (_cfg, fn) => fn(client));
  await program.parseAsync(['node', 'forgeline', 'schedule', ...args]);
  return { code: result.code, stdout: stdout.text };
}

/** Poll until `pred` holds (Temporal's schedule and visibility updates are asynchronous). */
async function eventually<T>(what: string, fn: () => Promise<T>, pred: (v: T) => boolean, ms = 30_000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (pred(v)) return v;
    if (Date.now() > until) assert.fail(`timed out waiting for ${what}: last ${JSON.stringify(v)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Workflows started by a schedule: the Schedule's action IDs (`<id>-<time>`), from its description. */
async function startedBy(client: Client, id: string): Promise<string[]> {
  const d = await client.schedule.getHandle(id).describe();
  return d.info.recentActions.map((a) => a.action.workflow.workflowId);
}

describe('forgeline schedule (real Temporal dev server)', function () {
  this.timeout(180_000);
  let dir: string;
  let client: Client;
  const created: string[] = [];
  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'forgeline-schedules-'));
    client = (await getLocalEnv()).client;
  });
  after(async () => {
    // Leave the shared dev server as found: no schedules, no runs left by these tests.
    for (const id of created) await client.schedule.getHandle(id).delete().catch(() => undefined);
    for await (const wf of client.workflow.list({ query: `WorkflowId STARTS_WITH "h7t-"` })) {
      if (wf.status.name === 'RUNNING') await client.workflow.getHandle(wf.workflowId, wf.runId).terminate('schedules test cleanup').catch(() => undefined);
    }
    rmSync(dir, { recursive: true, force: true });
  });

  function file(name: string, text: string): string {
    const p = path.join(dir, name);
    writeFileSync(p, text);
    return p;
  }

  it('apply creates; re-apply plans nothing; a changed file updates field by field; a removed entry is deleted only with --prune', async function () {
    const prefix = `h7t-${randomUUID().slice(0, 8)}`;
    const group = `g-${prefix}`;
    const tq = `tq-${prefix}`;
    created.push(`${prefix}-drift`, `${prefix}-reembed`);
    const out = new Output(new Capture(), new Capture());
    const text = () => (out.stdout as Capture).text;

    // 1. create
    const v1 = file('v1.yaml', schedulesYaml(group, prefix));
    assert.equal(await scheduleApply(client, tq, v1, {}, out), 0);
    assert.match(text(), new RegExp(`\\+ create ${prefix}-drift \\(embeddingDriftWorkflow\\)`));
    assert.match(text(), /plan \(group g-h7t-\S+\): 2 to create, 0 to update, 0 to delete, 0 unchanged/);
    const d = await client.schedule.getHandle(`${prefix}-drift`).describe();
    assert.deepEqual(d.memo?.[MANAGED_MEMO], { managed: true, group });
    assert.equal(d.action.workflowType, 'embeddingDriftWorkflow');
    assert.equal(d.action.taskQueue, tq);
    assert.equal(d.spec.timezone, 'Europe/Berlin');
    assert.equal(d.policies.overlap, 'SKIP');
    assert.equal((d.action.memo?.[DECLARATION_MEMO] as { cron: string[] }).cron[0], '0 3 1 1 *');
    const r = await client.schedule.getHandle(`${prefix}-reembed`).describe();
    assert.deepEqual([r.policies.pauseOnFailure, r.policies.catchupWindow, r.spec.intervals], [true, 600_000, [{ every: 7 * 86_400_000, offset: 7_200_000 }]]);

    // 2. re-apply: no-op
    (out.stdout as Capture).text = '';
    assert.equal(await scheduleApply(client, tq, v1, {}, out), 0);
    assert.match(text(), /0 to create, 0 to update, 0 to delete, 2 unchanged/);
    assert.match(text(), /nothing to do/);
    const lastUpdate = (await client.schedule.getHandle(`${prefix}-drift`).describe()).info.lastUpdatedAt;

    // 3. change overlap, cron and one input field: an update naming each field; --dry-run first changes nothing.
    const v2 = file('v2.yaml', schedulesYaml(group, prefix, { overlap: 'buffer_one', driftCron: '0 4 1 1 *', driftName: 'docs-queries-v2' }));
    (out.stdout as Capture).text = '';
    await scheduleApply(client, tq, v2, { dryRun: true }, out);
    assert.match(text(), /dry run: nothing changed/);
    assert.equal((await client.schedule.getHandle(`${prefix}-drift`).describe()).policies.overlap, 'SKIP');
    (out.stdout as Capture).text = '';
    await scheduleApply(client, tq, v2, {}, out);
    assert.match(text(), new RegExp(`~ update ${prefix}-drift`));
    assert.match(text(), /input\.name: "docs-queries" → "docs-queries-v2"/);
    assert.match(text(), /cron: \["0 3 1 1 \*"\] → \["0 4 1 1 \*"\]/);
    assert.match(text(), /overlap: "skip" → "buffer_one"/);
    assert.match(text(), /1 to update, 0 to delete, 1 unchanged/);
    const d2 = await client.schedule.getHandle(`${prefix}-drift`).describe();
    assert.equal(d2.policies.overlap, 'BUFFER_ONE');
    assert.equal((d2.action.args?.[0] as { name: string }).name, 'docs-queries-v2');
    assert.notDeepEqual(d2.info.lastUpdatedAt, lastUpdate);
    (out.stdout as Capture).text = '';
    await scheduleApply(client, tq, v2, {}, out);
    assert.match(text(), /2 unchanged/, 'the update round-trips: applying v2 again is a no-op');

    // 4. an edit in the Temporal UI (here through the API) shows up in the plan and is put back.
    await client.schedule.getHandle(`${prefix}-reembed`).update((prev) => ({ ...prev, policies: { ...prev.policies, overlap: 'ALLOW_ALL' } }));
    const plan = await cli(client, tq, ['apply', '--dry-run', v2]);
    assert.match(plan.stdout, /overlap: "allow_all" → "skip"/);

    // 5. remove the re-embed: kept without --prune, deleted with it.
    const v3 = file('v3.yaml', schedulesYaml(group, prefix, { overlap: 'buffer_one', driftCron: '0 4 1 1 *', driftName: 'docs-queries-v2', withReembed: false }));
    const kept = await cli(client, tq, ['apply', v3]);
    assert.match(kept.stdout, new RegExp(`- delete ${prefix}-reembed \\(reembedCorpusWorkflow\\) \\(not in the file; kept: pass --prune to delete\\)`));
    assert.ok(await client.schedule.getHandle(`${prefix}-reembed`).describe());
    const pruned = await cli(client, tq, ['apply', '--prune', v3]);
    assert.match(pruned.stdout, /applied: 0 created, 0 updated, 1 deleted/);
    await assert.rejects(client.schedule.getHandle(`${prefix}-reembed`).describe(), (e: Error) => e.name === 'ScheduleNotFoundError');
    // The drift schedule of the group stays.
    assert.match((await cli(client, tq, ['apply', '--prune', v3])).stdout, /1 unchanged/);
  });

  it('refuses to take over a schedule it did not create; a schedule of another group is not pruned', async function () {
    const prefix = `h7t-${randomUUID().slice(0, 8)}`;
    created.push(`${prefix}-drift`, `${prefix}-reembed`);
    await client.schedule.create({ scheduleId: `${prefix}-drift`, spec: { intervals: [{ every: '365d' }] }, action: { type: 'startWorkflow', workflowType: 'embeddingDriftWorkflow', taskQueue: 'x', args: [] } });
    const out = new Output(new Capture(), new Capture());
    await assert.rejects(scheduleApply(client, 'tq', file('own.yaml', schedulesYaml('mine', prefix)), {}, out), (e: unknown) => e instanceof UsageError && /was not made by forgeline schedule apply/.test(e.message));
    assert.equal((await client.schedule.getHandle(`${prefix}-drift`).describe()).action.taskQueue, 'x', 'untouched');
    // Group a's re-embed schedule is not deleted by applying group b's file with --prune.
    await client.schedule.getHandle(`${prefix}-drift`).delete();
    await scheduleApply(client, 'tq', file('a.yaml', schedulesYaml('a', prefix)), {}, out);
    const other = `h7t-${randomUUID().slice(0, 8)}`;
    created.push(`${other}-drift`);
    await scheduleApply(client, 'tq', file('b.yaml', schedulesYaml('b', other, { withReembed: false })), { prune: true }, out);
    assert.ok(await client.schedule.getHandle(`${prefix}-reembed`).describe());
  });

  it('pause, unpause, trigger, backfill (file and CLI), describe, list, delete', async function () {
    const prefix = `h7t-${randomUUID().slice(0, 8)}`;
    const id = `${prefix}-drift`;
    created.push(id);
    const tq = `tq-${prefix}`; // nobody polls it: the started runs wait there and are terminated by after()
    // A backfill in the file: hourly runs over three past hours, all allowed to overlap.
    const backfill = `\n    every: 1h\n    backfill:\n      - { from: "2026-01-01T00:00:00Z", to: "2026-01-01T03:00:00Z", overlap: allow_all }`;
    const yaml = schedulesYaml('ops', prefix, { withReembed: false }).replace('    jitter: 30s', `    jitter: 30s${backfill}`);
    const f = file('ops.yaml', yaml);
    const applied = await cli(client, tq, ['apply', f]);
    assert.equal(applied.code, 0);
    assert.match(applied.stdout, /3 backfill|1 backfill\(s\) started/);
    const backfilled = await eventually('the backfilled runs', () => startedBy(client, id), (ids) => ids.length >= 3);
    assert.ok(backfilled.every((w) => w.startsWith(`${id}-2026-01-01T0`)), backfilled.join(', '));
    // Applying again does not run the same range twice.
    assert.match((await cli(client, tq, ['apply', f])).stdout, /nothing to do/);

    assert.match((await cli(client, tq, ['pause', id, '--note', 'maintenance'])).stdout, new RegExp(`paused ${id}`));
    let view = JSON.parse((await cli(client, tq, ['describe', id])).stdout) as { paused: boolean; note: string; managedBy: string; workflow: string };
    assert.deepEqual([view.paused, view.note, view.workflow], [true, 'maintenance', 'embeddingDriftWorkflow']);
    assert.match(view.managedBy, /group ops/);
    // apply leaves an operator's pause alone (the file does not set paused).
    assert.match((await cli(client, tq, ['apply', f])).stdout, /nothing to do/);
    assert.equal((await client.schedule.getHandle(id).describe()).state.paused, true);
    assert.deepEqual(JSON.parse((await cli(client, tq, ['unpause', id, '--json'])).stdout), { scheduleId: id, action: 'unpause', note: 'unpaused with forgeline schedule unpause' });
    view = JSON.parse((await cli(client, tq, ['describe', id])).stdout) as typeof view;
    assert.equal(view.paused, false);

    const before = (await startedBy(client, id)).length;
    assert.match((await cli(client, tq, ['trigger', id, '--overlap', 'allow_all'])).stdout, new RegExp(`triggered ${id}`));
    await eventually('the triggered run', () => startedBy(client, id), (ids) => ids.length === before + 1);

    await cli(client, tq, ['backfill', id, '--from', '2026-02-01T00:00:00Z', '--to', '2026-02-01T02:00:00Z', '--overlap', 'allow_all']);
    const all = await eventually('the CLI backfill', () => startedBy(client, id), (ids) => ids.filter((w) => w.startsWith(`${id}-2026-02-01T0`)).length >= 2);
    assert.ok(all.length >= before + 3);
    await assert.rejects(cli(client, tq, ['backfill', id, '--from', '2026-02-02T00:00:00Z', '--to', '2026-02-01T00:00:00Z']), /is not before --to/);

    const listed = JSON.parse((await cli(client, tq, ['list', '--json'])).stdout) as Array<{ id: string; group: string | null }>;
    assert.equal(listed.find((s) => s.id === id)?.group, 'ops');
    assert.deepEqual(JSON.parse((await cli(client, tq, ['delete', id, '--json'])).stdout), { scheduleId: id, action: 'delete' });
    await assert.rejects(cli(client, tq, ['describe', id]), (e: unknown) => e instanceof UsageError && /no schedule with ID/.test(e.message));
  });

  it('an invalid file changes nothing and names the field and line', async function () {
    const prefix = `h7t-${randomUUID().slice(0, 8)}`;
    const f = file('bad.yaml', schedulesYaml('bad', prefix).replace('overlap: skip', 'overlap: whenever'));
    await assert.rejects(
      cli(client, 'tq', ['apply', f]),
      (e: unknown) => e instanceof UsageError && /invalid schedules file .*bad\.yaml: schedules\[0\]\.overlap \(line 8\): expected one of skip/.test(e.message),
    );
    await assert.rejects(client.schedule.getHandle(`${prefix}-drift`).describe(), (e: Error) => e.name === 'ScheduleNotFoundError');
  });
});
