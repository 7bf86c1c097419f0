import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../../src/config/load';
import { configError } from '../helpers/failures';

describe('config: GPU worker settings (visible devices, shutdown grace, parent watch)', function () {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(path.join(os.tmpdir(), 'forgeline-cfg-worker-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('defaults: a 30 s shutdown grace, no parent, every GPU from 0', function () {
    const cfg = loadConfig({ env: {}, cwd: dir });
    assert.deepEqual(cfg.worker, { shutdownGrace: '30s' });
    assert.equal(cfg.gpu.visibleDevices, undefined);
  });

  it('reads CUDA_VISIBLE_DEVICES, FORGELINE_SHUTDOWN_GRACE and FORGELINE_PARENT_PID through the schema', function () {
    const cfg = loadConfig({ env: { FORGELINE_GPU_POOL: 'h200', FORGELINE_GPU_COUNT: '2', CUDA_VISIBLE_DEVICES: '4,5', FORGELINE_SHUTDOWN_GRACE: '2m', FORGELINE_PARENT_PID: '4242' }, cwd: dir });
    assert.equal(cfg.gpu.visibleDevices, '4,5');
    assert.deepEqual(cfg.worker, { shutdownGrace: '2m', parentPid: 4242 });
  });

  it('names each bad value and what it expects', function () {
    const msg = configError(() => loadConfig({ env: { CUDA_VISIBLE_DEVICES: 'GPU-5f3a', FORGELINE_SHUTDOWN_GRACE: 'soon', FORGELINE_PARENT_PID: '-3' }, cwd: dir }));
    assert.match(msg, /CUDA_VISIBLE_DEVICES="GPU-5f3a": expected comma-separated GPU indices such as 0,1,2,3/);
    assert.match(msg, /FORGELINE_SHUTDOWN_GRACE="soon": expected a duration such as 30s, 2m or 0s/);
    assert.match(msg, /FORGELINE_PARENT_PID="-3": expected a process id/);
    assert.match(
      configError(() => loadConfig({ env: { FORGELINE_GPU_POOL: 'h200', FORGELINE_GPU_COUNT: '4', CUDA_VISIBLE_DEVICES: '0,1' }, cwd: dir })),
      /FORGELINE_GPU_COUNT=4, but CUDA_VISIBLE_DEVICES=0,1 names only 2 GPU\(s\): lower the count or list more devices/,
    );
  });

  it('FORGELINE_JOB_RUNNER=kubernetes: FORGELINE_KUBERNETES as JSON, pod identity from the downward API; errors name the field', function () {
    const kubernetes = JSON.stringify({ image: 'ghcr.io/acme/forgeline:1.0.0', sharedVolume: { claimName: 'home', mountPath: '/forgeline-home' }, pools: { h200: { nodeSelector: { 'nvidia.com/gpu.product': 'NVIDIA-H200' } } } });
    const cfg = loadConfig({ env: { FORGELINE_JOB_RUNNER: 'kubernetes', FORGELINE_KUBERNETES: kubernetes, FORGELINE_POD_NAME: 'gpu-worker-h200-0', FORGELINE_POD_UID: 'u-1' }, cwd: dir });
    assert.equal(cfg.jobRunner.kind, 'kubernetes');
    assert.equal(cfg.jobRunner.kubernetes?.ttlSecondsAfterFinished, 600);
    assert.deepEqual(cfg.jobRunner.kubernetes?.pools.h200?.tolerations, []);
    assert.equal(cfg.jobRunner.podUid, 'u-1');
    assert.equal(loadConfig({ env: {}, cwd: dir }).jobRunner.kind, 'local');
    assert.match(configError(() => loadConfig({ env: { FORGELINE_JOB_RUNNER: 'kubernetes' }, cwd: dir })), /FORGELINE_JOB_RUNNER=kubernetes needs FORGELINE_KUBERNETES/);
    assert.match(configError(() => loadConfig({ env: { FORGELINE_JOB_RUNNER: 'slurm' }, cwd: dir })), /FORGELINE_JOB_RUNNER="slurm": expected local or kubernetes/);
    const latest = JSON.stringify({ image: 'ghcr.io/acme/forgeline:latest', sharedVolume: { claimName: 'home', mountPath: '/h' } });
    assert.match(configError(() => loadConfig({ env: { FORGELINE_JOB_RUNNER: 'kubernetes', FORGELINE_KUBERNETES: latest }, cwd: dir })), /image.*pinned by a tag other than latest/);
  });
});
