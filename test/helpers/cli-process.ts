import { execFile } from 'node:child_process';
import path from 'node:path';
import { REPO_ROOT } from '../../src/config/load';

/**
 * `forgeline <args>` as a process, asynchronously (a test's workers keep running meanwhile), with
 * no config file and `env` over the test's environment.
 */
export function forgelineProcess(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--require', require.resolve('tsx/cjs'), path.join(REPO_ROOT, 'src', 'cli', 'main.ts'), ...args],
      { cwd: REPO_ROOT, env: { ...process.env, FORGELINE_CONFIG: '', ...env }, timeout: 90_000 },
      (err, stdout, stderr) => resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}
