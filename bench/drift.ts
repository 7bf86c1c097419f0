/**
 * Drift benchmark (npm run bench -- drift; also `npx tsx bench/drift.ts`): the time of one drift
 * check of 10,000 × 384 embeddings against 10,000 × 384 per method, ours against Evidently's on
 * the same arrays, and whether the verdicts agree. Results: bench/results/drift.json.
 *
 * Arrays: all-MiniLM-style sentence embeddings (384 dims, unit norm, a common direction shared by
 * all, 60 topic directions, isotropic noise), float32 .npy files under bench/.tmp/drift:
 *   - no-drift: current drawn like the reference (40 topics), another seed;
 *   - topic-shift: current from topics 20..49 (a third of its traffic on 10 topics the reference
 *     never saw, 20 reference topics gone): a realistic drift, on which Evidently's default
 *     thresholds disagree among the methods;
 *   - shift: current like the reference plus a shift of 0.3 along one direction, which every
 *     method flags.
 * Ours: `forgeline drift check --method M --json` as a process per method (the CLI's code path);
 * seconds = the computation it reports, wallSeconds = the whole process. Evidently 0.7.23 in its
 * own venv (bench/peers/setup-evidently.sh): each method's call timed alone
 * (bench/peers/evidently_drift.py). Our checks run on one thread; numpy's BLAS uses every core.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { REPO_ROOT } from '../src/config/load';
import { runMain } from '../src/cli/run-main';
import { DRIFT_METHODS, type DriftMethod, type Embeddings } from '../src/drift';
import { writeNpy } from '../src/drift/npy';
import { Rng } from '../src/drift/random';

const ROWS = Number(process.env.FORGELINE_BENCH_DRIFT_ROWS ?? 10_000);
const DIMS = 384;
const EVIDENTLY_VENV = process.env.FORGELINE_EVIDENTLY_VENV ?? path.join(REPO_ROOT, 'bench', '.venv-evidently');
const round = (x: number, digits = 4) => Number(x.toFixed(digits));

function unit(rng: Rng): Float64Array {
  const v = Float64Array.from({ length: DIMS }, () => rng.normal());
  const n = Math.hypot(...v);
  return v.map((x) => x / n);
}

/** The embedding "world": a common direction, 60 topics, one shift direction. */
const world = new Rng(2024);
const COMMON = unit(world);
const TOPICS = Array.from({ length: 60 }, () => unit(world));
const SHIFT = unit(world);

function sentences(seed: number, rows: number, topics: [number, number], shift = 0): Embeddings {
  const rng = new Rng(seed);
  const data = new Float32Array(rows * DIMS);
  const row = new Float64Array(DIMS);
  for (let i = 0; i < rows; i++) {
    const t = TOPICS[topics[0] + rng.int(topics[1] - topics[0])]!;
    let s = 0;
    for (let k = 0; k < DIMS; k++) {
      row[k] = 0.35 * COMMON[k]! + 0.6 * t[k]! + (0.9 * rng.normal()) / Math.sqrt(DIMS) + shift * SHIFT[k]!;
      s += row[k]! * row[k]!;
    }
    for (let k = 0; k < DIMS; k++) data[i * DIMS + k] = row[k]! / Math.sqrt(s);
  }
  return { rows, cols: DIMS, data };
}

interface OurRun {
  drifted: boolean;
  score: number;
  threshold: number;
  seconds: number;
  wallSeconds: number;
  details: Record<string, unknown>;
}

function ours(reference: string, current: string, method: DriftMethod): OurRun {
  const t0 = performance.now();
  const r = spawnSync(path.join(REPO_ROOT, 'bin', 'forgeline'), ['drift', 'check', '--reference', reference, '--current', current, '--method', method, '--json'], { encoding: 'utf8', maxBuffer: 1 << 24 });
  const wallSeconds = (performance.now() - t0) / 1000;
  if (r.status !== 0) throw new Error(`forgeline drift check --method ${method} failed (exit ${r.status}): ${r.stderr}`);
  const res = (JSON.parse(r.stdout) as { results: Array<Omit<OurRun, 'wallSeconds'>> }).results[0]!;
  return { drifted: res.drifted, score: res.score, threshold: res.threshold, seconds: round(res.seconds, 3), wallSeconds: round(wallSeconds, 3), details: res.details };
}

interface EvidentlyRun {
  versions: Record<string, string>;
  results: Array<{ method: DriftMethod; drifted: boolean; score: number; seconds: number }>;
}

