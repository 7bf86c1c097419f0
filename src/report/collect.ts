/**
 * Gathers a release report's data from the record Temporal keeps: the release workflow's history
 * (its input spec, each stage's activity results, the operators' Updates and Signals with who and
 * why, how it closed), its drift monitor's histories, and the release's tracker run for the loss
 * curve. Gate verdicts and canary analyses are recomputed from the recorded figures with the same
 * pure functions the workflow ran (src/contracts), so the report shows exactly what decided.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Client } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { decodeArrayFromPayloads, decodeOptionalFailureToOptionalError } from '@temporalio/common/lib/internal-non-workflow';
import { optionalTsToMs } from '@temporalio/common/lib/time';
import type { temporal } from '@temporalio/proto';
import type { EvalResult, QuantizeResult, TrainResult } from '../../activities/release';
import { readLocalRun } from '../adapters/local-tracker';
import type { WandbApi } from '../adapters/wandb-api';
import { analyzeCanary } from '../contracts/canary-analysis';
import type { DriftCheck } from '../contracts/drift-monitor';
import { describeGate, evaluateGates } from '../contracts/release-gates';
import type { OperatorDecision } from '../contracts/release-lifecycle';
import type { ReleaseSpec } from '../contracts/release-spec';
import type { RouteTargets, VersionMetrics } from '../contracts/routing';
import { ReleaseSpecSchema } from '../contracts/specs/release-spec';
import type { ReleaseReportData, TrailEntry } from './types';

type HistoryEvent = temporal.api.history.v1.IHistoryEvent;

export interface CollectOptions {
  /**
   * The release's run in the local tracker (a JSONL file), for the loss curve; default: the
   * `file:` tracker URL the release recorded in its result. Absent or unreadable: no curve, and
   * the report says why.
   */
  trackerRunFile?: string;
  /**
   * Reads a W&B run's `train/loss` history (the W&B tracker's runs), for the loss curve when the
   * release recorded a W&B run URL; see `wandbLossHistory`. Absent: no curve from W&B.
   */
  wandbHistory?: (run: WandbRunRef) => Promise<Array<{ step: number; loss: number }> | undefined>;
  /** Clock for `generatedAt` (tests). */
  now?: () => Date;
}

/** An unknown release ID or a history that is not a model release's. */
export class ReportInputError extends Error {
  override name = 'ReportInputError';
}

const isoOf = (e: HistoryEvent): string => new Date(optionalTsToMs(e.eventTime) ?? 0).toISOString();
const bigId = (v: unknown): string => String(v ?? '');

