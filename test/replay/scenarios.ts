import { ApplicationFailure, Context } from '@temporalio/activity';
import type { Client, WorkflowHandle } from '@temporalio/client';
import type { ReleaseStatus } from '../../src/contracts/release-lifecycle';
import type { ReleaseSpec } from '../../src/contracts/release-spec';
import { releaseMocks, releaseSpec, split } from '../fixtures/release';
import type { Activities } from '../../activities';
import { createValidateActivities } from '../../activities/release/validate';
import { createStackCheckActivities } from '../../activities/stack-check';
import { createEmbeddingDriftActivities } from '../../activities/embeddings-drift';
import { createReembedControlActivities } from '../../activities/reembed';
import type { EmbeddingDriftCheck, EmbeddingDriftSpec } from '../../src/contracts/embedding-drift';
import { ErrorType } from '../../src/contracts/errors';
import type { StackProbeInput } from '../../src/contracts/stack-check';
import { fakeProbe } from '../fixtures/stack-probe';
import { badCandidateTraffic, quantizedWorld, servingWorld } from '../fixtures/serving';
import type { AcquireLeaseReply, AdmissionStatus } from '../../src/contracts/admission';
import { parseQuotaFile } from '../../src/fleet/quota-file';
import { quotaYaml } from '../helpers/quotas';

/**
 * Lifecycles recorded into test/replay/histories by scripts/record-history.ts. Each runs the real
 * workflow with deterministic activity stand-ins, so re-recording gives the same command order.
 * Add a scenario for every branch a workflow change could break.
 */
export interface ReplayScenario {
  name: string;
  workflowType: string;
  /** Activities by task queue suffix: `control` for the workflow's queue, or a GPU pool name. */
  control: Partial<Activities>;
  gpu?: { pool: string; activities: Partial<Activities> };
  start(client: Client, opts: { taskQueue: string; workflowId: string }): Promise<unknown>;
}

const { validateStackCheckSpec } = createStackCheckActivities({} as never);

const { validateEmbeddingDriftSpec } = createEmbeddingDriftActivities({} as never);

/** The embedding drift check's activities with a fixed measurement: drifted or not. */
function embeddingDriftStandIns(drifted: boolean): Partial<Activities> {
  return {
    validateEmbeddingDriftSpec,
    async checkEmbeddingDrift({ spec, at }: { spec: EmbeddingDriftSpec; at: string }): Promise<EmbeddingDriftCheck> {
      const score = drifted ? 0.126 : 0.003;
      return {
        at,
        reference: { index: 'docs', alias: 'live', version: 'v1', key: `embedding-drift/reference/docs/v1/${spec.model}.n2000.npy`, rows: 430 },
        fresh: { source: 'new documents in /srv/incoming (24 documents, chunked 128/16 tokens)', texts: 24, samples: 24 },
        inconclusive: false,
        verdicts: [{ method: 'mmd', drifted, score, threshold: 0.015, details: {} }],
        breaches: drifted ? [`embedding drift: mmd score ${score} > threshold 0.0150 (24 fresh vs 430 reference embeddings)`] : [],
      };
    },
    async recordEmbeddingDrift() {
      return {};
    },
  };
}

const driftSpec = (onBreach: unknown) => ({
  name: 'docs-incoming',
  fresh: { documents: { source: { folder: '/srv/incoming' } } },
  reference: { store: { index: 'docs', alias: 'live' } },
  checks: [{ method: 'mmd' }],
  onBreach,
});

const probe = (input: StackProbeInput) => fakeProbe(input, 'replay-recorder');

const { validateReembedSpec } = createReembedControlActivities({} as never);

/** The re-embed's activities over a made-up corpus of two slices (12 chunks, 3 carried over); `passed` decides the gate. */
function reembedStandIns(passed: boolean): { control: Partial<Activities>; gpu: Partial<Activities> } {
  const manifest = { prefix: 'reembed/docs/v2/', documents: 4, chunks: 12, slices: 2, bytes: 4096, queries: 5 };
  const previous = { version: 'v1', dimensions: 384, count: 10, compatible: true };
  return {
    control: {
      validateReembedSpec,
      chunkCorpus: async () => manifest,
      prepareIndexVersion: async ({ version }) => ({ version, dimensions: 384, previous, aliasAt: 'v1', store: 'pgvector:replay' }),
      planSlice: async ({ slice }) => ({ slice, chunks: 6, present: 0, carried: slice === 0 ? 3 : 0, toEmbed: slice === 0 ? 3 : 6 }),
      upsertSlice: async ({ slice }) => ({ slice, upserted: slice === 0 ? 3 : 6 }),
      validateIndexVersion: async () => ({
        expectedCount: 12,
        count: 12,
        queries: 5,
        k: 5,
        recallAtK: passed ? 1 : 0.4,
        mrr: passed ? 0.9 : 0.3,
        overlapAtK: 0.8,
        passed,
        failures: passed ? [] : ['recall@5 0.400 < validation.minRecallAtK 0.8 (5 labelled queries)'],
      }),
      swapIndexAlias: async ({ index, alias, version }) => ({ alias: `${index}/${alias}`, version, generation: 2, movedAt: '2026-12-03T07:00:00.000Z' }),
      dropIndexVersion: async () => undefined,
    },
    gpu: {
      embedSlice: async ({ slice }) => ({ slice, embedded: slice === 0 ? 3 : 6, batches: slice === 0 ? 1 : 2, batchesSkipped: 0 }),
      embedQueries: async () => ({ queries: 5 }),
    },
  };
}

