import { log, ParentClosePolicy, proxyActivities, setCurrentDetails, startChild, upsertSearchAttributes, workflowInfo, WorkflowIdReusePolicy } from '@temporalio/workflow';
import type { createEmbeddingDriftActivities } from '../activities/embeddings-drift';
import { driftReembedWorkflowId, EmbeddingDriftOutcome, type EmbeddingDriftAction, type EmbeddingDriftCheck, type EmbeddingDriftResult, type EmbeddingDriftSpec } from '../src/contracts/embedding-drift';
import { ErrorType } from '../src/contracts/errors';
import { ForgelineLifecycle, ForgelineOutcome, Lifecycle } from '../src/contracts/search-attributes';

type DriftActivities = ReturnType<typeof createEmbeddingDriftActivities>;

const light = proxyActivities<DriftActivities>({
  startToCloseTimeout: '30 seconds',
  retry: { maximumAttempts: 3, nonRetryableErrorTypes: [ErrorType.InvalidSpec] },
});
const check = proxyActivities<DriftActivities>({
  startToCloseTimeout: '30 minutes',
  heartbeatTimeout: '2 minutes',
  retry: { maximumAttempts: 5, maximumInterval: '1 minute', nonRetryableErrorTypes: [ErrorType.InvalidSpec, ErrorType.InvalidConfig, ErrorType.VectorStoreRejected] },
});

/** The re-embed workflow a breach starts (registered by workflows/reembed; named by type, as a Schedule would). */
export const REEMBED_WORKFLOW_TYPE = 'reembedCorpusWorkflow';

/**
 * One embedding drift check of a vector index, run by a Schedule (`forgeline schedule apply`):
 * the fresh texts (sampled queries or gateway traffic) embedded with the index's model against a
 * sample of the vectors the alias points at (or a stored reference), by each of `spec.checks`
 * (src/drift, the model monitor's functions). A breach acts by `spec.onBreach`:
 *   - alert: ForgelineOutcome = Drifted, a tracker summary, a warning in the log and the result;
 *   - reembed: also starts `reembedCorpusWorkflow` (abandoned: it outlives this check) with the
 *     ID `reembed/<corpus>/drift-<reference version>`, so a second breach against the same
 *     version finds it running or done and starts no other.
 */
export async function embeddingDriftWorkflow(rawSpec: unknown): Promise<EmbeddingDriftResult> {
  upsertSearchAttributes([{ key: ForgelineLifecycle, value: Lifecycle.EmbeddingDrift }]);
  const spec = await light.validateEmbeddingDriftSpec(rawSpec);
  const at = new Date(Date.now()).toISOString();
  setCurrentDetails(`## embedding drift: ${spec.name}\n\nchecking ${describeFresh(spec)} against ${describeReference(spec)}\n`);
  const measured = await check.checkEmbeddingDrift({ spec, at });
  const drifted = !measured.inconclusive && measured.breaches.length > 0;
  const result: EmbeddingDriftResult = { name: spec.name, check: measured, drifted };
  if (drifted) {
    result.action = await onBreach(spec, measured);
    log.warn(`embedding drift ${spec.name}: ${measured.breaches.join('; ')}; ${result.action.note}`);
  }
  const outcome = measured.inconclusive ? EmbeddingDriftOutcome.Inconclusive : drifted ? EmbeddingDriftOutcome.Drifted : EmbeddingDriftOutcome.NoDrift;
  upsertSearchAttributes([{ key: ForgelineOutcome, value: outcome }]);
  setCurrentDetails(renderDetails(result));
  await light.recordEmbeddingDrift({ workflowId: workflowInfo().workflowId, result });
  return result;
}

async function onBreach(spec: EmbeddingDriftSpec, measured: EmbeddingDriftCheck): Promise<EmbeddingDriftAction> {
  if (spec.onBreach.policy === 'alert') return { policy: 'alert', note: 'alerted (policy alert)' };
  const reembed = spec.onBreach.reembed;
  const version = measured.reference.version!; // the schema requires reference.store for policy reembed
  const workflowId = driftReembedWorkflowId(reembed.corpus.name, version);
  try {
    await startChild(REEMBED_WORKFLOW_TYPE, {
      workflowId,
      args: [reembed],
      parentClosePolicy: ParentClosePolicy.ABANDON,
      // A failed re-embed may be retried by the next breach; a running or finished one is not repeated.
      workflowIdReusePolicy: WorkflowIdReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
      staticSummary: `re-embed of ${reembed.store.index}/${reembed.store.alias} after embedding drift of ${version}: ${measured.breaches.join('; ')}`.slice(0, 200),
    });
  } catch (err) {
    if ((err as Error)?.name !== 'WorkflowExecutionAlreadyStartedError') throw err;
    return { policy: 'reembed', workflowId, started: false, note: `re-embed ${workflowId} was already started for version ${version}; none started` };
  }
  return { policy: 'reembed', workflowId, started: true, note: `started re-embed ${workflowId}` };
}

function describeFresh(spec: EmbeddingDriftSpec): string {
  const f = spec.fresh;
  if ('traffic' in f) return `gateway traffic of ${f.traffic.alias} (last ${f.traffic.window})`;
  if ('documents' in f) return 'folder' in f.documents.source ? `new documents in ${f.documents.source.folder}` : `new documents under ${f.documents.source.artifactPrefix}`;
  return 'file' in f.queries ? `queries in ${f.queries.file}` : `queries in artifact ${f.queries.artifact}`;
}

function describeReference(spec: EmbeddingDriftSpec): string {
  const r = spec.reference;
  return 'store' in r ? `index ${r.store.index} (alias ${r.store.alias})` : `reference ${r.artifact}`;
}

function renderDetails(r: EmbeddingDriftResult): string {
  const c = r.check;
  const out = [`## embedding drift: ${r.name} (${c.at})`, ''];
  out.push(`**Reference** ${c.reference.version ? `${c.reference.index}/${c.reference.version} (alias ${c.reference.alias})` : c.reference.key}, ${c.reference.rows} embeddings`);
  out.push(`**Fresh** ${c.fresh.source}: ${c.fresh.samples} of ${c.fresh.texts} texts`, '');
  if (c.inconclusive) out.push('too few fresh texts: **inconclusive**');
  for (const v of c.verdicts) out.push(`- ${v.method}: score ${v.score.toPrecision(4)} vs threshold ${Number(v.threshold.toPrecision(4))}: ${v.drifted ? '**drifted**' : 'no drift'}`);
  if (r.action) out.push('', `**Action** ${r.action.note}`);
  return out.join('\n') + '\n';
}
