import { createHash } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { trackerRunId } from '../src/contracts/release-lifecycle';
import type { StackCheckSpec, StackProbeInput, StackProbeResult } from '../src/contracts/stack-check';
import { StackCheckSpecSchema } from '../src/contracts/specs/stack-check';
import type { ActivityDeps } from './deps';
import { asActivityFailure, parseSpecOrFail } from './errors';

/** Deterministic bytes for a check, so a retried probe writes the same content-addressed object. */
function probePayload(checkId: string, bytes: number): Buffer {
  const out = Buffer.allocUnsafe(bytes);
  let block = createHash('sha256').update(checkId).digest();
  for (let off = 0; off < bytes; off += block.length) {
    block.copy(out, off, 0, Math.min(block.length, bytes - off));
    block = createHash('sha256').update(block).digest();
  }
  return out;
}

/** Tracker run ids allow [A-Za-z0-9_-]; workflow IDs carry slashes. */
export const runIdFor = trackerRunId;

export function createStackCheckActivities(deps: Pick<ActivityDeps, 'artifacts' | 'tracker' | 'trackerProject' | 'workerIdentity'>) {
  return {
    /** Control queue: the same validation the CLI applies, for runs started by hand in the UI. */
    async validateStackCheckSpec(spec: unknown): Promise<StackCheckSpec> {
      return parseSpecOrFail(StackCheckSpecSchema, spec, 'stack check spec');
    },

    /** GPU queue: write a payload, read it back, publish a report, log metrics. */
    async runStackProbe(input: StackProbeInput): Promise<StackProbeResult> {
      return asActivityFailure(async () => {
        const payload = probePayload(input.checkId, input.payloadBytes);
        const t0 = performance.now();
        const stored = await deps.artifacts.putContent(payload, { contentType: 'application/octet-stream' });
        const t1 = performance.now();
        const back = await deps.artifacts.getBytes(stored.key);
        const t2 = performance.now();
        const sha = createHash('sha256').update(back).digest('hex');
        if (sha !== stored.sha256) throw new Error(`read-back mismatch for ${stored.uri}: wrote ${stored.sha256}, read ${sha}`);

        const writeMs = t1 - t0;
        const readMs = t2 - t1;
        const metrics = {
          writeMs,
          readMs,
          payloadBytes: input.payloadBytes,
          throughputMiBps: (2 * input.payloadBytes) / (1024 * 1024) / Math.max((writeMs + readMs) / 1000, 1e-6),
        };

        const run = await deps.tracker.openRun({
          runId: runIdFor(input.checkId),
          project: deps.trackerProject,
          group: 'stack-check',
          name: `stack check ${input.checkId}`,
          jobType: 'stack-check',
          config: { pool: input.pool, payloadBytes: input.payloadBytes, worker: deps.workerIdentity, note: input.note ?? null },
        });
        await run.log({ write_ms: writeMs, read_ms: readMs, throughput_mib_s: metrics.throughputMiBps }, 0);
        await run.setSummary({ payload_sha256: stored.sha256, ok: true });
        await run.finish(0);

        const report = await deps.artifacts.put(
          `stack-checks/${runIdFor(input.checkId)}/report.json`,
          JSON.stringify({ ...input, worker: deps.workerIdentity, payload: stored, metrics, trackerRun: run.url }, null, 2) + '\n',
          { contentType: 'application/json' },
        );
        return {
          workerIdentity: deps.workerIdentity,
          pool: input.pool,
          payloadUri: stored.uri,
          payloadSha256: stored.sha256 ?? sha,
          reportUri: report.uri,
          trackerRunUrl: run.url,
          metrics,
        };
      });
    },
  };
}
