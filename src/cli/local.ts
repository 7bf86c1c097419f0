import type { ForgelineConfig } from '../config/schema';
import { runStackCheck } from './check';
import { ExitCode } from './errors';
import type { Output } from './output';
import { demoReleaseId, prepareDemoRelease, runRelease } from './release';
import { LocalStack } from './stack';

/** `forgeline dev`: the local stack until Ctrl-C or SIGTERM. */
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
  try {
    await stack.up({
      workers: true,
      onUnexpectedExit: (name, code) => {
        log(`${name} exited unexpectedly (code ${code}); stopping the stack`);
        resolveExit(ExitCode.Failure);
      },
    });
    await Promise.race([stack.workersReady(), exit]);
    log(`forgeline dev is up: control queue ${cfg.taskQueues.control}, gpu-${cfg.gpu.pool}. Ctrl-C stops it.`);
    return await exit;
  } finally {
    await stack.down();
    log('local stack stopped');
  }
}

/** `forgeline demo`: bring the stack up (reusing a running server), run the main job, print what it made. */
export async function demo(cfg: ForgelineConfig, out: Output): Promise<number> {
  const { log } = out;
  const stack = new LocalStack(cfg, log);
  const t0 = Date.now();
  let workerDied: ((err: Error) => void) | undefined;
  const died = new Promise<never>((_, reject) => (workerDied = reject));
  died.catch(() => undefined);
  const stop = () => void stack.down().then(() => process.exit(130));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    await stack.up({
      workers: true,
      workerLogLevel: 'warn',
      onUnexpectedExit: (name, code) => workerDied?.(new Error(`${name} exited with code ${code}`)),
    });
    await Promise.race([stack.workersReady(), died]);
    log(`stack ready in ${((Date.now() - t0) / 1000).toFixed(1)}s; preflight stack check (control → gpu-${cfg.gpu.pool} → artifacts → tracker)`);
    await Promise.race([runStackCheck(stack.client, cfg, { pool: cfg.gpu.pool, note: 'forgeline demo' }, log), died]);
    log('\npreparing the demo release: tiny Llama base model + tiny-instruct dataset');
    const spec = await Promise.race([prepareDemoRelease(cfg, log), died]);
    const code = await Promise.race([runRelease(stack.client, cfg, spec, out, { workflowId: demoReleaseId(spec) }), died]);
    log(`demo finished in ${((Date.now() - t0) / 1000).toFixed(1)}s`);
    if (stack.serverMode === 'started') log('the dev server stops with the demo; `npm run dev` keeps it up to browse the history in the Web UI');
    return code;
  } catch (err) {
    log(`demo failed: ${(err as Error).message}`);
    return ExitCode.Failure;
  } finally {
    await stack.down();
  }
}