const reembedSpec = (pool: string, more: Record<string, unknown> = {}) => ({
  corpus: { name: 'docs', source: { folder: '/srv/docs' } },
  embedding: { batchSize: 4 },
  pool,
  store: { index: 'docs', alias: 'live', version: 'v2' },
  validation: { k: 5, minRecallAtK: 0.8 },
  sliceChunks: 6,
  ...more,
});

async function trainUntilCancelled(): Promise<never> {
  const ctx = Context.current();
  const beat = setInterval(() => ctx.heartbeat({ stage: 'train', step: 1 }), 100);
  try {
    await ctx.cancelled;
  } finally {
    clearInterval(beat);
  }
  throw new Error('unreachable: cancelled');
}

async function trackerDown(): Promise<never> {
  throw ApplicationFailure.nonRetryable('tracker answered 500', 'TrackerDown');
}

const waitFor = async (handle: WorkflowHandle, pred: (s: ReleaseStatus) => boolean) => {
  while (!pred((await handle.query('status').catch(() => ({}))) as ReleaseStatus)) await new Promise((r) => setTimeout(r, 50));
};

function releaseScenario(name: string, pool: string, spec: ReleaseSpec, drive?: (h: WorkflowHandle) => Promise<void>, mocks = releaseMocks().mocks): ReplayScenario {
  const { control, gpu } = split(mocks);
  return {
    name,
    workflowType: 'modelReleaseWorkflow',
    control,
    gpu: { pool, activities: gpu },
    async start(client, { taskQueue, workflowId }) {
      const handle = await client.workflow.start('modelReleaseWorkflow', { taskQueue, workflowId, args: [spec] });
      await drive?.(handle);
      return handle.result().catch(() => undefined);
    },
  };
}

/** The scenario's control worker also runs the serving activities' stand-ins. */
function withServing(s: ReplayScenario, serving: Partial<Activities>): ReplayScenario {
  return { ...s, control: { ...s.control, ...serving } };
}

/** A release with spec.serving: canary steps of 1 s bakes, the previous version kept 1 s. */
function servingSpec(pool: string, candidate: 'adapter' | 'quantized') {
  return releaseSpec({
    gpu: { pool },
    serving: { baseModel: 'tiny-base', candidate, canary: { steps: [50, 100], bake: '1s' }, keepPrevious: '1s', monitor: { enabled: false } },
  });
}

