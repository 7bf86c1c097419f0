import assert from 'node:assert/strict';
import { ApplicationFailure } from '@temporalio/activity';
import { MockActivityEnvironment } from '@temporalio/testing';
import { gpuAdmissionPlan } from '../../activities/admission/plan';
import { createPrepareActivities } from '../../activities/reembed/prepare';
import type { ActivityDeps } from '../../activities/deps';
import { createValidateActivities } from '../../activities/release/validate';
import { ErrorType } from '../../src/contracts/errors';
import type { ReembedSpec } from '../../src/contracts/reembed-spec';
import type { ReleaseSpec } from '../../src/contracts/release-spec';
import { gpuLeaseId } from '../../src/contracts/gpu-admission';
import { renderReleaseDetails } from '../../src/contracts/release-details';
import { ReleaseOutcome, ReleaseStage, type ReleaseStatus } from '../../src/contracts/release-lifecycle';
import { ReleaseSpecSchema } from '../../src/contracts/specs/release-spec';
import { ForgelineError } from '../../src/ports/errors';
import { quotaYaml, writeQuotaFile } from '../helpers/quotas';

const rawRelease = (over: Record<string, unknown> = {}) => ({
  model: 'demo',
  base: { path: '/models/tiny' },
  dataset: { uri: 'artifact://datasets/tiny/', sha256: 'a'.repeat(64) },
  evaluation: { gates: [{ metric: 'exact_match', op: '>=', threshold: 0.5 }] },
  ...over,
});

describe('GPU admission at validation (activities/admission/plan.ts)', function () {
  const quotaFile = writeQuotaFile(quotaYaml('cpu', 2, 1, 1));

  it("specs name a team, default 'default', refused when it is not a team name", function () {
    assert.equal(ReleaseSpecSchema.parse(rawRelease()).team, 'default');
    assert.equal(ReleaseSpecSchema.parse(rawRelease({ team: 'search' })).team, 'search');
    const bad = ReleaseSpecSchema.safeParse(rawRelease({ team: 'Search Team' }));
    assert.equal(bad.success, false);
    assert.match(bad.error!.issues[0]!.message, /expected a team name like search/);
    assert.deepEqual(bad.error!.issues[0]!.path, ['team']);
    assert.equal(ReleaseSpecSchema.safeParse(rawRelease({ admission: {} })).success, false, 'admission is never input');
  });

  it('no quota file: no plan', async function () {
    assert.equal(await gpuAdmissionPlan({}, 'a', 'cpu'), undefined);
  });

  it("a team with a quota on the pool: its Temporal priority (fairness key = team, weight, priority key by rank)", async function () {
    assert.deepEqual(await gpuAdmissionPlan({ quotaFile }, 'a', 'cpu'), { quotaFile, team: 'a', pool: 'cpu', priority: { priorityKey: 1, fairnessKey: 'a', fairnessWeight: 1 } });
    assert.deepEqual((await gpuAdmissionPlan({ quotaFile }, 'b', 'cpu'))?.priority, { priorityKey: 2, fairnessKey: 'b', fairnessWeight: 1 });
  });

  it('a team without a quota on the pool, or a pool not in the file: terminal, naming the team, the pool, the file and the fix', async function () {
    await assert.rejects(gpuAdmissionPlan({ quotaFile }, 'default', 'cpu'), (err: unknown) => {
      assert.ok(err instanceof ForgelineError && err.terminal && err.type === ErrorType.InvalidSpec);
      assert.equal(err.message, `team default has no quota on pool cpu in the quota file ${quotaFile} (teams with one: a, b): set the spec's team to one of them, or add teams.default.quotas.cpu to the file`);
      return true;
    });
    await assert.rejects(gpuAdmissionPlan({ quotaFile }, 'a', 'h200'), /pool h200 is not in the quota file .*\(pools: cpu\): add it under pools/);
    await assert.rejects(gpuAdmissionPlan({ quotaFile: '/nonexistent/quotas.yaml' }, 'a', 'cpu'), /\/nonexistent\/quotas\.yaml/);
  });

  it('validateReleaseSpec and validateReembedSpec carry the plan, or fail non-retryably for a team without quota', async function () {
    const env = new MockActivityEnvironment();
    const { validateReleaseSpec } = createValidateActivities({ quotaFile });
    const spec: ReleaseSpec = await env.run(validateReleaseSpec, rawRelease({ team: 'b', gpu: { pool: 'cpu' } }));
    assert.equal(spec.admission?.team, 'b');
    assert.equal(spec.admission?.priority.fairnessKey, 'b');
    const without: ReleaseSpec = await env.run(createValidateActivities().validateReleaseSpec, rawRelease());
    assert.equal(without.admission, undefined, 'no quota file: the spec as before');
    await assert.rejects(env.run(validateReleaseSpec, rawRelease()), (err: unknown) => {
      assert.ok(err instanceof ApplicationFailure && err.nonRetryable && err.type === ErrorType.InvalidSpec, String(err));
      assert.match(err.message, /team default has no quota on pool cpu/);
      return true;
    });
    const { validateReembedSpec } = createPrepareActivities({ quotaFile } as ActivityDeps);
    const reembed: ReembedSpec = await env.run(validateReembedSpec, { corpus: { name: 'docs', source: { folder: '/tmp/docs' } }, team: 'a', store: { index: 'docs' } });
    assert.equal(reembed.admission?.team, 'a');
  });

  it("Current Details show the lease a release waits for or holds, and its preemptions", function () {
    const base: ReleaseStatus = { model: 'demo', stage: ReleaseStage.Train, outcome: ReleaseOutcome.Running, awaitingApproval: false, versions: {} };
    const waiting = renderReleaseDetails({ ...base, gpuLease: { leaseId: 'release/demo/abc/train/2', stage: 'train', gpus: 1, state: 'waiting' }, preemptions: 1 }, 'release/demo/abc');
    assert.match(waiting, /\*\*GPUs:\*\* waiting for 1 GPU for train \(lease `release\/demo\/abc\/train\/2`\); preempted once by a team under its quota; each time the stage checkpointed, gave its GPUs back and queued again \(no retry spent\)/);
    assert.match(renderReleaseDetails({ ...base, gpuLease: { leaseId: 'x/train/1', stage: 'train', gpus: 4, state: 'held' } }, 'x'), /\*\*GPUs:\*\* holding 4 GPUs for train \(lease `x\/train\/1`\)\n/);
    assert.doesNotMatch(renderReleaseDetails(base, 'x'), /GPUs:/, 'nothing without a quota file');
  });

  it('lease IDs are deterministic: <workflowId>/<stage>/<n>', function () {
    assert.equal(gpuLeaseId('release/demo/abc', 'train', 2), 'release/demo/abc/train/2');
  });
});
