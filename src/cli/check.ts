import type { Client } from '@temporalio/client';
import type { ForgelineConfig } from '../config/schema';
import { STACK_CHECK_WORKFLOW_ID_PREFIX, type StackCheckResult, type StackCheckSpec } from '../contracts/stack-check';
import { StackCheckSpecSchema } from '../contracts/specs/stack-check';
import { formatProblems, validateSpec } from '../contracts/validate';
import { ForgelineModel } from '../contracts/search-attributes';
import { ConfigError } from '../ports/errors';
import { uiUrl, type Log } from './stack';

function timestampId(d = new Date()): string {
  return d.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
}

/** Validate at the edge, start the stack check on the control queue, wait, and report. */
export async function runStackCheck(client: Client, cfg: ForgelineConfig, input: StackCheckSpec, log: Log): Promise<StackCheckResult> {
  const v = validateSpec(StackCheckSpecSchema, input);
  if (!v.ok) throw new ConfigError(formatProblems('stack check spec', v.problems));
  const workflowId = `${STACK_CHECK_WORKFLOW_ID_PREFIX}${v.value.pool}/${timestampId()}`;
  const handle = await client.workflow.start('stackCheckWorkflow', {
    taskQueue: cfg.taskQueues.control,
    workflowId,
    args: [v.value],
    typedSearchAttributes: [{ key: ForgelineModel, value: 'stack-check' }],
    memo: { summary: `Stack check of pool ${v.value.pool}` },
    staticSummary: `Stack check: control queue → gpu-${v.value.pool} → artifact store → tracker`,
  });
  log(`started ${workflowId}`);
  const ui = uiUrl(cfg, workflowId);
  if (ui) log(`  Temporal UI: ${ui}`);
  const result = (await handle.result()) as StackCheckResult;
  const m = result.probe.metrics;
  log(`stack check passed in ${(result.elapsedMs / 1000).toFixed(2)}s`);
  log(`  GPU worker:  ${result.probe.workerIdentity}`);
  log(`  artifact:    ${result.probe.payloadUri} (sha256 ${result.probe.payloadSha256.slice(0, 12)}…, ${m.payloadBytes} bytes)`);
  log(`  report:      ${result.probe.reportUri}`);
  log(`  tracker run: ${result.probe.trackerRunUrl}`);
  log(`  metrics:     write ${m.writeMs.toFixed(1)} ms, read ${m.readMs.toFixed(1)} ms, ${m.throughputMiBps.toFixed(0)} MiB/s`);
  return result;
}