export async function collectReleaseReport(client: Client, releaseId: string, opts: CollectOptions = {}): Promise<ReleaseReportData> {
  const converter = client.workflow.options.loadedDataConverter;
  const decode = async (payloads: temporal.api.common.v1.IPayloads | null | undefined): Promise<unknown[]> => decodeArrayFromPayloads(converter, payloads?.payloads);

  const handle = client.workflow.getHandle(releaseId);
  let description;
  try {
    description = await handle.describe();
  } catch (err) {
    throw new ReportInputError(`no release ${releaseId}: ${(err as Error).message}; list releases with \`forgeline release list\``, { cause: err });
  }
  if (description.type !== 'modelReleaseWorkflow') throw new ReportInputError(`${releaseId} is a ${description.type}, not a model release (modelReleaseWorkflow)`);
  const events = (await handle.fetchHistory()).events ?? [];

  const started = events[0]?.workflowExecutionStartedEventAttributes;
  if (!started) throw new ReportInputError(`${releaseId}: its history does not begin with WorkflowExecutionStarted`);
  const [rawSpec] = await decode(started.input);
  const parsed = ReleaseSpecSchema.safeParse(rawSpec);
  const spec = parsed.success ? (parsed.data as ReleaseSpec) : undefined;
  const model = spec?.model ?? String((rawSpec as { model?: unknown } | undefined)?.model ?? '?');

  const data: ReleaseReportData = {
    releaseId,
    model,
    runId: description.runId,
    executionStatus: description.status.name,
    startedAt: isoOf(events[0]!),
    ...(spec?.git.sha ? { gitSha: spec.git.sha } : {}),
    generatedAt: (opts.now?.() ?? new Date()).toISOString(),
    training: { loss: [], source: '' },
    trail: [{ at: isoOf(events[0]!), kind: 'started', title: `release started (${description.type})`, by: started.identity ?? undefined }],
  };

  // Activities: scheduled event id → type and decoded input, to pair each completion with its call.
  const scheduled = new Map<string, { type: string; input: unknown[] }>();
  const updates = new Map<string, TrailEntry>();
  let trackerUrl: string | undefined;
  let lastCanaryWeight: { step: number; weight: number } | undefined;
  let bake = 0;
  let monitor: { workflowId: string; runId?: string } | undefined;

  for (const e of events) {
    const at = isoOf(e);
    if (e.activityTaskScheduledEventAttributes) {
      const a = e.activityTaskScheduledEventAttributes;
      const type = a.activityType?.name ?? '?';
      const input = await decode(a.input);
      scheduled.set(bigId(e.eventId), { type, input });
      if (type === 'setTrafficWeights') {
        const w = input[0] as { targets: RouteTargets; reason?: string };
        const m = /^canary step (\d+)\//.exec(w.reason ?? '');
        if (m) {
          lastCanaryWeight = { step: Number(m[1]), weight: w.targets.at(-1)?.weight ?? 0 };
          bake = 0;
        }
      }
    } else if (e.activityTaskCompletedEventAttributes) {
      const a = e.activityTaskCompletedEventAttributes;
      const call = scheduled.get(bigId(a.scheduledEventId));
      if (!call) continue;
      const [result] = await decode(a.result);
      await onActivityResult(data, spec, call, result, at, () => lastCanaryWeight, () => ++bake);
    } else if (e.workflowExecutionUpdateAcceptedEventAttributes) {
      const a = e.workflowExecutionUpdateAcceptedEventAttributes;
      const req = a.acceptedRequest;
      const name = req?.input?.name ?? '?';
      const [arg] = await decode(req?.input?.args);
      const d = (arg ?? {}) as Partial<OperatorDecision>;
      const entry: TrailEntry = {
        at,
        kind: 'update',
        title: `Update ${name}`,
        by: typeof d.by === 'string' && d.by.trim() ? d.by.trim() : (req?.meta?.identity ?? undefined),
        ...(typeof d.reason === 'string' ? { reason: d.reason.trim() } : {}),
        decisive: DECISIVE_UPDATES.has(name),
        result: 'accepted',
      };
      data.trail.push(entry);
      if (a.protocolInstanceId) updates.set(a.protocolInstanceId, entry);
    } else if (e.workflowExecutionUpdateCompletedEventAttributes) {
      const a = e.workflowExecutionUpdateCompletedEventAttributes;
      const entry = updates.get(a.meta?.updateId ?? '');
      if (entry) entry.result = a.outcome?.failure ? `failed: ${a.outcome.failure.message ?? ''}` : 'completed';
    } else if (e.workflowExecutionSignaledEventAttributes) {
      const a = e.workflowExecutionSignaledEventAttributes;
      const [arg] = await decode(a.input);
      const d = (arg ?? {}) as Partial<OperatorDecision>;
      data.trail.push({ at, kind: 'signal', title: `Signal ${a.signalName ?? '?'}`, by: typeof d.by === 'string' ? d.by : (a.identity ?? undefined), ...(typeof d.reason === 'string' ? { reason: d.reason } : {}) });
    } else if (e.startChildWorkflowExecutionInitiatedEventAttributes?.workflowType?.name === 'driftMonitorWorkflow') {
      monitor = { workflowId: e.startChildWorkflowExecutionInitiatedEventAttributes.workflowId ?? '' };
    } else if (e.childWorkflowExecutionStartedEventAttributes && monitor && e.childWorkflowExecutionStartedEventAttributes.workflowExecution?.workflowId === monitor.workflowId) {
      monitor.runId = e.childWorkflowExecutionStartedEventAttributes.workflowExecution.runId ?? undefined;
    } else if (e.workflowExecutionCompletedEventAttributes) {
      const [result] = await decode(e.workflowExecutionCompletedEventAttributes.result);
      const r = result as { outcome?: string; trackerRunUrl?: string; decision?: { by: string } } | undefined;
      data.outcome = r?.outcome;
      trackerUrl = r?.trackerRunUrl || undefined;
      data.closedAt = at;
      data.trail.push({ at, kind: 'closed', title: `release completed: ${r?.outcome ?? 'done'}`, decisive: true });
    } else if (e.workflowExecutionFailedEventAttributes) {
      // Decoded through the client's converter: with a payload codec the message is encrypted.
      const f = await decodeOptionalFailureToOptionalError(converter, e.workflowExecutionFailedEventAttributes.failure);
      data.failure = f?.message || 'failed';
      data.outcome = outcomeOfFailure(f instanceof ApplicationFailure ? (f.type ?? undefined) : undefined);
      data.closedAt = at;
      data.trail.push({ at, kind: 'closed', title: `release ended ${data.outcome}`, reason: data.failure, decisive: true });
    } else if (e.workflowExecutionTerminatedEventAttributes || e.workflowExecutionCanceledEventAttributes || e.workflowExecutionTimedOutEventAttributes) {
      const how = e.workflowExecutionTerminatedEventAttributes ? 'terminated' : e.workflowExecutionCanceledEventAttributes ? 'cancelled' : 'timed out';
      data.closedAt = at;
      data.trail.push({ at, kind: 'closed', title: `workflow ${how}`, by: e.workflowExecutionTerminatedEventAttributes?.identity ?? undefined, reason: e.workflowExecutionTerminatedEventAttributes?.reason ?? undefined, decisive: true });
    }
  }

  const wandbRun = wandbRunOf(trackerUrl);
  if (wandbRun && !opts.trackerRunFile) await collectWandbTraining(data, wandbRun, opts.wandbHistory);
  else await collectTraining(data, opts.trackerRunFile ?? fileOf(trackerUrl));
  if (monitor) data.drift = { monitorWorkflowId: monitor.workflowId, checks: await collectDrift(client, monitor.workflowId, monitor.runId, decode) };
  return data;
}