export const SCENARIOS: ReplayScenario[] = [
  releaseScenario('release-candidate', 'replay-rel', releaseSpec({ gpu: { pool: 'replay-rel' } })),
  releaseScenario('release-gate-failed', 'replay-rel-gate', releaseSpec({ gpu: { pool: 'replay-rel-gate' } }), undefined, releaseMocks({ exactMatch: 0.1 }).mocks),
  releaseScenario('release-approved', 'replay-rel-appr', releaseSpec({ gpu: { pool: 'replay-rel-appr' }, approval: { required: true, timeout: '1h' } }), async (h) => {
    await waitFor(h, (s) => s.awaitingApproval);
    await h.executeUpdate('approve', { args: [{ by: 'recorder', reason: 'replay fixture' }] });
  }),
  releaseScenario('release-aborted', 'replay-rel-abort', releaseSpec({ gpu: { pool: 'replay-rel-abort' }, approval: { required: true, timeout: '1h' } }), async (h) => {
    await waitFor(h, (s) => s.awaitingApproval);
    await h.executeUpdate('abort', { args: [{ by: 'recorder', reason: 'replay fixture' }] });
  }),
  // Recorded with the stage modules and OPERATOR_VIEW_PATCH (approval search attributes, decision
  // memo, Update replies after the decision): the release histories above predate both.
  releaseScenario('release-v2-approved', 'replay-v2-appr', releaseSpec({ gpu: { pool: 'replay-v2-appr' }, approval: { required: true, timeout: '1h' } }), async (h) => {
    await waitFor(h, (s) => s.awaitingApproval);
    await h.executeUpdate('approve', { args: [{ by: 'recorder', reason: 'replay fixture' }] });
  }),
  releaseScenario('release-v2-rejected', 'replay-v2-rej', releaseSpec({ gpu: { pool: 'replay-v2-rej' }, approval: { required: true, timeout: '1h' } }), async (h) => {
    await waitFor(h, (s) => s.awaitingApproval);
    await h.executeUpdate('reject', { args: [{ by: 'recorder', reason: 'replay fixture' }] });
  }),
  releaseScenario(
    'release-v2-aborted-in-training',
    'replay-v2-abort',
    releaseSpec({ gpu: { pool: 'replay-v2-abort' } }),
    async (h) => {
      await waitFor(h, (s) => s.stage === 'train');
      await h.executeUpdate('abort', { args: [{ by: 'recorder', reason: 'replay fixture' }] });
    },
    { ...releaseMocks().mocks, trainAdapter: trainUntilCancelled },
  ),
  releaseScenario('release-v2-invalid-spec', 'replay-v2-bad', { model: 'bad-spec', gpu: { pool: 'replay-v2-bad' } } as unknown as ReleaseSpec, undefined, {
    ...releaseMocks().mocks,
    ...createValidateActivities(),
  }),
  releaseScenario('release-v2-tracker-down', 'replay-v2-trk', releaseSpec({ gpu: { pool: 'replay-v2-trk' } }), undefined, {
    ...releaseMocks().mocks,
    openReleaseRun: trackerDown,
    logGateResults: trackerDown,
    closeReleaseRun: trackerDown,
  }),
  // Recorded with LOCAL_CONTROL_PATCH: validate, tracker calls, register and promote as local
  // activities (markers in the history instead of activity tasks).
  releaseScenario('release-v3-approved', 'replay-v3-appr', releaseSpec({ gpu: { pool: 'replay-v3-appr' }, approval: { required: true, timeout: '1h' } }), async (h) => {
    await waitFor(h, (s) => s.awaitingApproval);
    await h.executeUpdate('approve', { args: [{ by: 'recorder', reason: 'replay fixture' }] });
  }),
  releaseScenario('release-v3-gate-failed', 'replay-v3-gate', releaseSpec({ gpu: { pool: 'replay-v3-gate' } }), undefined, releaseMocks({ exactMatch: 0.1 }).mocks),
  releaseScenario('release-v3-invalid-spec', 'replay-v3-bad', { model: 'bad-spec', gpu: { pool: 'replay-v3-bad' } } as unknown as ReleaseSpec, undefined, {
    ...releaseMocks().mocks,
    ...createValidateActivities(),
  }),
  // Serving (spec.serving): an adapter canary promoted; a quantized candidate on its own server
  // (serving.candidate quantized) that the canary fails, so the saga stops that server.
  withServing(releaseScenario('release-serving-adapter-promoted', 'replay-srv-adapter', servingSpec('replay-srv-adapter', 'adapter')), servingWorld().mocks),
  withServing(releaseScenario('release-serving-quantized-rolled-back', 'replay-srv-quant', servingSpec('replay-srv-quant', 'quantized')), quantizedWorld({ traffic: badCandidateTraffic }).mocks),
  releaseScenario('release-v3-tracker-down', 'replay-v3-trk', releaseSpec({ gpu: { pool: 'replay-v3-trk' } }), undefined, {
    ...releaseMocks().mocks,
    openReleaseRun: trackerDown,
    logGateResults: trackerDown,
    closeReleaseRun: trackerDown,
  }),
  {
    name: 'embedding-drift-no-drift',
    workflowType: 'embeddingDriftWorkflow',
    control: embeddingDriftStandIns(false),
    start: (client, { taskQueue, workflowId }) => client.workflow.execute('embeddingDriftWorkflow', { taskQueue, workflowId, args: [driftSpec({ policy: 'alert' })] }),
  },
  {
    // The breach starts the re-embed child (abandoned); the recording ends with the check.
    name: 'embedding-drift-reembed-started',
    workflowType: 'embeddingDriftWorkflow',
    control: embeddingDriftStandIns(true),
    start: (client, { taskQueue, workflowId }) =>
      client.workflow.execute('embeddingDriftWorkflow', {
        taskQueue,
        workflowId,
        args: [driftSpec({ policy: 'reembed', reembed: { corpus: { name: 'docs', source: { folder: '/srv/corpus' } }, store: { index: 'docs', alias: 'live' } } })],
      }),
  },
  {
    // The first run's path: validate → chunk → prepare → two slices (carry over, embed, upsert) → queries → a gate that fails.
    name: 'reembed-validation-failed',
    workflowType: 'reembedCorpusWorkflow',
    control: reembedStandIns(false).control,
    gpu: { pool: 'replay-reembed-gate', activities: reembedStandIns(false).gpu },
    start: (client, { taskQueue, workflowId }) =>
      client.workflow.execute('reembedCorpusWorkflow', { taskQueue, workflowId, args: [reembedSpec('replay-reembed-gate')] }).catch(() => undefined),
  },
  {
    // One slice per run: the recorded (last) run is the continued one: its slice, validate, swap, the retirement timer, drop.
    name: 'reembed-continued-swapped-retired',
    workflowType: 'reembedCorpusWorkflow',
    control: reembedStandIns(true).control,
    gpu: { pool: 'replay-reembed-ok', activities: reembedStandIns(true).gpu },
    start: (client, { taskQueue, workflowId }) =>
      client.workflow.execute('reembedCorpusWorkflow', { taskQueue, workflowId, args: [reembedSpec('replay-reembed-ok', { slicesPerRun: 1, retireAfter: '1s' })] }),
  },
  {
    name: 'stack-check-succeeded',
    workflowType: 'stackCheckWorkflow',
    control: { validateStackCheckSpec },
    gpu: { pool: 'replay', activities: { runStackProbe: async (i) => probe(i) } },
    start: (client, { taskQueue, workflowId }) =>
      client.workflow.execute('stackCheckWorkflow', { taskQueue, workflowId, args: [{ pool: 'replay', payloadBytes: 1024 }] }),
  },
  {
    name: 'stack-check-retried-then-succeeded',
    workflowType: 'stackCheckWorkflow',
    control: { validateStackCheckSpec },
    gpu: {
      pool: 'replay-retry',
      activities: (() => {
        let calls = 0;
        return {
          async runStackProbe(i: StackProbeInput) {
            if (++calls === 1) throw new Error('transient: connection reset');
            return probe(i);
          },
        };
      })(),
    },
    start: (client, { taskQueue, workflowId }) =>
      client.workflow.execute('stackCheckWorkflow', { taskQueue, workflowId, args: [{ pool: 'replay-retry' }] }),
  },
  {
    name: 'stack-check-invalid-spec',
    workflowType: 'stackCheckWorkflow',
    control: { validateStackCheckSpec },
    start: (client, { taskQueue, workflowId }) =>
      client.workflow.execute('stackCheckWorkflow', { taskQueue, workflowId, args: [{ pool: 'Not A Pool' }] }).catch(() => undefined),
  },
  {
    name: 'stack-check-probe-failed',
    workflowType: 'stackCheckWorkflow',
    control: { validateStackCheckSpec },
    gpu: {
      pool: 'replay-fail',
      activities: {
        async runStackProbe() {
          throw ApplicationFailure.nonRetryable('bucket missing', ErrorType.InvalidConfig);
        },
      },
    },
    start: (client, { taskQueue, workflowId }) =>
      client.workflow.execute('stackCheckWorkflow', { taskQueue, workflowId, args: [{ pool: 'replay-fail' }] }).catch(() => undefined),
  },
  {
    // A pool's admission: a borrower whose holder is gone is preempted (the yield signal cannot be
    // delivered, the lease is freed) for a team within its nominal quota; release; new quotas;
    // the holder check frees the lease of a closed holder. The workflow stays running.
    name: 'gpu-admission-preempt-release-holder-closed',
    workflowType: 'gpuAdmissionWorkflow',
    control: {
      async describeLeaseHolders({ workflowIds }: { workflowIds: string[] }) {
        return { closed: workflowIds.filter((id) => id === 'holder-closed').map((workflowId) => ({ workflowId, status: 'COMPLETED' })) };
      },
    },
    async start(client, { taskQueue, workflowId }) {
      const quotas = parseQuotaFile(quotaYaml('replay', 4, 2, 2), 'replay.yaml');
      const h = await client.workflow.start('gpuAdmissionWorkflow', { taskQueue, workflowId, args: [{ pool: 'replay', quotas, source: 'replay.yaml', holderCheckEvery: '2s' }] });
      const acquire = (leaseId: string, team: string, gpus: number, holder: string) =>
        h.executeUpdate<AcquireLeaseReply, [unknown]>('acquireLease', { args: [{ leaseId, team, pool: 'replay', gpus, holder: { workflowId: holder, stage: 'train' } }] });
      await acquire('b1', 'b', 4, 'holder-gone');
      await acquire('a1', 'a', 2, 'holder-a');
      await h.executeUpdate('releaseLease', { args: [{ leaseId: 'a1', reason: 'done' }] });
      await h.executeUpdate('setQuotas', { args: [{ quotas: parseQuotaFile(quotaYaml('replay', 4, 3, 1), 'next.yaml'), source: 'next.yaml' }] });
      await acquire('b2', 'b', 1, 'holder-closed');
      for (let i = 0; (await h.query<AdmissionStatus>('quotaStatus')).inUse > 0; i++) {
        if (i > 100) throw new Error('the holder check did not free b2');
        await new Promise((r) => setTimeout(r, 200));
      }
    },
  },
];
