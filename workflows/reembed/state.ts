import { setCurrentDetails, upsertSearchAttributes } from '@temporalio/workflow';
import { ReembedOutcome, ReembedStage, zeroCounts, type ReembedCarry, type ReembedProgress } from '../../src/contracts/reembed-spec';
import { ForgelineLifecycle, ForgelineModel, ForgelineOutcome, ForgelineStage, Lifecycle } from '../../src/contracts/search-attributes';

/** The raw spec's names, read before validation so even a refused spec is found by them. */
function names(raw: unknown): { corpus: string; index: string; alias: string; model?: string } {
  const r = (raw ?? {}) as { corpus?: { name?: unknown }; store?: { index?: unknown; alias?: unknown }; embedding?: { model?: unknown } };
  const str = (v: unknown, d: string) => (typeof v === 'string' && v ? v.slice(0, 128) : d);
  return {
    corpus: str(r.corpus?.name, 'unknown'),
    index: str(r.store?.index, 'unknown'),
    alias: str(r.store?.alias, 'live'),
    ...(typeof r.embedding?.model === 'string' ? { model: r.embedding.model.slice(0, 128) } : {}),
  };
}

/** The re-embed as operators see it: the `progress` query, search attributes and "Current Details", in step. */
export class ReembedState {
  readonly progress: ReembedProgress;

  constructor(readonly workflowId: string, raw: unknown, carry?: ReembedCarry) {
    const n = names(raw);
    this.progress = {
      corpus: n.corpus,
      index: n.index,
      alias: n.alias,
      stage: carry ? ReembedStage.Embed : ReembedStage.Validate,
      outcome: ReembedOutcome.Running,
      slices: { done: carry?.nextSlice ?? 0, total: carry?.manifest.slices ?? 0 },
      batches: { done: (carry?.counts.batches ?? 0) + (carry?.counts.batchesSkipped ?? 0), total: carry?.batchesTotal ?? 0 },
      counts: carry?.counts ?? zeroCounts(),
      continuedAsNew: carry?.continuedAsNew ?? 0,
      ...(carry ? { version: carry.prepared.version, documents: carry.manifest.documents, chunks: carry.manifest.chunks } : {}),
      ...(carry?.prepared.previous ? { previous: carry.prepared.previous.version } : {}),
    };
    upsertSearchAttributes([
      { key: ForgelineLifecycle, value: Lifecycle.Reembed },
      { key: ForgelineStage, value: this.progress.stage },
      { key: ForgelineOutcome, value: this.progress.outcome },
      ...(n.model ? [{ key: ForgelineModel, value: n.model }] : []),
    ]);
    this.publish();
  }

  setStage(stage: ReembedProgress['stage']): void {
    this.progress.stage = stage;
    upsertSearchAttributes([{ key: ForgelineStage, value: stage }]);
    this.publish();
  }

  setOutcome(outcome: ReembedProgress['outcome'], failure?: string): void {
    this.progress.outcome = outcome;
    if (failure) this.progress.failure = failure;
    upsertSearchAttributes([{ key: ForgelineOutcome, value: outcome }]);
    this.publish();
  }

  /** Re-render "Current Details" (the UI reads it through a metadata query; no command). */
  publish(): void {
    const p = this.progress;
    const c = p.counts;
    const lines = [
      `**re-embed ${p.corpus}** → ${p.index}/${p.version ?? '?'} (alias \`${p.alias}\`${p.previous ? `, previous ${p.previous}` : ''}): **${p.stage}**, ${p.outcome}`,
      '',
      `- slices ${p.slices.done}/${p.slices.total}, batches ${p.batches.done}/${p.batches.total}${p.continuedAsNew ? `, continued as new ${p.continuedAsNew}×` : ''}`,
      `- ${p.documents ?? 0} documents, ${p.chunks ?? 0} chunks: ${c.embedded} embedded, ${c.carried} carried over, ${c.present} already there, ${c.upserted} upserted`,
    ];
    const v = p.validation;
    if (v) lines.push(`- validation ${v.passed ? 'passed' : 'FAILED'}: count ${v.count}/${v.expectedCount}${v.recallAtK !== undefined ? `, recall@${v.k} ${v.recallAtK.toFixed(3)}, MRR ${v.mrr!.toFixed(3)}` : ''}${v.overlapAtK !== undefined ? `, overlap@${v.k} ${v.overlapAtK.toFixed(3)}` : ''}${v.failures.length ? `: ${v.failures.join('; ')}` : ''}`);
    if (p.swappedAt) lines.push(`- alias moved at ${p.swappedAt}`);
    if (p.retireAt) lines.push(`- previous version dropped at ${p.retireAt}${p.retired ? ' (done)' : ''}`);
    if (p.failure) lines.push(`- failure: ${p.failure}`);
    setCurrentDetails(lines.join('\n'));
  }
}