const DECISIVE_UPDATES = new Set(['approve', 'reject', 'abort', 'promoteNow', 'rollback']);

/** The release's error types (src/contracts/errors.ts) as report outcomes. */
function outcomeOfFailure(type: string | undefined): string {
  switch (type) {
    case 'GateFailed':
    case 'Rejected':
      return 'Rejected';
    case 'RolledBack':
      return 'RolledBack';
    case 'Aborted':
      return 'Aborted';
    default:
      return 'Failed';
  }
}

function fileOf(url: string | undefined): string | undefined {
  if (!url?.startsWith('file:')) return undefined;
  try {
    return fileURLToPath(url);
  } catch {
    return undefined;
  }
}

async function onActivityResult(
  data: ReleaseReportData,
  spec: ReleaseSpec | undefined,
  call: { type: string; input: unknown[] },
  result: unknown,
  at: string,
  canaryStep: () => { step: number; weight: number } | undefined,
  nextBake: () => number,
): Promise<void> {
  switch (call.type) {
    case 'trainAdapter': {
      const t = result as TrainResult;
      data.training.totalSteps = t.totalSteps;
      if (t.finalLoss !== undefined) data.training.finalLoss = t.finalLoss;
      return;
    }
    case 'quantizeModel': {
      const q = result as QuantizeResult;
      data.quantization = { method: spec?.quantization.method ?? '?', ...(spec ? { bits: spec.quantization.bits } : {}), sizeBeforeBytes: q.sizeBeforeBytes, sizeAfterBytes: q.sizeAfterBytes, seconds: q.seconds };
      return;
    }
    case 'runEvalSuite': {
      const r = result as EvalResult;
      const gates = spec?.evaluation.gates ?? [];
      const verdict = evaluateGates(r, gates);
      data.evaluation = {
        comparator: r.comparator || spec?.evaluation.compareTo || 'comparator',
        metrics: Object.entries(r.metrics).map(([name, m]) => ({ name, ...m })),
        gates: verdict.results.map((g) => ({ gate: g.gate, passed: g.passed, reason: g.reason })),
      };
      const failed = verdict.results.filter((g) => !g.passed);
      data.trail.push({
        at,
        kind: 'gates',
        title: gates.length ? (failed.length ? `gates failed: ${failed.map((g) => g.gate).join(', ')}` : `gates passed: ${gates.map(describeGate).join(', ')}`) : 'no gates configured',
        reason: verdict.results.map((g) => g.reason).join('; '),
        decisive: failed.length > 0,
      });
      return;
    }
    case 'fetchCanaryMetrics': {
      if (!spec?.serving) return;
      const [stable, candidate] = result as [VersionMetrics, VersionMetrics];
      const a = analyzeCanary(stable, candidate, spec.serving.canary.analysis);
      const where = canaryStep() ?? { step: 0, weight: 0 };
      data.canary ??= { alias: spec.serving.alias ?? spec.model, stable: a.stable, candidate: a.candidate, steps: [] };
      const step = { step: where.step, weight: where.weight, bake: nextBake(), verdict: a.verdict, summary: a.summary, at, metrics: a.metrics };
      data.canary.steps.push(step);
      data.trail.push({ at, kind: 'canary-analysis', title: `canary step ${step.step} (${step.weight}%), bake ${step.bake}: ${a.verdict}`, reason: a.summary, decisive: a.verdict === 'Fail' });
      return;
    }
  }
}

/** A W&B run, as its app URL names it: `<app>/<entity>/<project>/runs/<runId>`. */
export interface WandbRunRef {
  entity: string;
  project: string;
  runId: string;
  url: string;
}

