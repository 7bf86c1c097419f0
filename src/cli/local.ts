import type { ForgelineConfig } from '../config/schema';
import { ReleaseOutcome } from '../contracts/release-lifecycle';
import { runStackCheck } from './check';
import { demoSpecs, prepareBadDataset, printDemoSummary, runDemoRelease, type DemoReleaseResult } from './demo';
import { ExitCode } from './errors';
import type { Output } from './output';
import { ensureTinyBaseModel, prepareDemoRelease } from './release';
import { DEV_ALIAS, DEV_BASE_MODEL } from './serving-stack';
import { LocalStack } from './stack';

/**
 * `forgeline dev`: the local stack until Ctrl-C or SIGTERM: Temporal, workers, the gateway and a
 * vLLM server on CPU serving the tiny base model (built first if absent), ready for releases with
 * `serving`. "is up" once all of it answers.
 */
export async function dev(cfg: ForgelineConfig, out: Output): Promise<number> {
  const { log } = out;
  const stack = new LocalStack(cfg, log);
  let resolveExit!: (code: number) => void;
  const exit = new Promise<number>((r) => (resolveExit = r));
  const onSignal = (sig: string) => {
    log(`\n${sig}: stopping the local stack…`);
    resolveExit(ExitCode.Ok);
  };
  process.once('SIGINT', () => onSignal('SIGINT'));
  process.once('SIGTERM', () => onSignal('SIGTERM'));
  const onUnexpectedExit = (name: string, code: number | null) => {
    log(`${name} exited unexpectedly (code ${code}); stopping the stack`);
    resolveExit(ExitCode.Failure);
  };
  try {
    await stack.up({ workers: true, serving: true, onUnexpectedExit });
    const serving = stack.serving!;
    serving.startVllm(
      ensureTinyBaseModel(cfg, log).then((m) => m.dir),
      { onExit: onUnexpectedExit, restoreRoutes: true },
    );
    const failed = (err: Error) => {
      log(`the local stack could not start: ${err.message}`);
      return ExitCode.Failure;
    };
    const ready = await Promise.race([Promise.all([stack.workersReady(), serving.ready()]).then(() => undefined, failed), exit]);
    if (ready !== undefined) return ready;
    const scaled = Object.keys(cfg.autoscale?.pools ?? {});
    const gpuQueues = [...(scaled.includes(cfg.gpu.pool) ? [] : [`gpu-${cfg.gpu.pool}`]), ...scaled.map((p) => `gpu-${p} (autoscaled)`)].join(', ');
    log(`forgeline dev is up: control queue ${cfg.taskQueues.control}, ${gpuQueues}, gateway ${serving.gatewayUrl}. Ctrl-C stops it.`);
    serving.printUsage();
    return await exit;
  } finally {
    await stack.down();
    log('local stack stopped');
  }
}

/**
 * `forgeline demo`: bring the stack up (reusing a running server), run the stack check, then the
 * whole lifecycle twice through the gateway and vLLM: a good candidate that must end Promoted and a
 * bad one that the canary must roll back (src/cli/demo.ts). Exit 0 only if both end as expected.
 */
export async function demo(cfg: ForgelineConfig, out: Output): Promise<number> {
  const { log } = out;
  const stack = new LocalStack(cfg, log);
  const t0 = Date.now();
  const secs = () => `${((Date.now() - t0) / 1000).toFixed(1)}s`;
  let stackDied: ((err: Error) => void) | undefined;
  const died = new Promise<never>((_, reject) => (stackDied = reject));
  died.catch(() => undefined);
  const stop = () => void stack.down().then(() => process.exit(130));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  const onUnexpectedExit = (name: string, code: number | null) => stackDied?.(new Error(`${name} exited with code ${code}`));
  try {
    // Workers log errors only: a release the canary rolls back is a failed workflow, and its stack
    // trace would drown the demo (FORGELINE_LOG_LEVEL=warn shows it).
    await stack.up({ workers: true, serving: true, workerLogLevel: 'error', onUnexpectedExit });
    const serving = stack.serving!;
    // vLLM boots (20-60 s) while the stack check and the first release's training run.
    serving.startVllm(
      ensureTinyBaseModel(cfg, log).then((m) => m.dir),
      { onExit: onUnexpectedExit },
    );
    await Promise.race([stack.workersReady(), died]);
    log(`stack ready in ${secs()}; preflight stack check (control → gpu-${cfg.gpu.pool} → artifacts → tracker)`);
    await Promise.race([runStackCheck(stack.client, cfg, { pool: cfg.gpu.pool, note: 'forgeline demo' }, log), died]);
    serving.printUsage();

    log('\npreparing the demo releases: tiny Llama base model + tiny-instruct dataset (and a corrupted copy for the bad candidate)');
    const prepared = await Promise.race([prepareDemoRelease(cfg, log), died]);
    const specs = demoSpecs(prepared, await Promise.race([prepareBadDataset(cfg, log), died]));
    await serving.ensureRoute({ force: true, reason: 'forgeline demo: start from the base model' });
    log(`route ${DEV_ALIAS} → ${DEV_BASE_MODEL} (the demo starts from the base model)`);
    const results: DemoReleaseResult[] = [];

    log(`\n[1/2] a good candidate: fine-tuned on tiny-instruct; canary ${specs.good.serving!.canary!.steps!.join('% → ')}% against the base model, ${specs.good.serving!.canary!.bake} bake per step`);
    results.push(await Promise.race([runDemoRelease(stack.client, cfg, serving, out, specs.good, 'good', ReleaseOutcome.Promoted), died]));

    log('\n[2/2] a bad candidate: the same recipe on the shuffled answers, with a loose offline gate (perplexity below the base model\'s) that lets it through;');
    log('      the online canary against the good version in production must catch it');
    results.push(await Promise.race([runDemoRelease(stack.client, cfg, serving, out, specs.bad, 'bad', ReleaseOutcome.RolledBack), died]));

    const ok = await printDemoSummary(results, serving, log);
    log(`demo finished in ${secs()}: ${ok ? 'the good candidate was Promoted and the bad one RolledBack, as expected' : 'NOT as expected (see above)'}`);
    if (stack.serverMode === 'started') log('the dev server stops with the demo; `npm run dev` keeps it up to browse the history in the Web UI');
    return ok ? ExitCode.Ok : ExitCode.Failure;
  } catch (err) {
    log(`demo failed: ${(err as Error).message}`);
    return ExitCode.Failure;
  } finally {
    await stack.down();
  }
}
