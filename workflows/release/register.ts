import type { EvalResult, QuantizeResult, TrainResult } from '../../activities/release';
import { ReleaseStage } from '../../src/contracts/release-lifecycle';
import { control } from './activities';
import { workflowNow, type ReleaseContext } from './context';
import { asStage } from './failures';

/** Stage register: every artifact becomes an immutable registry version with lineage (gate verdict included). */
export async function register(
  ctx: ReleaseContext,
  done: { trained: TrainResult; quantized: QuantizeResult; report: EvalResult; gatesPassed: boolean },
): Promise<Record<string, string>> {
  const { state } = ctx;
  state.setStage(ReleaseStage.Register);
  const registered = await asStage('register', () =>
    control().registerRelease({ releaseId: ctx.releaseId, spec: ctx.spec, ...done, at: workflowNow() }),
  );
  state.status.versions = registered.versions as Record<string, string>;
  if (registered.uris) state.status.versionUris = registered.uris as Record<string, string>;
  state.publish();
  return state.status.versions;
}
