import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runCli } from '../../src/cli/program';
import { REPO_ROOT } from '../../src/config/load';
import type { Embeddings } from '../../src/drift';
import { formatNpy } from '../../src/drift/npy';
import { Rng } from '../../src/drift/random';

/** The real entry point as a process, the way bin/forgeline runs it. */
function forgeline(args: string[]) {
  const r = spawnSync(process.execPath, ['--require', require.resolve('tsx/cjs'), path.join(REPO_ROOT, 'src', 'cli', 'main.ts'), ...args], {
    cwd: REPO_ROOT,
    env: { ...process.env, FORGELINE_CONFIG: '' },
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

async function inProcess(...argv: string[]) {
  const sink = () => {
    const s = { text: '', write: (c: string) => ((s.text += c), true) };
    return s;
  };
  const stdout = sink();
  const stderr = sink();
  const code = await runCli(argv, { stdout, stderr });
  return { code, stdout: stdout.text, stderr: stderr.text };
}

function gaussian(seed: number, rows: number, cols: number, shift = 0): Embeddings {
  const rng = new Rng(seed);
  return { rows, cols, data: Float32Array.from({ length: rows * cols }, (_, i) => rng.normal() * 0.2 + (i % cols < 4 ? shift : 0)) };
}

describe('forgeline drift check', function () {
  let dir: string;
  const file = (name: string) => path.join(dir, name);
  before(function () {
    dir = mkdtempSync(path.join(os.tmpdir(), 'forgeline-drift-cli-'));
    writeFileSync(file('ref.npy'), formatNpy(gaussian(1, 1200, 16)));
    writeFileSync(file('same.npy'), formatNpy(gaussian(2, 1000, 16)));
    writeFileSync(file('shifted.npy'), formatNpy(gaussian(3, 1000, 16, 0.3)));
    writeFileSync(file('wide.npy'), formatNpy(gaussian(4, 100, 17)));
    // What numpy.save writes for a float64 array: the commonest mistake.
    const f8 = formatNpy(gaussian(5, 10, 4));
    writeFileSync(file('float64.npy'), Buffer.from(f8.toString('latin1').replace("'<f4'", "'<f8'"), 'latin1'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('as a process: --json prints the default method and {method, drifted, score, threshold, seconds}; exit 0 with or without drift', function () {
    for (const [cur, drifted] of [['shifted.npy', true], ['same.npy', false]] as const) {
      const r = forgeline(['drift', 'check', '--reference', file('ref.npy'), '--current', file(cur), '--json']);
      assert.equal(r.code, 0, r.stderr);
      const out = JSON.parse(r.stdout);
      assert.equal(out.defaultMethod, 'model');
      assert.deepEqual(out.reference, { path: file('ref.npy'), rows: 1200, cols: 16 });
      assert.deepEqual(out.current.rows, 1000);
      assert.equal(out.results.length, 1);
      const [res] = out.results;
      assert.deepEqual(Object.keys(res), ['method', 'drifted', 'score', 'threshold', 'seconds', 'details']);
      assert.equal(res.method, 'model');
      assert.equal(res.drifted, drifted, JSON.stringify(res));
      assert.equal(res.threshold, 0.55, '1200 reference rows: no bootstrap, the fixed threshold');
      assert.equal(typeof res.seconds, 'number');
    }
  });

  it('as a process: a float64 .npy is exit 2 with one line naming the file, the dtype and the fix', function () {
    const r = forgeline(['drift', 'check', '--reference', file('float64.npy'), '--current', file('same.npy'), '--json']);
    assert.equal(r.code, 2);
    assert.equal(r.stdout, '');
    assert.equal(r.stderr.trim(), `forgeline: ${file('float64.npy')}: dtype <f8 is not supported: expected little-endian float32 ('<f4'); convert with arr.astype('<f4')`);
  });

  it('--method all runs the four methods and says which drifted', async function () {
    const r = await inProcess('drift', 'check', '--reference', file('ref.npy'), '--current', file('shifted.npy'), '--method', 'all');
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trimEnd().split('\n');
    assert.match(lines[0]!, /^reference .*ref\.npy \(1200 × 16\), current .*shifted\.npy \(1000 × 16\)$/);
    assert.deepEqual(lines.slice(1).map((l) => l.split(':')[0]), ['model', 'mmd', 'ratio', 'distance']);
    for (const l of lines.slice(1)) assert.match(l, /: DRIFT: .* > threshold [\d.]+ \(\d+\.\d\d s\)$/);
    const one = await inProcess('drift', 'check', '--reference', file('ref.npy'), '--current', file('same.npy'), '--method', 'distance', '--json');
    assert.equal(JSON.parse(one.stdout).defaultMethod, undefined, 'a chosen method is not the default');
  });

  it('without --method says which method it ran', async function () {
    const r = await inProcess('drift', 'check', '--reference', file('ref.npy'), '--current', file('same.npy'));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /method model: the drift monitor's default/);
    assert.match(r.stdout, /^model: no drift: ROC AUC of a domain classifier [\d.]+ <= threshold 0.55/m);
  });

  it('bad requests are exit 2 with the reason: missing file, different widths, unknown method, bad seed, missing option', async function () {
    const cases: Array<[string[], RegExp]> = [
      [['--reference', file('nope.npy'), '--current', file('same.npy')], /nope\.npy: cannot read: ENOENT/],
      [['--reference', file('ref.npy'), '--current', file('wide.npy')], /reference has 16 components per row, current has 17/],
      [['--reference', file('ref.npy'), '--current', file('same.npy'), '--method', 'kl'], /argument 'kl' is invalid. Allowed choices are model, mmd, ratio, distance, all/],
      [['--reference', file('ref.npy'), '--current', file('same.npy'), '--seed', '-1'], /--seed -1: expected a whole number >= 0/],
      [['--reference', file('ref.npy')], /required option '--current <file>' not specified/],
    ];
    for (const [args, re] of cases) {
      const r = await inProcess('drift', 'check', ...args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, re);
    }
  });

  it('--help names the options', async function () {
    const r = await inProcess('drift', 'check', '--help');
    assert.equal(r.code, 0);
    for (const o of ['--reference <file>', '--current <file>', '--method <method>', '--seed <n>', '--json']) assert.ok(r.stdout.includes(o), o);
  });
});
