import {
  allHandlersFinished,
  condition,
  continueAsNew,
  defineQuery,
  defineUpdate,
  executeChild,
  log,
  ParentClosePolicy,
  setCurrentDetails,
  setHandler,
  startChild,
  upsertSearchAttributes,
} from '@temporalio/workflow';
import { proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities';
import { rollbackWorkflowId, type DriftCheck, type DriftMonitorInput, type DriftMonitorStatus } from '../src/contracts/drift-monitor';
import { ErrorType } from '../src/contracts/errors';
import type { OperatorDecision } from '../src/contracts/release-lifecycle';
import { releaseWorkflowId } from '../src/contracts/release-lifecycle';
import { ForgelineLifecycle, ForgelineModel, Lifecycle } from '../src/contracts/search-attributes';
import { durationMs } from '../src/contracts/specs/release-spec';
import { refuse, requireWhoAndWhy } from './release/messages';

export const driftStatusQuery = defineQuery<DriftMonitorStatus>('driftStatus');
export const stopMonitorUpdate = defineUpdate<DriftMonitorStatus, [OperatorDecision]>('stopMonitor');

const monitor = proxyActivities<Activities>({
  startToCloseTimeout: '10 minutes',
  heartbeatTimeout: '2 minutes',
  retry: { maximumAttempts: 5, maximumInterval: '1 minute', nonRetryableErrorTypes: [ErrorType.InvalidSpec, ErrorType.WrongTaskQueue, ErrorType.ServingNotConfigured] },
});

/**
 * Watches a promoted release in production: every `monitor.every` it checks a window of the
 * alias's gateway traffic for input drift (prompt embeddings against the release's reference),
 * output proxies (empty answers, feedback) and errors. A breach acts by `monitor.onBreach`:
 *   - rollback: the release's rollback saga (workflow `rollback/<release>`), then monitoring stops;
 *   - retrain: a new release of the model on `monitor.retrain.dataset` (once per monitor);
 *   - alert: recorded here (details, search attributes, log) and monitoring goes on.
 * Continue-as-new every `checksPerRun` checks, once every handler has finished.
 */
export async function driftMonitorWorkflow(input: DriftMonitorInput): Promise<DriftMonitorStatus> {
  const { plan, monitor: spec } = input;
  const status: DriftMonitorStatus = {
    alias: plan.alias,
    version: plan.candidate.label,
    checks: input.checksDone ?? 0,
    ...(input.lastCheck ? { lastCheck: input.lastCheck } : {}),
    ...(input.lastAction ? { lastAction: input.lastAction } : {}),
  };
  let stop: OperatorDecision | undefined;
  let retrainStarted = input.lastAction?.action === 'retrain' || (input.breaches ?? 0) > 0 && spec.onBreach === 'retrain';
  upsertSearchAttributes([
    { key: ForgelineLifecycle, value: Lifecycle.DriftMonitor },
    { key: ForgelineModel, value: plan.model },
  ]);
  const publish = () => setCurrentDetails(renderDetails(status, spec.onBreach));
  setHandler(driftStatusQuery, () => status, { description: 'The monitor now: checks done, the last check and its figures, the last breach and what was done.' });
  setHandler(
    stopMonitorUpdate,
    (d) => {
      stop = d;
      status.stopped = `stopped by ${d.by.trim()}: ${d.reason.trim()}`;
      publish();
      return status;
    },
    {
      description: 'Stop monitoring. Input: {"by": "you@example.com", "reason": "why"}.',
      validator: (d) => {
        requireWhoAndWhy(d);
        if (stop) refuse(status.stopped ?? 'already stopped');
      },
    },
  );
  publish();

  input.startedAt ??= new Date(Date.now()).toISOString();
  const endsAt = Date.parse(input.startedAt) + durationMs(spec.duration);
  for (let n = 0; n < spec.checksPerRun; n++) {
    const left = endsAt - Date.now();
    if (left <= 0) {
      status.stopped = `monitoring ended after ${spec.duration}`;
      break;
    }
    await condition(() => stop !== undefined, Math.min(left, durationMs(spec.every)));
    if (stop) break;
    if (Date.now() >= endsAt) continue;
    const to = Date.now();
    const check = await monitor.checkProductionDrift({ plan, monitor: spec, reference: { dataset: input.releaseSpec.dataset }, from: to - durationMs(spec.window), to, at: new Date(to).toISOString() });
    status.checks++;
    status.lastCheck = check;
    publish();
    if (check.breaches.length === 0) continue;
    const acted = await onBreach(input, check, retrainStarted);
    input.breaches = (input.breaches ?? 0) + 1;
    status.lastAction = acted;
    publish();
    if (acted.action === 'retrain') retrainStarted = true;
    if (acted.action === 'rollback') {
      status.stopped = `rolled back ${plan.releaseId} (${acted.workflowId}); monitoring ends`;
      publish();
      await condition(allHandlersFinished);
      return status;
    }
  }
  await condition(allHandlersFinished);
  if (stop || status.stopped) return status;
  return continueAsNew<typeof driftMonitorWorkflow>({
    ...input,
    checksDone: status.checks,
    ...(status.lastCheck ? { lastCheck: status.lastCheck } : {}),
    ...(status.lastAction ? { lastAction: status.lastAction } : {}),
  });
}

async function onBreach(input: DriftMonitorInput, check: DriftCheck, retrainStarted: boolean): Promise<NonNullable<DriftMonitorStatus['lastAction']>> {
  const { plan, monitor: spec } = input;
  const why = `drift monitor: ${check.breaches.join('; ')}`;
  const at = check.at;
  if (spec.onBreach === 'rollback') {
    const workflowId = rollbackWorkflowId(plan.releaseId);
    try {
      await executeChild('releaseRollbackWorkflow', {
        workflowId,
        args: [{ plan, by: 'drift-monitor', reason: why }],
        parentClosePolicy: ParentClosePolicy.ABANDON,
        staticSummary: `rollback of ${plan.releaseId}: ${why}`.slice(0, 200),
      });
    } catch (err) {
      // An operator's rollback of the same release got there first: one rollback is enough.
      if ((err as Error)?.name !== 'WorkflowExecutionAlreadyStartedError') throw err;
    }
    log.warn(`${why}: rolled back ${plan.releaseId}`);
    return { at, action: 'rollback', breaches: check.breaches, workflowId };
  }
  if (spec.onBreach === 'retrain' && !retrainStarted) {
    const shaOrId = `retrain-${at.replace(/[^0-9]/g, '').slice(0, 14)}`;
    const workflowId = releaseWorkflowId(plan.model, shaOrId);
    const { git: _git, ...rest } = input.releaseSpec;
    await startChild('modelReleaseWorkflow', {
      workflowId,
      args: [{ ...rest, dataset: spec.retrain!.dataset, git: {} }],
      parentClosePolicy: ParentClosePolicy.ABANDON,
      staticSummary: `retraining ${plan.model} after drift: ${check.breaches.join('; ')}`.slice(0, 200),
    });
    log.warn(`${why}: started retraining release ${workflowId}`);
    return { at, action: 'retrain', breaches: check.breaches, workflowId };
  }
  log.warn(`${why}${spec.onBreach === 'retrain' ? ' (a retraining release was already started)' : ''}`);
  return { at, action: 'alert', breaches: check.breaches };
}

function renderDetails(s: DriftMonitorStatus, policy: string): string {
  const out = [`## drift monitor: ${s.alias} (${s.version})`, '', `**Checks** ${s.checks} · **On breach** \`${policy}\``, ''];
  if (s.stopped) out.push(`**Stopped:** ${s.stopped}`, '');
  const c = s.lastCheck;
  if (c) {
    out.push(`### Last check (${c.at})`, '', `samples ${c.samples}${c.inconclusive ? ' (too few: inconclusive)' : ''}`);
    if (c.input) out.push(`- input drift (${c.input.method}): score ${c.input.score.toPrecision(4)} vs threshold ${c.input.threshold}: ${c.input.drifted ? '**drifted**' : 'no drift'}`);
    out.push(`- error rate ${c.errorRate.toPrecision(3)}, empty answers ${c.emptyRate.toPrecision(3)}${c.meanFeedback !== undefined ? `, feedback ${c.meanFeedback.toPrecision(3)}` : ''}, mean answer ${Math.round(c.meanCompletionChars)} chars`);
    out.push(c.breaches.length ? `- **breaches:** ${c.breaches.join('; ')}` : '- healthy', '');
  }
  if (s.lastAction) out.push(`**Last action:** ${s.lastAction.action} at ${s.lastAction.at}${s.lastAction.workflowId ? ` (\`${s.lastAction.workflowId}\`)` : ''}: ${s.lastAction.breaches.join('; ')}`);
  return out.join('\n').trimEnd() + '\n';
}