/** The W&B run an http(s) tracker URL points at; undefined for any other URL. */
export function wandbRunOf(url: string | undefined): WandbRunRef | undefined {
  if (!url || !/^https?:/.test(url)) return undefined;
  let parts: string[];
  try {
    parts = new URL(url).pathname.split('/').filter(Boolean).map(decodeURIComponent);
  } catch {
    return undefined;
  }
  const at = parts.lastIndexOf('runs');
  if (at < 2 || at !== parts.length - 2) return undefined;
  return { entity: parts[at - 2]!, project: parts[at - 1]!, runId: parts[at + 1]!, url };
}

/** The loss curve of a W&B run, from its sampled `train/loss` history (`_step` is the training step). */
export function wandbLossHistory(api: Pick<WandbApi, 'sampledHistory'>, samples = 2000): NonNullable<CollectOptions['wandbHistory']> {
  return async (run) => {
    const rows = await api.sampledHistory({ entity: run.entity, project: run.project, runId: run.runId, keys: ['_step', 'train/loss'], samples });
    if (!rows) return undefined;
    return rows
      .map((r) => ({ step: Number(r._step), loss: r['train/loss'] }))
      .filter((p): p is { step: number; loss: number } => Number.isFinite(p.step) && typeof p.loss === 'number' && Number.isFinite(p.loss))
      .sort((a, b) => a.step - b.step);
  };
}

async function collectWandbTraining(data: ReleaseReportData, run: WandbRunRef, read: CollectOptions['wandbHistory']): Promise<void> {
  const t = data.training;
  if (!read) {
    t.source = `W&B run ${run.url} (set WANDB_API_KEY with FORGELINE_TRACKER=wandb to draw its loss curve here)`;
    return;
  }
  let points;
  try {
    points = await read(run);
  } catch (err) {
    t.source = `W&B run ${run.url}: its history could not be read (${(err as Error).message})`;
    return;
  }
  if (!points) {
    t.source = `W&B run ${run.url} not found`;
    return;
  }
  t.loss.push(...points);
  t.source = `W&B run ${run.url}`;
  if (t.finalLoss === undefined && t.loss.length) t.finalLoss = t.loss.at(-1)!.loss;
}

async function collectTraining(data: ReleaseReportData, file: string | undefined): Promise<void> {
  const t = data.training;
  if (!file) {
    t.source = 'no local tracker run for this release (a W&B run has its own charts)';
    return;
  }
  if (!existsSync(file)) {
    t.source = `tracker run file ${file} not found`;
    return;
  }
  const run = await readLocalRun(file);
  for (const row of run.history) {
    const loss = row.metrics['train/loss'];
    if (typeof loss === 'number' && Number.isFinite(loss)) t.loss.push({ step: Number(row.metrics['train/step'] ?? row.step), loss });
  }
  t.source = `local tracker run ${file}`;
  if (t.finalLoss === undefined && t.loss.length) t.finalLoss = t.loss.at(-1)!.loss;
}

/** Every check of the drift monitor, across its continue-as-new runs, oldest first. */
async function collectDrift(client: Client, workflowId: string, firstRunId: string | undefined, decode: (p: temporal.api.common.v1.IPayloads | null | undefined) => Promise<unknown[]>): Promise<NonNullable<ReleaseReportData['drift']>['checks']> {
  const checks: NonNullable<ReleaseReportData['drift']>['checks'] = [];
  let runId = firstRunId;
  for (let runs = 0; runs < 1000; runs++) {
    let events: HistoryEvent[];
    try {
      events = (await client.workflow.getHandle(workflowId, runId).fetchHistory()).events ?? [];
    } catch {
      break; // not started yet, or its history is gone (retention)
    }
    const scheduled = new Map<string, string>();
    let next: string | undefined;
    for (const e of events) {
      if (e.activityTaskScheduledEventAttributes) scheduled.set(bigId(e.eventId), e.activityTaskScheduledEventAttributes.activityType?.name ?? '');
      else if (e.activityTaskCompletedEventAttributes && scheduled.get(bigId(e.activityTaskCompletedEventAttributes.scheduledEventId)) === 'checkProductionDrift') {
        const [c] = (await decode(e.activityTaskCompletedEventAttributes.result)) as [DriftCheck];
        checks.push({ at: c.at, samples: c.samples, inconclusive: c.inconclusive, errorRate: c.errorRate, breaches: c.breaches, ...(c.input ? { score: c.input.score, threshold: c.input.threshold, method: c.input.method } : {}) });
      } else if (e.workflowExecutionContinuedAsNewEventAttributes) next = e.workflowExecutionContinuedAsNewEventAttributes.newExecutionRunId ?? undefined;
    }
    if (!next || !runId) break;
    runId = next;
  }
  return checks;
}