function evidently(reference: string, current: string): EvidentlyRun {
  const r = spawnSync(path.join(EVIDENTLY_VENV, 'bin', 'python'), [path.join(REPO_ROOT, 'bench', 'peers', 'evidently_drift.py'), '--reference', reference, '--current', current], { encoding: 'utf8', maxBuffer: 1 << 24 });
  if (r.status !== 0) throw new Error(`bench/peers/evidently_drift.py failed (exit ${r.status}): ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as EvidentlyRun;
}

function ensureEvidentlyVenv(): void {
  const setup = spawnSync('bash', [path.join(REPO_ROOT, 'bench', 'peers', 'setup-evidently.sh')], { encoding: 'utf8', env: { ...process.env, FORGELINE_EVIDENTLY_VENV: EVIDENTLY_VENV } });
  if (setup.status !== 0) throw new Error(`bench/peers/setup-evidently.sh failed (exit ${setup.status}):\n${setup.stdout}${setup.stderr}`);
}

const load = () => os.loadavg().map((x) => round(x, 2));

export async function driftBenchmark(): Promise<number> {
  const log = (line: string) => console.log(`bench drift: ${line}`);
  ensureEvidentlyVenv();
  const dir = path.join(REPO_ROOT, 'bench', '.tmp', 'drift');
  mkdirSync(dir, { recursive: true });
  const cases: Record<string, { what: string; data: Embeddings }> = {
    'no-drift': { what: 'current drawn like the reference (topics 0..39), another seed', data: sentences(2, ROWS, [0, 40]) },
    'topic-shift': { what: 'current from topics 20..49: 10 new topics, 20 gone', data: sentences(3, ROWS, [20, 50]) },
    shift: { what: 'current like the reference plus 0.3 along one direction (before normalising)', data: sentences(4, ROWS, [0, 40], 0.3) },
  };
  const reference = path.join(dir, 'reference.npy');
  writeNpy(reference, sentences(1, ROWS, [0, 40]));
  const loadAtStart = load();
  const loadAfterEachCase: number[][] = [];
  const results: Record<string, unknown> = {};
  let versions: Record<string, string> = {};
  let agreements = 0;
  let comparisons = 0;
  for (const [name, c] of Object.entries(cases)) {
    const current = path.join(dir, `${name}.npy`);
    writeNpy(current, c.data);
    const mine = Object.fromEntries(DRIFT_METHODS.map((m) => [m, ours(reference, current, m)])) as Record<DriftMethod, OurRun>;
    log(`${name}: ours ${DRIFT_METHODS.map((m) => `${m} ${mine[m].seconds}s`).join(', ')}; Evidently running`);
    const peer = evidently(reference, current);
    versions = peer.versions;
    const perMethod: Record<string, unknown> = {};
    for (const m of DRIFT_METHODS) {
      const e = peer.results.find((r) => r.method === m)!;
      const agree = e.drifted === mine[m].drifted;
      agreements += agree ? 1 : 0;
      comparisons++;
      perMethod[m] = {
        agree,
        ours: { drifted: mine[m].drifted, score: round(mine[m].score, 6), threshold: round(mine[m].threshold, 6), seconds: mine[m].seconds, wallSeconds: mine[m].wallSeconds, details: mine[m].details },
        evidently: { drifted: e.drifted, score: round(e.score, 6), seconds: round(e.seconds, 3) },
        speedup: round(e.seconds / Math.max(mine[m].seconds, 1e-4), 1),
      };
      log(`${name} ${m}: ours ${mine[m].drifted ? 'DRIFT' : 'no drift'} ${mine[m].score.toPrecision(4)} in ${mine[m].seconds}s, Evidently ${e.drifted ? 'DRIFT' : 'no drift'} ${e.score.toPrecision(4)} in ${e.seconds.toFixed(3)}s${agree ? '' : ' DISAGREE'}`);
    }
    results[name] = { what: c.what, methods: perMethod };
    loadAfterEachCase.push(load());
  }
  const result = {
    benchmark: 'drift',
    what: `one drift check of ${ROWS} × ${DIMS} current against ${ROWS} × ${DIMS} reference float32 embeddings per method with Evidently's defaults; ours = forgeline drift check --method M --json as a process (seconds: the computation it reports; wallSeconds: the whole process with Node start-up and reading the .npy files), Evidently = the method call alone on pandas frames built beforehand (bench/peers/evidently_drift.py); verdicts compared per method`,
    arrays: `all-MiniLM-style: unit-norm, 0.35 × a common direction + 0.6 × one of 60 topic directions + N(0, 0.9²/384) noise; generated by bench/drift.ts (seeded) into bench/.tmp/drift`,
    notes: [
      'ours run on one thread (JavaScript); Evidently on numpy/scikit-learn, whose BLAS uses every core',
      "mmd: ours computes MMD² on a uniform sample of 2000 rows per side (details.referenceRows), Evidently on all rows (a 20,000² kernel matrix); the bandwidth sample (1000 per side) is the same rule",
      'model: same classifier (SGDClassifier log-loss, its defaults) and split rule; our split and shuffles come from another generator, so the AUCs differ by sampling noise',
      'ratio and distance: the same computation; scores agree to float32 rounding',
    ],
    versions: { node: process.version, ...versions },
    machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, memGiB: Math.round(os.totalmem() / 2 ** 30) },
    load: { loadavgAtStart: loadAtStart, loadavgAfterEachCase: loadAfterEachCase, atEnd: load() },
    verdictsAgree: `${agreements} of ${comparisons}`,
    cases: results,
    measuredAt: new Date().toISOString(),
  };
  const out = path.join(REPO_ROOT, 'bench', 'results', 'drift.json');
  mkdirSync(path.dirname(out), { recursive: true });
  writeFileSync(out, JSON.stringify(result, null, 2) + '\n');
  log(`verdicts agree ${agreements} of ${comparisons}; wrote ${path.relative(process.cwd(), out)}`);
  return 0;
}

if (require.main === module) runMain(driftBenchmark);
