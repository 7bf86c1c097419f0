/**
 * `forgeline reembed start <spec>` and `forgeline reembed status <id>`: start a re-embed
 * (reembedCorpusWorkflow) and follow it until its alias has moved, or show where one stands.
 */
import { type Client, type WorkflowExecutionDescription, type WorkflowHandle } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import type { Command } from 'commander';
import type { ForgelineConfig } from '../config/schema';
import { ReembedOutcome, ReembedStage, reembedWorkflowId, type ReembedProgress, type ReembedSpec } from '../contracts/reembed-spec';
import { ForgelineLifecycle, ForgelineModel, ForgelineTeam, Lifecycle } from '../contracts/search-attributes';
import { ReembedSpecSchema, type ReembedSpecInput } from '../contracts/specs/reembed-spec';
import { formatProblems, validateSpec } from '../contracts/validate';
import { ConfigError } from '../ports/errors';
import { CliError, ExitCode } from './errors';
import type { Output } from './output';
import { readSpecFile } from './spec-file';
import { startOrFollow, type Log } from './stack';

export function parseReembedSpec(input: unknown, source?: string): ReembedSpec {
  const v = validateSpec(ReembedSpecSchema, input);
  if (!v.ok) throw new ConfigError(`${source ? `${source}: ` : ''}${formatProblems('reembed spec', v.problems)}`);
  return v.value as ReembedSpec;
}

/**
 * Start a re-embed, or join the one of the same corpus started this hour (`reembed/<corpus>/<yyyymmddhh>`):
 * a running or finished one is joined, never duplicated; a failed one may be started again.
 */
export async function startReembed(client: Client, cfg: ForgelineConfig, input: ReembedSpecInput | unknown, log: Log, opts: { workflowId?: string } = {}): Promise<WorkflowHandle> {
  const spec = parseReembedSpec(input);
  const workflowId = opts.workflowId ?? reembedWorkflowId(spec.corpus.name, new Date());
  return startOrFollow(client, cfg, log, 're-embed', 'reembedCorpusWorkflow', {
    workflowId,
    args: [input],
    typedSearchAttributes: [
      { key: ForgelineLifecycle, value: Lifecycle.Reembed },
      { key: ForgelineModel, value: spec.embedding.model },
      { key: ForgelineTeam, value: spec.team },
    ],
    staticSummary: `Re-embed ${spec.corpus.name} into ${spec.store.index} (alias ${spec.store.alias}): chunk ${spec.chunking.chunkTokens}/${spec.chunking.overlapTokens} tokens → ${spec.embedding.model} on gpu-${spec.pool} → validate → swap → retire after ${spec.retireAfter}`,
  });
}

/** One line of progress. */
export function describeProgress(p: ReembedProgress): string {
  const c = p.counts;
  const where = `${p.index}/${p.version ?? '?'}`;
  switch (p.stage) {
    case ReembedStage.Validate:
      return `validate the spec of ${p.index} (store, model, chunking)`;
    case ReembedStage.Embed:
      return `embed ${where}: slices ${p.slices.done}/${p.slices.total}, batches ${p.batches.done}/${p.batches.total}; ${c.embedded} embedded, ${c.carried} carried over, ${c.present} already there`;
    case ReembedStage.Chunk:
      return `chunk: listing and chunking ${p.corpus}`;
    case ReembedStage.ValidateIndex:
      return `validate ${where}`;
    case ReembedStage.Retire:
      return `alias ${p.alias} → ${p.version}; ${p.previous ?? 'the previous version'} is dropped at ${p.retireAt}`;
    default:
      return `${p.stage} ${where}`;
  }
}

/** The validation figures, one line. */
export function describeValidation(p: ReembedProgress): string | undefined {
  const v = p.validation;
  if (!v) return undefined;
  const q = v.recallAtK !== undefined ? `, ${v.queries} labelled queries: recall@${v.k} ${v.recallAtK.toFixed(3)}, MRR ${v.mrr!.toFixed(3)}` : ', no labelled queries';
  const o = v.overlapAtK !== undefined ? `, overlap@${v.k} with ${p.previous} ${v.overlapAtK.toFixed(3)}` : '';
  return `validation ${v.passed ? 'passed' : 'FAILED'}: ${v.count}/${v.expectedCount} vectors${q}${o}${v.failures.length ? `: ${v.failures.join('; ')}` : ''}`;
}

/** What each running activity's last heartbeat says (embedSlice: the next batch of its slice), one line each. */
export function runningActivities(desc: WorkflowExecutionDescription): string[] {
  return (desc.raw.pendingActivities ?? []).map((a) => {
    const payload = a.heartbeatDetails?.payloads?.[0];
    const beat = payload ? (defaultPayloadConverter.fromPayload(payload) as Record<string, unknown>) : undefined;
    const name = a.activityType?.name ?? '?';
    const what = beat && typeof beat.nextBatch === 'number' ? `slice ${String(beat.slice)}: batch ${beat.nextBatch}/${String(beat.batches)} done` : beat ? JSON.stringify(beat) : 'started';
    return `${name} (attempt ${a.attempt ?? 1}): ${what}`;
  });
}

