import { type Command, Option } from 'commander';
import { checkDefaultDrift, checkDrift, DEFAULT_DRIFT_METHOD, DRIFT_METHODS, type DriftMethod, type DriftResult } from '../drift';
import { readNpy } from '../drift/npy';
import { ExitCode, UsageError } from './errors';
import type { Output } from './output';

const SCORE: Record<DriftMethod, string> = {
  model: 'ROC AUC of a domain classifier',
  mmd: 'MMD² (RBF kernel)',
  ratio: 'share of drifted components',
  distance: 'distance between mean embeddings',
};

export interface DriftCheckOptions {
  reference: string;
  current: string;
  method?: DriftMethod | 'all';
  json?: boolean;
  seed?: string;
}

function seedOption(seed: string | undefined): number | undefined {
  if (seed === undefined) return undefined;
  const n = Number(seed);
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`--seed ${seed}: expected a whole number >= 0`);
  return n;
}

/** `forgeline drift check`: read two .npy files, run the method(s), print the verdicts. Drift is not an error exit. */
export function driftCheck(opts: DriftCheckOptions, out: Output): number {
  const reference = readNpy(opts.reference);
  const current = readNpy(opts.current);
  const seed = seedOption(opts.seed);
  const withSeed = seed === undefined ? {} : { model: { seed }, mmd: { seed }, distance: { seed } };
  const results: DriftResult[] = [];
  if (opts.method === undefined) results.push(checkDefaultDrift(reference, current, withSeed));
  else for (const m of opts.method === 'all' ? DRIFT_METHODS : [opts.method]) results.push(checkDrift(reference, current, m, withSeed));
  const shape = (path: string, e: { rows: number; cols: number }) => ({ path, rows: e.rows, cols: e.cols });
  if (opts.json) {
    out.json({
      reference: shape(opts.reference, reference),
      current: shape(opts.current, current),
      ...(opts.method === undefined ? { defaultMethod: DEFAULT_DRIFT_METHOD } : {}),
      results: results.map(({ method, drifted, score, threshold, seconds, details }) => ({ method, drifted, score, threshold, seconds, details })),
    });
    return ExitCode.Ok;
  }
  out.log(`reference ${opts.reference} (${reference.rows} × ${reference.cols}), current ${opts.current} (${current.rows} × ${current.cols})`);
  if (opts.method === undefined) out.log(`method ${DEFAULT_DRIFT_METHOD}: the drift monitor's default (Evidently's), bootstrapped below 1000 reference rows; --method picks another`);
  for (const r of results) {
    const cmp = r.drifted ? '>' : '<=';
    out.log(`${r.method}: ${r.drifted ? 'DRIFT' : 'no drift'}: ${SCORE[r.method]} ${r.score.toPrecision(4)} ${cmp} threshold ${Number(r.threshold.toPrecision(4))} (${r.seconds.toFixed(2)} s)`);
  }
  return ExitCode.Ok;
}

type Run = <A extends unknown[]>(fn: (...args: A) => Promise<number>) => (...args: A) => Promise<void>;

/** Adds `forgeline drift check` to the program. */
export function addDriftCommands(program: Command, out: Output, run: Run): void {
  const drift = program.command('drift').description('input drift of embeddings (the drift monitor’s checks, Evidently’s methods and defaults)');
  drift
    .command('check')
    .description('compare two sets of embeddings (2-D float32 .npy, one embedding per row) and print {method, drifted, score, threshold, seconds} per method; drift does not change the exit code')
    .requiredOption('--reference <file>', 'reference embeddings, e.g. from the training or eval data (.npy, float32, rows × dims)')
    .requiredOption('--current <file>', 'current embeddings, e.g. a window of traffic (.npy, float32, same dims)')
    .addOption(new Option('--method <method>', `drift method (default: ${DEFAULT_DRIFT_METHOD}, the monitor's default)`).choices([...DRIFT_METHODS, 'all']))
    .option('--seed <n>', 'seed for the sampling, split and shuffles (default: Evidently’s, 42 for model, 0 otherwise)')
    .option('--json', 'print machine-readable JSON only: {reference, current, defaultMethod?, results: [{method, drifted, score, threshold, seconds, details}]}')
    .action(run(async (opts: DriftCheckOptions) => driftCheck(opts, out)));
}