async function progressOf(handle: WorkflowHandle): Promise<ReembedProgress | undefined> {
  return handle.query<ReembedProgress>('progress').catch(() => undefined);
}

/**
 * Follow a re-embed until its alias has moved (it then waits `retireAfter` to drop the previous
 * version: no need to watch that) or it has ended. Exit 0 once swapped, 3 on a failed validation, 1 otherwise.
 */
export async function followReembed(handle: WorkflowHandle, log: Log, pollMs = 1000): Promise<{ code: number; progress?: ReembedProgress }> {
  let last = '';
  for (;;) {
    const p = await progressOf(handle);
    if (p) {
      const line = describeProgress(p);
      if (line !== last) log(`  ${line}`);
      last = line;
      if (p.stage === ReembedStage.Retire || p.outcome === ReembedOutcome.Succeeded) {
        const v = describeValidation(p);
        if (v) log(`  ${v}`);
        return { code: ExitCode.Ok, progress: p };
      }
      if (p.outcome === ReembedOutcome.Failed) {
        const v = describeValidation(p);
        if (v) log(`  ${v}`);
        log(`re-embed failed: ${p.failure ?? 'see the Temporal UI'}`);
        return { code: p.validation && !p.validation.passed ? ExitCode.NoCandidate : ExitCode.Failure, progress: p };
      }
    }
    const d = await handle.describe();
    if (d.status.name !== 'RUNNING') {
      if (d.status.name === 'COMPLETED') return { code: ExitCode.Ok, ...(p ? { progress: p } : {}) };
      log(`re-embed ${handle.workflowId} ended ${d.status.name}`);
      return { code: ExitCode.Failure, ...(p ? { progress: p } : {}) };
    }
    await new Promise((r) => setTimeout(r, pollMs));
  }
}

type Run = <A extends unknown[]>(fn: (...args: A) => Promise<number>) => (...args: A) => Promise<void>;
type WithClient = <T>(cfg: ForgelineConfig, fn: (client: Client) => Promise<T>) => Promise<T>;

/** Adds `forgeline reembed start|status` to the program. */
export function addReembedCommands(program: Command, out: Output, run: Run, cfg: () => ForgelineConfig, withClient: WithClient): void {
  const reembed = program.command('reembed').description('re-embed a corpus into a new vector index version and swap its alias (reembedCorpusWorkflow)');
  reembed
    .command('start')
    .description('validate a re-embed spec (JSON) and start it, or join the one of its corpus started this hour; follows it until the alias has moved')
    .argument('<spec>', 're-embed spec, JSON; schema: docs/schemas/reembed-spec.schema.json')
    .option('--no-wait', 'start and return at once')
    .option('--json', 'NDJSON on stdout: {"event":"started",workflowId}, then (unless --no-wait) one {"event":"result",exitCode,progress}; progress lines on stderr')
    .action(
      run(async (file: string, opts: { wait: boolean; json?: boolean }) => {
        const c = cfg();
        const input = readSpecFile(file, '<spec>');
        parseReembedSpec(input, file); // a bad spec fails before any connection
        const log = opts.json ? out.error.bind(out) : out.log;
        return withClient(c, async (client) => {
          const handle = await startReembed(client, c, input, log);
          if (opts.json) out.event('started', { workflowId: handle.workflowId });
          if (!opts.wait) return ExitCode.Ok;
          const { code, progress } = await followReembed(handle, log);
          if (opts.json) out.event('result', { workflowId: handle.workflowId, exitCode: code, progress: progress ?? null });
          return code;
        });
      }),
    );
  reembed
    .command('status')
    .description('show a re-embed: stage, slices and batches done, counts, validation, swap and retirement')
    .argument('<id>', 're-embed workflow ID, e.g. reembed/docs/2026120306')
    .option('--json', 'print machine-readable JSON only: {workflowId, execution, progress, running}')
    .action(
      run(async (id: string, opts: { json?: boolean }) =>
        withClient(cfg(), async (client) => {
          const handle = client.workflow.getHandle(id);
          const d = await handle.describe().catch((err: Error) => {
            throw new CliError(`re-embed ${id}: ${err.message}`, ExitCode.Usage, { cause: err });
          });
          const progress = await progressOf(handle);
          if (opts.json) out.json({ workflowId: id, execution: d.status.name, progress: progress ?? null, running: runningActivities(d) });
          else {
            out.log(`re-embed ${id}: ${d.status.name}`);
            if (progress) {
              out.log(`  ${describeProgress(progress)}`);
              for (const line of runningActivities(d)) out.log(`    ${line}`);
              const v = describeValidation(progress);
              if (v) out.log(`  ${v}`);
              if (progress.failure) out.log(`  failure: ${progress.failure}`);
            } else out.log('  (no worker answered the progress query)');
          }
          return ExitCode.Ok;
        }),
      ),
    );
}
